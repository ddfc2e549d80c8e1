"""Keys typed while the TUI starts, in a real pseudo-terminal that answers the terminal's questions like xterm.

They used to be lost or land in the hidden chat search, and the terminal's answer `ESC[?1;2c` was typed into the
prompt as `[?1;2c`. Now every key typed before or during start-up ends up in the prompt, in order, and nothing else.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import sys
import termios
import time
from pathlib import Path

import pytest

from assistant.tui.terminal import parse_answers

APP = r"""
import json, os, sys
from assistant.tui.app import AssistantApp
from assistant.tui.config import TuiConfig
from assistant.tui.widgets.thumbnail import RENDERERS

app = AssistantApp("tiny-smolvlm", config=TuiConfig(), autoload=False)

def report():
    state = {"prompt": app.prompt.text, "search": app.sidebar.query_one("#chat-search").value,
             "focused": getattr(app.focused, "id", None), "auto": RENDERERS["auto"].__module__ + "." + RENDERERS["auto"].__name__}
    open(os.environ["REPORT"], "w").write(json.dumps(state))
    app.exit()

def after_first_paint():
    app.set_timer(0.5, report)  # keys written at the first paint have arrived by then

app.call_after_refresh(lambda: app.call_after_refresh(after_first_paint))
app.run()
"""


def run_in_pty(tmp_path: Path, before: bytes, during: bytes, after_paint: bytes, da1: bytes = b"\x1b[?1;2c") -> dict:
    """Start the app in a pty: `before` is typed at once, `during` while the terminal is being asked (just before
    its answer), `after_paint` once the app has drawn its screen. Returns what the prompt and search hold."""
    report = tmp_path / "report.json"
    env = dict(os.environ, REPORT=str(report), TERM="xterm-256color")
    pid, fd = pty.fork()
    if pid == 0:  # the child: the app, with the pty as its terminal
        os.execve(sys.executable, [sys.executable, "-c", APP], env)
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        os.write(fd, before)
        seen = b""
        answered = painted = False
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.05)[0]:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
            if not answered and b"\x1b[c" in seen:
                answered = True
                os.write(fd, during + da1)
            if answered and not painted and b"\x1b[?1049h" in seen:  # Textual switched to its screen
                painted = True
                os.write(fd, after_paint)
            if os.waitpid(pid, os.WNOHANG)[0]:
                pid = 0
                break
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
    assert report.exists(), seen[-2000:].decode("utf-8", "replace")
    return json.loads(report.read_text(encoding="utf-8"))


def test_keys_typed_during_start_up_go_to_the_prompt_and_answers_never_do(tmp_path):
    state = run_in_pty(tmp_path, before=b"hel", during=b"lo ", after_paint=b"world")
    assert state["prompt"] == "hello world"
    assert state["search"] == "" and state["focused"] == "prompt"
    assert "[?1" not in state["prompt"]
    assert state["auto"] == "textual_image.widget.HalfcellImage"  # DA1 without 4: no Sixel; no Kitty graphics answer


def test_a_sixel_terminal_gets_sixel_thumbnails(tmp_path):
    state = run_in_pty(tmp_path, before=b"", during=b"", after_paint=b"", da1=b"\x1b[?62;4;22c")
    assert state["auto"] == "textual_image.widget.sixel.Image" and state["prompt"] == ""


@pytest.mark.parametrize(
    "read, typed, sixel, tgp, cell",
    [
        ("ab\x1b[?1;2ccd", "abcd", False, False, None),
        ("\x1b_Gi=31;OK\x1b\\\x1b[6;20;10t\x1b[?62;4c", "", True, True, (10, 20)),
        ("x\x1b_Gi=31;ENOTSUPPORTED:x\x1b\\y\x1b[?1;2c", "xy", False, False, None),
        ("é\x1b[1;5A\x03\x1b[?6c", "é", False, False, None),
    ],
)
def test_answers_are_told_apart_from_typed_keys(read, typed, sixel, tgp, cell):
    info = parse_answers(read)
    assert (info.typeahead, info.sixel, info.tgp, info.cell_size) == (typed, sixel, tgp, cell)
