"""The TUI's pure parts: /command parsing and completion, path completion, pasted paths, chips, footers."""

from __future__ import annotations

import subprocess
import sys

from assistant.conversation import Message, ReplyMeta, TextPart
from assistant.geometry import Box, Grounding, Point
from assistant.hooktypes import SlashCommand
from assistant.images import load_image_file
from assistant.tui.attachments import Attachments
from assistant.tui.commands import CommandTable, complete_prompt, parse_command
from assistant.tui.completion import complete_path, image_paths_in_paste
from assistant.tui.format import (
    context_used,
    format_when,
    grounding_caption,
    reply_footer,
    split_cause_fix,
    status_line,
    user_display_text,
)
from tests.helpers import make_image


def test_parse_command():
    assert parse_command("/image ~/cat.png") == ("image", "~/cat.png")
    assert parse_command("  /help  ") == ("help", "")
    assert parse_command("//not a command") is None
    assert parse_command("/home/me/cat.png") is None  # a path, not a command
    assert parse_command("hello /there") is None
    assert parse_command("/") is None


def test_command_names_complete_with_their_usage():
    table = CommandTable()
    labels = [c.label for c in complete_prompt("/re", table)]
    assert labels == ["/regenerate", "/rename TITLE"]
    [image] = complete_prompt("/ima", table)
    assert image.replacement == "/image " and image.detail.startswith("Attach an image")
    assert complete_prompt("hello", table) == []
    assert complete_prompt("/rate d", table)[0].replacement == "/rate down"
    profiles = complete_prompt("/profile ti", table, lambda kind: ["tiny-qwen2vl", "tiny-smolvlm", "smolvlm-256m"])
    assert [c.label for c in profiles] == ["tiny-qwen2vl", "tiny-smolvlm"]


def test_plugin_commands_join_the_table_but_cannot_shadow_built_ins():
    def run(context, argument):
        return None

    table = CommandTable([("pdf", SlashCommand("pdf", "Attach a PDF", run, complete_paths=True)), ("evil", SlashCommand("help", "x", run))])
    assert table.get("pdf").source == "pdf" and table.get("pdf").complete == "path"
    assert table.get("help").source == "built-in"
    assert table.shadowed == ["help"]


def test_path_completion(tmp_path):
    (tmp_path / "Photos").mkdir()
    make_image(tmp_path / "Photos" / "cat.png", (8, 8))
    make_image(tmp_path / "Photos" / "car.jpg", (8, 8))
    (tmp_path / "Photos" / "cv.txt").write_text("x", encoding="utf-8")
    (tmp_path / "Photos" / ".hidden.png").write_bytes(b"")
    base = f"{tmp_path}/"
    assert complete_path(base + "Pho") == [(base + "Photos/", True)]
    assert complete_path(base + "pho") == [(base + "Photos/", True)]  # case-insensitive when nothing else matches
    assert [v for v, _ in complete_path(base + "Photos/c")] == [base + "Photos/car.jpg", base + "Photos/cat.png", base + "Photos/cv.txt"]
    assert [v for v, _ in complete_path(base + "Photos/c", images_only=True)] == [base + "Photos/car.jpg", base + "Photos/cat.png"]
    assert [v for v, _ in complete_path(base + "Photos/.")] == [base + "Photos/.hidden.png"]
    assert complete_path(base + "nowhere/x") == []


def test_pasted_paths_are_recognised_only_when_every_piece_is_an_image(tmp_path):
    cat = make_image(tmp_path / "cat.png", (8, 8))
    spaced = make_image(tmp_path / "my dog.png", (8, 8))
    notes = tmp_path / "notes.txt"
    notes.write_text("x", encoding="utf-8")
    assert image_paths_in_paste(str(cat)) == [cat]
    assert image_paths_in_paste(f"  {spaced}\n") == [spaced]
    assert image_paths_in_paste(f'"{spaced}"') == [spaced]
    assert image_paths_in_paste(str(spaced).replace(" ", "\\ ")) == [spaced]
    assert image_paths_in_paste(f"file://{str(spaced).replace(' ', '%20')}") == [spaced]
    assert image_paths_in_paste(f"{cat} '{spaced}'") == [cat, spaced]
    assert image_paths_in_paste(f"{cat}\n{spaced}") == [cat, spaced]
    assert image_paths_in_paste(f"look at {cat}") is None
    assert image_paths_in_paste(str(notes)) is None
    assert image_paths_in_paste(str(tmp_path / "missing.png")) is None
    assert image_paths_in_paste("it's unbalanced") is None


def test_chips_number_per_kind_and_take_clears_them(tmp_path):
    pending = Attachments()
    first = pending.add_image(load_image_file(make_image(tmp_path / "a.png", (64, 48))))
    pending.add_text("page text", "report.pdf p.2")
    second = pending.add_image(load_image_file(make_image(tmp_path / "b.png", (10, 20), "blue")))
    assert [item.label for item in pending.items] == [
        "[Image #1 a.png 64x48]",
        "[Text #1 report.pdf p.2 9 chars]",
        "[Image #2 b.png 10x20]",
    ]
    pending.remove(first)
    outgoing = pending.take()
    assert [image.source for image in outgoing.images] == [second.source]
    assert outgoing.context_text == "page text"
    assert len(pending) == 0
    assert pending.add_image(second.image).number == 1  # numbering restarts per message


def test_reply_footer_and_status_line():
    meta = ReplyMeta(ttft_s=0.4213, tokens_per_s=31.52, completion_tokens=24, extra={"notes": ["context full: 2 older messages left out"]})
    message = Message(role="assistant", parts=[TextPart("hi")], meta=meta, status="stopped", rating=1, correction="hello")
    assert reply_footer(message) == (
        "TTFT 0.42 s · 31.5 tok/s · 24 tokens · stopped · context full: 2 older messages left out · rated +1 · corrected"
    )
    assert reply_footer(message, timings=False).startswith("stopped")
    assert context_used([Message(role="assistant", meta=ReplyMeta(prompt_tokens=100, completion_tokens=20))]) == 120
    assert context_used([]) == 0
    assert status_line("p", "m", "cpu · float32", None, 1234, 8192, True) == (
        "p │ m (random weights) │ cpu · float32 │ adapter none │ ctx 1,234/8,192"
    )


def test_small_formatters():
    noon = 1_700_000_000.0
    assert format_when(noon, noon) == __import__("datetime").datetime.fromtimestamp(noon).strftime("%H:%M")
    assert len(format_when(noon - 400 * 86400, noon)) == 10
    assert split_cause_fix("model missing; download it") == ("model missing", "download it")
    assert split_cause_fix("no fix here") == ("no fix here", "")
    long = "x" * 3000 + "the question?"
    shown = user_display_text(long)
    assert shown.endswith("the question?") and shown.startswith("[…") and len(shown) < 1000
    grounding = Grounding("json1000", [Box(1, 2, 3, 4), Box(5, 6, 7, 8), Point(1, 1)])
    assert grounding_caption(grounding) == "2 boxes, 1 point (json1000)"


def test_importing_the_tui_does_not_import_torch_or_transformers():
    code = (
        "import json, sys\n"
        "import assistant.tui.app\n"
        "print(json.dumps([m for m in ('torch', 'transformers') if m in sys.modules]))\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip().splitlines()[-1] == "[]"
