"""The built-in tools (screenshot, pdf_page, pdf_search, ground, zoom) called by a scripted model, and `tools list`."""

from __future__ import annotations

import json

import pytest
from agenthelpers import scripted_assistant
from PIL import Image, ImageDraw

from assistant.agent import Agent, ToolCallApproved, ToolResultReady
from assistant.cli import main
from assistant.permissions import Permissions, add_to_allow_list, read_allow_list
from assistant.paths import user_paths
from tests.helpers import make_pdf
from xvfb import requires_xvfb


def call(name: str, **arguments) -> str:
    return f'<tool_call>{json.dumps({"name": name, "arguments": arguments})}</tool_call>'


def results(events) -> list[ToolResultReady]:
    return [event for event in events if isinstance(event, ToolResultReady)]


def test_tools_list_prints_every_tool_with_its_schema_and_policy(capsys):
    assert main(["tools", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("screenshot", "pdf_page", "pdf_search", "ground", "zoom"):
        assert f"\n{name}  [" in "\n" + out
    assert "screenshot  [asks first: it captures your screen" in out
    assert "zoom  [runs without asking" in out
    assert "pdf_page  [runs without asking for files you attached or named in the chat; asks for other paths" in out
    assert '"minItems": 4' in out  # the zoom box schema is printed
    assert main(["tools", "list", "--json"]) == 0
    specs = json.loads(capsys.readouterr().out)
    by_name = {spec["function"]["name"]: spec["function"] for spec in specs}
    assert by_name["pdf_page"]["parameters"]["required"] == ["path", "page"]


def test_always_allowed_tools_are_listed_and_can_be_forgotten(capsys):
    add_to_allow_list(user_paths().config_file, "screenshot")
    assert main(["tools", "list"]) == 0
    assert "screenshot  [always allowed" in capsys.readouterr().out
    assert main(["tools", "forget", "screenshot"]) == 0
    assert read_allow_list(user_paths().config_file) == []
    assert main(["tools", "forget", "screenshot"]) == 2
    assert "is not always allowed" in capsys.readouterr().err


def test_window_rules_are_listed_and_revoked(capsys):
    from assistant.permissions import add_window_rule, read_window_rules

    assert main(["tools", "allowed"]) == 0
    assert capsys.readouterr().out.startswith("nothing is always allowed")
    add_to_allow_list(user_paths().config_file, "zoom")
    add_window_rule(None, "click", "Calculator")
    add_window_rule(None, "click", "Evil\x1b[2J")
    add_window_rule(None, "scroll", "Calculator")
    assert main(["tools", "allowed"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("zoom  (everywhere; ")
    assert lines[1].startswith('click in "Calculator"  (since 20') and lines[1].endswith("always-allow.json)")
    assert lines[2].startswith('click in "Evil\\u001b[2J"') and "\x1b" not in "".join(lines)
    assert main(["tools", "list"]) == 0
    assert "click  [asks first: it has side effects; always allowed in 2 window(s)" in capsys.readouterr().out
    assert main(["tools", "forget", "click", "--window", "Calculator"]) == 0
    assert 'forgot click in "Calculator"' in capsys.readouterr().out
    assert main(["tools", "forget", "click", "--window", "Calculator"]) == 2
    assert 'click in "Calculator" is not always allowed; `assistant tools allowed` lists what is' in capsys.readouterr().err
    assert main(["tools", "forget", "click"]) == 0  # every window
    assert [rule.label() for rule in read_window_rules()] == ['scroll in "Calculator"']


def test_pdf_search_then_pdf_page(tmp_path):
    pdf = make_pdf(tmp_path / "report.pdf", ["Introduction", "Weather", "Revenue in 2023 was 4.2 million", "Index"])
    script = [
        call("pdf_search", path=str(pdf), query="revenue 2023"),
        call("pdf_page", path=str(pdf), page=3),
        "Page 3: revenue was 4.2 million.",
    ]
    bot, engine = scripted_assistant(script)
    chat = bot.chat()
    events = list(Agent(chat, Permissions()).run(f"Which page of {pdf} states the revenue?"))
    search, page = results(events)
    assert not search.result.is_error and "- page 3 (score" in search.result.text and "4.2 million" in search.result.text
    assert "page 1 " not in search.result.text  # pages without the words are not listed
    assert not page.result.is_error and page.result.text.startswith("report.pdf page 3 of 4; it is image 1 of this chat.")
    assert "Revenue in 2023" in page.result.text
    (image,) = page.images
    assert image.width > 300 and bot.store.open_image(image).size == (image.width, image.height)
    assert events[-1].answer == "Page 3: revenue was 4.2 million."


def test_pdf_tools_report_user_errors_to_the_model(tmp_path):
    pdf = make_pdf(tmp_path / "two.pdf", ["one", "two"])
    script = [
        call("pdf_page", path=str(tmp_path / "missing.pdf"), page=1),
        call("pdf_page", path=str(pdf), page=9),
        call("pdf_search", path=str(pdf), query="the of"),
        "ok",
    ]
    bot, _ = scripted_assistant(script)
    named = f"go: {tmp_path / 'missing.pdf'} and {pdf}"  # named by the user: no confirmation needed
    texts = [r.result.text for r in results(Agent(bot.chat(), Permissions()).run(named))]
    assert "missing.pdf not found" in texts[0]
    assert texts[1] == "error: page 9 is out of range: two.pdf has 2 pages"
    assert "no words to search for" in texts[2]


def square_image(path):
    image = Image.new("RGB", (400, 200), "white")
    ImageDraw.Draw(image).rectangle([300, 100, 349, 149], fill=(255, 0, 0))
    image.save(path)
    return path


def test_zoom_crops_the_chats_image_and_enlarges_it(tmp_path):
    photo = square_image(tmp_path / "photo.png")
    bot, engine = scripted_assistant([call("zoom", box=[300, 100, 350, 150]), "A red square."])
    chat = bot.chat()
    events = list(Agent(chat, Permissions()).run("Zoom on the square.", images=[photo]))
    (zoom,) = results(events)
    assert not zoom.result.is_error
    assert zoom.result.text == "Zoom into image 1, box [300, 100, 350, 150]: 448x448 pixels; it is image 2 of this chat."
    (crop,) = zoom.images
    pixels = bot.store.open_image(crop)
    assert pixels.size == (448, 448) and pixels.getpixel((224, 224)) == (255, 0, 0)
    assert len(bot.store.get_conversation(chat.id).images) == 2


def test_zoom_and_ground_errors(tmp_path):
    photo = square_image(tmp_path / "photo.png")
    script = [call("zoom", box=[500, 500, 600, 600]), call("zoom", box=[0, 0, 5, 5], image=7), call("ground", phrase=" "), "ok"]
    bot, _ = scripted_assistant(script)
    texts = [r.result.text for r in results(Agent(bot.chat(), Permissions()).run("go", images=[photo]))]
    assert "lies outside the image (400x200)" in texts[0]
    assert "there is no image 7: this chat has images 1 to 1" in texts[1]
    assert "say what to look for" in texts[2]


def test_zoom_without_any_image_says_what_to_do():
    bot, _ = scripted_assistant([call("zoom", box=[0, 0, 5, 5]), "ok"])
    (result,) = results(Agent(bot.chat(), Permissions()).run("go"))
    assert result.result.is_error and "no image yet" in result.result.text


def test_ground_asks_the_model_and_returns_pixel_boxes(tmp_path):
    photo = square_image(tmp_path / "photo.png")
    seen = []

    def grounding_reply(messages):
        seen.append(messages)
        return '[{"bbox_2d": [750, 500, 875, 750], "label": "red square"}]'

    script = [call("ground", phrase="the red square"), grounding_reply, "It is at the right."]
    bot, engine = scripted_assistant(script)
    chat = bot.chat()
    events = list(Agent(chat, Permissions()).run("Where is the red square?", images=[photo]))
    (ground,) = results(events)
    assert ground.result.text.splitlines() == [
        "'the red square' on image 1 (400x200 pixels), in pixels:",
        "- box red square [300, 100, 350, 150]",
    ]
    (question,) = seen[0]  # the grounding prompt: the chat's image and the format's own prompt, not stored
    assert question.images[0].sha256 == chat.conversation.images[0].sha256
    assert "Locate the red square in the image" in question.text
    assert [m.role for m in bot.store.get_conversation(chat.id).messages] == ["user", "assistant", "tool", "assistant"]


@pytest.mark.xvfb
@requires_xvfb
def test_screenshot_tool_captures_a_monitor_after_confirmation(xvfb_display):
    xvfb_display.paint_mask("halves", lambda x, y: x >= 640, (0, 0, 255), (255, 255, 0))
    bot, _ = scripted_assistant([call("screenshot", monitor=2), "Blue."])
    chat = bot.chat()
    events = list(Agent(chat, Permissions(pre_approved=True)).run("What is on my second screen?"))
    assert [e.decision.how for e in events if isinstance(e, ToolCallApproved)] == ["pre-approved"]
    (shot,) = results(events)
    assert shot.result.text == "Screenshot (screenshot monitor 2, 640x480 pixels); it is image 1 of this chat."
    (image,) = shot.images
    assert bot.store.open_image(image).getpixel((10, 10)) == (0, 0, 255)


def test_screenshot_is_never_taken_without_confirmation(monkeypatch):
    taken = []
    monkeypatch.setattr("assistant_plugins.screenshot.capture", lambda request: taken.append(request))
    bot, _ = scripted_assistant([call("screenshot"), "ok"])
    events = list(Agent(bot.chat(), Permissions()).run("What is on my screen?"))
    (result,) = results(events)
    assert result.result.is_error and "confirmation needed" in result.result.text and taken == []


def test_the_config_can_limit_the_tools_offered(capsys):
    from assistant.errors import AssistantError

    config = user_paths().config_file
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('[keys]\nsend = "enter"\n\n[agent]\ntools = ["zoom", "screenshot", "nonexistent"]\n', encoding="utf-8")
    bot, engine = scripted_assistant(["No tools needed."])
    list(Agent(bot.chat(), Permissions()).run("Hi"))
    assert [spec["function"]["name"] for spec in engine.prompts[0].tools] == ["screenshot", "zoom"]
    assert main(["tools", "list"]) == 0
    out = capsys.readouterr().out
    assert "pdf_page  [runs without asking for files you attached or named in the chat; asks for other paths; " \
           "not offered: not in [agent] tools;" in out
    assert "zoom  [runs without asking; timeout" in out
    config.write_text('[agent]\ntools = "zoom"\n', encoding="utf-8")
    with pytest.raises(AssistantError, match="must be a list of tool names"):
        Agent(bot.chat(), Permissions())
