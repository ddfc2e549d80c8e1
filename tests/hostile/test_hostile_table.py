"""A standing table of hostile inputs and faults against the real CLI (real SQLite, real files, the tiny model).

Each case sets something up, runs one command and expects: the exit status, one stderr line saying what happened
(no traceback), the store intact (PRAGMA integrity_check) and the chat saved before still there, word for word.
Add a row for every new surface. The cases that need a process of their own (kill -9, Ctrl+C, umask) live in the
other files of this folder.
"""

from __future__ import annotations

import json
import sqlite3
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from PIL import Image

from assistant.conversation import Message, TextPart
from assistant.paths import user_paths
from assistant.store import SCHEMA_VERSION, Store
from tests.hostile.kit import cli, integrity_ok, stored_messages

SEEDED = [("user", "ok", "the question"), ("assistant", "ok", "the answer")]


@dataclass
class Case:
    name: str
    setup: Callable[[Path, pytest.MonkeyPatch], list[str]]
    """Prepares the fault in tmp_path and returns the command's arguments."""
    code: int
    says: str
    """Part of the one stderr line (or of stdout for exit 0)."""
    keeps_chat: bool = True
    """The chat saved before the command is still there unchanged (False when the case replaces the store)."""


def _png_bomb(path: Path) -> Path:
    """A tiny PNG whose header claims 60000x60000 pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) +
                     chunk(b"IEND", b""))
    return path


def _truncated_png(path: Path) -> Path:
    Image.new("RGB", (64, 64), "red").save(path)
    path.write_bytes(path.read_bytes()[:60])
    return path


def _deep_json_file(path: Path) -> Path:
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    return path


def _long_line_file(path: Path, monkeypatch) -> Path:
    from assistant_plugins.finetune import formats

    monkeypatch.setattr(formats, "MAX_LINE_BYTES", 4096)  # the real cap is 32 MB; the check is the same
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "x" * 10_000}]}) + "\n")
    return path


def _meta_not_an_object(tmp_path, monkeypatch) -> list[str]:
    with sqlite3.connect(user_paths().store_file) as conn:
        conn.execute("UPDATE messages SET meta = '[1, 2, 3]' WHERE role = 'assistant'")
    return ["chats", "show", "1"]


def _home_under_a_file(tmp_path, monkeypatch) -> list[str]:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("ASSISTANT_HOME", str(blocker / "home"))
    return ["chats", "list"]


def _not_a_database(tmp_path, monkeypatch) -> list[str]:
    home = tmp_path / "other-home"
    monkeypatch.setenv("ASSISTANT_HOME", str(home))
    user_paths().ensure()
    user_paths().store_file.write_bytes(b"this is not sqlite" * 100)
    return ["chats", "list"]


def _newer_schema(tmp_path, monkeypatch) -> list[str]:
    with sqlite3.connect(user_paths().store_file) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    return ["chats", "list"]


CASES = [
    Case("image bomb", lambda t, m: ["ask", "-p", "tiny-smolvlm", "--image", str(_png_bomb(t / "b.png")), "q"], 2,
         "image too large"),
    Case("truncated image", lambda t, m: ["ask", "-p", "tiny-smolvlm", "--image", str(_truncated_png(t / "t.png")),
                                          "q"], 2, "truncated or corrupt"),
    Case("text as image", lambda t, m: (t / "x.png").write_text("hello") and
         ["ask", "-p", "tiny-smolvlm", "--image", str(t / "x.png"), "q"], 2, "not an image"),
    Case("folder as image", lambda t, m: ["ask", "-p", "tiny-smolvlm", "--image", str(t), "q"], 2, "directory"),
    Case("missing image", lambda t, m: ["ask", "-p", "tiny-smolvlm", "--image", str(t / "nope.png"), "q"], 2,
         "image not found"),
    Case("empty question", lambda t, m: ["ask", "-p", "tiny-smolvlm", "   "], 2, "the question is empty"),
    Case("unknown profile", lambda t, m: ["ask", "-p", "no-such-profile", "q"], 2, "unknown profile"),
    Case("profile not TOML", lambda t, m: (t / "p.toml").write_text("[model\n") and
         ["ask", "-p", str(t / "p.toml"), "q"], 2, "not valid TOML"),
    Case("chat id not a number", lambda t, m: ["ask", "-p", "tiny-smolvlm", "--chat", "abc", "q"], 2,
         "--chat takes a chat id"),
    Case("chat that does not exist", lambda t, m: ["chats", "show", "99"], 2, "no chat with id 99"),
    Case("export into a missing folder", lambda t, m: ["chats", "export", "1", "-o", str(t / "no" / "x.md")], 2,
         "does not exist"),
    Case("export over a file", lambda t, m: (t / "x.md").write_text("mine") and
         ["chats", "export", "1", "-o", str(t / "x.md")], 2, "already exists; pass --force"),
    Case("import: JSON nested 100,000 deep", lambda t, m: ["chats", "import", str(_deep_json_file(t / "d.jsonl"))], 2,
         "nested too deeply"),
    Case("import: a line over the size cap", lambda t, m: ["chats", "import", str(_long_line_file(t / "l.jsonl", m))],
         2, "is longer than"),
    Case("import: not UTF-8", lambda t, m: (t / "u.jsonl").write_bytes(b"\xff\xfe{}\n") and
         ["chats", "import", str(t / "u.jsonl")], 2, "not UTF-8"),
    Case("import: not JSON", lambda t, m: (t / "n.jsonl").write_text("{nope\n") and
         ["chats", "import", str(t / "n.jsonl")], 2, "is not JSON"),
    Case("stored meta not an object", _meta_not_an_object, 0, "the answer"),
    Case("ASSISTANT_HOME cannot be created", _home_under_a_file, 2, "cannot create the folder", keeps_chat=False),
    Case("store is not a database", _not_a_database, 2, "not a readable SQLite database", keeps_chat=False),
    Case("store from a newer version", _newer_schema, 2, "written by a newer version"),
    Case("--max-tokens beyond the context", lambda t, m: ["ask", "-p", "tiny-smolvlm", "--max-tokens", "999999", "-c",
                                                          "q"], 2, "lower --max-tokens"),
]


@pytest.fixture
def seeded(capsys):
    """One saved chat (question and answer) that no hostile input may lose or change."""
    with Store.open_default() as store:
        chat = store.create_conversation(title="kept")
        store.add_message(chat.id, Message(role="user", parts=[TextPart("the question")]))
        store.add_message(chat.id, Message(role="assistant", parts=[TextPart("the answer")]))
    assert stored_messages() == SEEDED


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_input(capsys, tmp_path, monkeypatch, seeded, case):
    store_file = user_paths().store_file
    args = case.setup(tmp_path, monkeypatch)
    result = cli(capsys, *args)
    assert result.code == case.code, result.err
    if case.code == 0:
        assert case.says in result.out and "Traceback" not in result.err
    else:
        assert case.says in result.one_line()
    if case.keeps_chat:
        messages = stored_messages()
        if case.name == "--max-tokens beyond the context":  # the question asked in the chat is kept, marked failed
            assert messages[:2] == SEEDED and messages[2] == ("user", "ok", "q") and messages[3][1] == "failed"
        else:
            assert messages == SEEDED
        assert integrity_ok(store_file)


def test_an_image_that_cannot_be_saved_leaves_no_empty_chat(capsys, tmp_path):
    image = tmp_path / "x.png"
    Image.new("RGB", (32, 32), "red").save(image)
    paths = user_paths().ensure()
    paths.images_dir.write_text("not a folder")  # as a read-only or broken images folder would: saving fails
    result = cli(capsys, "ask", "-p", "tiny-smolvlm", "--image", str(image), "what is it?")
    assert result.code == 2 and "cannot" in result.one_line()
    with Store.open_default() as store:
        assert store.list_conversations() == []  # before the fix: an empty "(untitled)" chat
