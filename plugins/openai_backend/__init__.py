"""Built-in plugin: the `openai` backend, a client for OpenAI-compatible servers (vLLM, SGLang, ollama, llama.cpp)."""
