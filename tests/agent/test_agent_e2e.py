"""End to end, offline, real: teach the tiny model to use `screenshot`, then let it look at a virtual screen.

Synthetic conversations (asked about the screen -> call screenshot -> see a solid colour -> name it) are imported
with `assistant chats import`, an adapter is trained with `assistant train`, and `assistant ask --agent --yes`
runs on Xvfb with that adapter. The model must call the tool on its own, the pre-approval must be the path
taken, the screenshot must reach the model's next prompt, and the answer must name the colour on the screen,
which only the screenshot can tell it.

The user config offers only `screenshot` ([agent] tools): the tiny random model learns a short prompt reliably
(every seed tried), the prompt with all five tools only for some seeds, and three times slower.
"""

from __future__ import annotations

import json

import pytest
from PIL import Image

import assistant.engine.engine as engine_module
from assistant.agent import agent_tools, tool_specs
from assistant.cli import main
from assistant.conversation import ToolCallPart, ToolResultPart
from assistant.paths import user_paths
from assistant.plugins import create_plugin_manager
from assistant.store import Store
from assistant.toolcalls import fallback_instructions
from xvfb import HEIGHT, WIDTH, requires_xvfb

COLOURS = {"red": (220, 30, 30), "green": (30, 160, 60), "blue": (30, 60, 220)}
QUESTIONS = [
    "What is on my screen?",
    "What do you see on my screen?",
    "Describe my screen.",
    "Look at my screen. What is there?",
    "Tell me what my screen shows.",
    "What is on the screen right now?",
]
UNSEEN = "Could you check my screen and tell me about it?"
"""A wording the training data never has: the model must generalise, and with the same question for every colour
only the screenshot can make the answers differ."""
SHOT_TEXT = f"Screenshot (screenshot {WIDTH}x{HEIGHT}+0+0, {WIDTH}x{HEIGHT} pixels); it is image 1 of this chat."
"""What the screenshot tool says about a whole-screen capture of the test display (checked below)."""


def write_dataset(folder):
    """TRL jsonl: system prompt as the agent builds it for a model without tool support, then the tool round."""
    system = fallback_instructions(tool_specs(agent_tools(create_plugin_manager())))
    lines = []
    for name, rgb in COLOURS.items():
        Image.new("RGB", (WIDTH, HEIGHT), rgb).save(folder / f"{name}.png")
        for question in QUESTIONS:
            messages = [
                {"role": "system", "content": system},
                {"role": "user", "content": question},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"type": "function", "function": {"name": "screenshot", "arguments": {}}}]},
                {"role": "tool", "content": [{"type": "image"}, {"type": "text", "text": SHOT_TEXT}]},
                {"role": "assistant", "content": f"The screen is {name}."},
            ]
            lines.append(json.dumps({"messages": messages, "images": [f"{name}.png"]}))
    path = folder / "agent.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.xvfb
@pytest.mark.slow
@requires_xvfb
def test_trained_tiny_model_takes_a_screenshot_and_answers_from_it(tmp_path, capsys, xvfb_display, monkeypatch, one_thread):
    config = user_paths().config_file
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('[agent]\ntools = ["screenshot"]\n', encoding="utf-8")
    dataset = write_dataset(tmp_path)
    assert main(["chats", "import", str(dataset)]) == 0
    code = main([
        "train", "--name", "screen-agent", "--profile", "tiny-smolvlm", "--tag", "import:agent.jsonl",
        "--epochs", "30", "--lr", "3e-3", "--rank", "64", "--alpha", "128", "--grad-accum", "1", "--eval-split", "0",
    ])
    out, err = capsys.readouterr()
    assert code == 0, err

    prompts = []  # (prompt text, image hashes) of every prompt the engine builds

    def spy(loaded, messages, open_image, system_prompt="", tools=None):
        inputs = build_inputs(loaded, messages, open_image, system_prompt, tools)
        prompts.append((inputs.prompt, list(inputs.image_keys)))
        return inputs

    build_inputs = engine_module.build_inputs
    monkeypatch.setattr(engine_module, "build_inputs", spy)
    xvfb_display.paint_solid(COLOURS["blue"])
    code = main(["ask", "--agent", "--yes", "--adapter", "screen-agent", "--profile", "tiny-smolvlm", "What is on my screen?"])
    out, err = capsys.readouterr()
    assert code == 0, err

    # The model called the tool on its own, and the pre-approval (--yes) was the confirmation path taken.
    steps = err.splitlines()
    assert steps[0] == "[step 1] call screenshot {} - needs confirmation"
    assert steps[1] == "[step 1] screenshot: pre-approved (--yes)"
    assert steps[2] == f"[step 1] screenshot result: {SHOT_TEXT} [+1 image]"
    assert out == "The screen is blue.\n"  # only the screenshot says which colour the screen is

    with Store.open_default() as store:
        (summary,) = [chat for chat in store.list_conversations() if "import:agent.jsonl" not in chat.tags]
        messages = store.get_conversation(summary.id).messages
        assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant"]
        (call,) = messages[1].parts
        assert isinstance(call, ToolCallPart) and (call.name, call.arguments) == ("screenshot", {})
        result, image = messages[2].parts
        assert result == ToolResultPart(call_id=call.call_id, name="screenshot", text=SHOT_TEXT, is_error=False)
        assert (image.width, image.height) == (WIDTH, HEIGHT)
        assert store.open_image(image).getpixel((WIDTH // 2, HEIGHT // 2)) == COLOURS["blue"]
        assert messages[3].text.strip() == "The screen is blue." and messages[3].meta.adapter == "screen-agent"

    # The screenshot reached the model: the prompt of the second reply holds the tool's image and its result.
    first, second = prompts[0], prompts[-1]
    assert first[1] == [] and "screenshot(monitor?: integer, region?: array)" in first[0]
    assert "zoom(" not in first[0]  # only the tools the config offers are described
    assert second[1] == [image.sha256]
    assert "Tool result:\n" + SHOT_TEXT in second[0]

    # Every colour, asked in words it never saw: a model that ignored the screenshot would give one answer.
    for name, rgb in COLOURS.items():
        xvfb_display.paint_solid(rgb)
        code = main(["ask", "--agent", "--yes", "--adapter", "screen-agent", "--profile", "tiny-smolvlm", UNSEEN])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert err.splitlines()[0] == "[step 1] call screenshot {} - needs confirmation"
        assert out == f"The screen is {name}.\n", (name, out)
