"""Tool calls and results as the model sees them, with the real tiny processors (no tool support / Qwen's own)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from transformers import AutoProcessor

from assistant.conversation import ImagePart, Message, TextPart, ToolCallPart, ToolResultPart
from assistant.engine import tiny
from assistant.engine.inputs import build_inputs, native_tool_support, render_chat
from assistant.toolcalls import parse_tool_calls, tool_spec

SPECS = [tool_spec("screenshot", "Capture the screen.", {"type": "object", "properties": {"monitor": {"type": "integer"}}})]
SCREEN = ImagePart(sha256="b" * 64, width=64, height=32, source="screenshot")


def processor(kind, shared_cache):
    return AutoProcessor.from_pretrained(tiny.ensure_local_model(kind, shared_cache / "models"))


def agent_chat(result_as_text_part: bool = False) -> list[Message]:
    result: list = (
        [TextPart("Screenshot (64x32).")] if result_as_text_part else [ToolResultPart("c1", "screenshot", "Screenshot (64x32).")]
    )
    return [
        Message(role="user", parts=[TextPart("What is on my screen?")]),
        Message(role="assistant", parts=[ToolCallPart("screenshot", {}, "c1")]),
        Message(role="tool", parts=[*result, SCREEN]),
        Message(role="assistant", parts=[TextPart("A blue screen.")]),
    ]


def test_smolvlm_has_no_tool_support_so_tools_go_in_the_system_prompt_and_results_in_user_turns(shared_cache):
    smol = processor("tiny-smolvlm", shared_cache)
    assert not native_tool_support(smol)
    text = render_chat(smol, agent_chat(), tools=SPECS, add_generation_prompt=False)
    assert text.startswith("<|im_start|>System: You can use tools. To call one, reply with only this JSON")
    assert "- screenshot(monitor?: integer): Capture the screen.<end_of_utterance>\n" in text
    assert text.endswith(
        "User: What is on my screen?<end_of_utterance>\n"
        'Assistant: {"tool": "screenshot", "arguments": {}}<end_of_utterance>\n'
        "User:<image>Tool result:\nScreenshot (64x32).<end_of_utterance>\n"
        "Assistant: A blue screen.<end_of_utterance>\n"
    )


def test_qwen_template_gets_tools_natively(shared_cache):
    qwen = processor("tiny-qwen2vl", shared_cache)
    assert native_tool_support(qwen)
    text = render_chat(qwen, agent_chat(), system_prompt="Be brief.", tools=SPECS, add_generation_prompt=False)
    assert text.startswith("<|im_start|>system\nBe brief.\n\n# Tools\n")
    assert '<tools>\n{"type": "function", "function": {"name": "screenshot"' in text
    assert (
        '<|im_start|>assistant\n<tool_call>\n{"name": "screenshot", "arguments": {}}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n<tool_response>\n<|vision_start|><|image_pad|><|vision_end|>Screenshot (64x32).\n"
        "</tool_response><|im_end|>\n<|im_start|>assistant\nA blue screen.<|im_end|>\n"
    ) in text


@pytest.mark.parametrize("kind", ["tiny-smolvlm", "tiny-qwen2vl"])
def test_a_rendered_call_parses_back_to_the_stored_call(kind, shared_cache):
    """What the model is prompted and trained with is exactly what the parser reads from its replies."""
    proc = processor(kind, shared_cache)
    call = ToolCallPart("zoom", {"box": [1, 2, 30, 40], "image": 2}, "c9")
    before = render_chat(proc, [Message(role="user", parts=[TextPart("Zoom in.")])], tools=SPECS)
    full = render_chat(
        proc, [Message(role="user", parts=[TextPart("Zoom in.")]), Message(role="assistant", parts=[call])],
        tools=SPECS, add_generation_prompt=False,
    )
    assert full.startswith(before)
    reply = full[len(before):]
    for marker in ("<end_of_utterance>", "<|im_end|>"):
        reply = reply.split(marker)[0]
    (parsed,) = parse_tool_calls(reply).calls
    assert parsed.ok and (parsed.name, parsed.arguments) == (call.name, call.arguments)


@pytest.mark.parametrize("kind", ["tiny-smolvlm", "tiny-qwen2vl"])
def test_stored_and_imported_results_render_the_same(kind, shared_cache):
    proc = processor(kind, shared_cache)
    assert render_chat(proc, agent_chat(False), tools=SPECS) == render_chat(proc, agent_chat(True), tools=SPECS)


@pytest.mark.parametrize("kind", ["tiny-smolvlm", "tiny-qwen2vl"])
def test_images_of_tool_results_reach_the_processor(kind, shared_cache):
    from PIL import Image

    proc = processor(kind, shared_cache)
    loaded = SimpleNamespace(processor=proc, device="cpu", profile=SimpleNamespace(image=SimpleNamespace(
        mode="detailed", longest_edge=0, max_pixels=0)))
    picture = Image.new("RGB", (64, 32), "blue")
    inputs = build_inputs(loaded, agent_chat()[:3], lambda part: picture, tools=SPECS)
    assert inputs.image_keys == [SCREEN.sha256]
    assert "pixel_values" in inputs.tensors


@pytest.mark.parametrize("kind", ["tiny-smolvlm", "tiny-qwen2vl"])
def test_a_saved_agent_chat_renders_exactly_as_the_model_saw_it(kind, shared_cache):
    """Re-opened from the store (and rendered with the tools recorded in it, as training should), every step's
    prompt is the one the engine was given while the agent ran."""
    from agenthelpers import image_tool, scripted_assistant

    from assistant.agent import Agent
    from assistant.engine.inputs import offered_tools
    from assistant.permissions import Permissions

    proc = processor(kind, shared_cache)
    call = '<tool_call>{"name": "paint", "arguments": {}}</tool_call>'
    bot, engine = scripted_assistant(["Let me paint. " + call, "Done: a blue picture."], [image_tool()])
    chat = bot.chat()
    list(Agent(chat, Permissions()).run("Paint me something."))
    saved = bot.store.get_conversation(chat.id).messages
    tools = offered_tools(saved)
    assert tools == engine.prompts[0].tools
    for prompt in engine.prompts:
        live = render_chat(proc, prompt.messages, tools=prompt.tools)
        reopened = render_chat(proc, saved[: len(prompt.messages)], tools=tools)
        assert live == reopened
    full = render_chat(proc, saved, tools=tools, add_generation_prompt=False)
    assert "Let me paint." in full and "Done: a blue picture." in full
