"""Issue 22.5: control characters from a model or a tool are printed escaped (never obeyed by the terminal)."""

from __future__ import annotations

import json

import pytest

from assistant import Assistant
from assistant.testing import ScriptedBackend
from assistant.textsafe import printable
from tests.hostile.kit import cli

OSC52 = "\x1b]52;c;ZXZpbA==\x07"  # writes "evil" into the clipboard
CLEAR = "\x1b[2J\x1b[H"
TITLE = "\x1b]0;pwned\x07"
BIDI = "\u202e"


@pytest.fixture
def model(monkeypatch):
    backend = ScriptedBackend([])
    monkeypatch.setattr(Assistant, "load", lambda self, progress=None: backend)
    return backend


def _call(name: str, **arguments) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False) + "</tool_call>"


def _raw_controls(text: str) -> list[str]:
    return [c for c in text if (ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0 or c == BIDI]


@pytest.mark.parametrize(
    "reply",
    [
        f"let me look {OSC52} " + _call(f"screen{TITLE}", note=f"{CLEAR}red"),  # model text, tool name, arguments
        _call("pdf_search", path=f"/no/such{OSC52}.pdf", query=f"x{BIDI}y"),  # a tool's error quotes the argument
        f"{CLEAR} " + _call(f"{OSC52}", x=1),
    ],
)
def test_agent_step_lines_escape_control_characters(capsys, model, reply):
    model.replies += [reply, f"done {OSC52}{TITLE}"]
    # --yes pdf_search: the call runs, so its error quotes the path (a plain --yes no longer covers an unnamed tool)
    result = cli(capsys, "ask", "--profile", "tiny-smolvlm", "--agent", "--yes", "pdf_search", "go")
    assert _raw_controls(result.err) == [], repr(result.err)
    assert _raw_controls(result.out) == [], repr(result.out)
    assert "\\x1b" in result.err and "\\x1b" in result.out  # shown, so the user sees something odd was there


def test_printable_keeps_ordinary_text_and_chosen_whitespace():
    assert printable("héllo, 世界 — ok") == "héllo, 世界 — ok"
    assert printable("a\nb\tc", keep="\n\t") == "a\nb\tc"
    assert printable("a\nb") == "a\\x0ab"
    assert printable(f"x{OSC52}\x9b31m{BIDI}") == "x\\x1b]52;c;ZXZpbA==\\x07\\x9b31m\\u202e"
