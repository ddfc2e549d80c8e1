"""The model engine: loading a profile's model, building inputs from a conversation, streaming generation.

Everything here imports torch/transformers lazily, so `import assistant.engine` stays cheap.
"""
