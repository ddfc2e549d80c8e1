"""Issue 22.7: exports never overwrite without --force, never write through a symlink, and write atomically."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from assistant.conversation import Message, TextPart
from assistant.store import Store
from tests.hostile.kit import cli, integrity_ok


@pytest.fixture
def saved_chat():
    with Store.open_default() as store:
        chat = store.create_conversation(title="kept")
        store.add_message(chat.id, Message(role="user", parts=[TextPart("the question")]))
        store.add_message(chat.id, Message(role="assistant", parts=[TextPart("the answer")]))
    return chat.id


@pytest.fixture
def pdf(tmp_path) -> Path:
    path = tmp_path / "doc.pdf"
    Image.new("RGB", (200, 100), "white").save(path, format="PDF")
    return path


def _commands(kind: str, target: Path, pdf: Path) -> list[str]:
    return {
        "chats export": ["chats", "export", "1", "-o", str(target)],
        "chats export-dataset": ["chats", "export-dataset", "-o", str(target)],
        "screenshot": ["screenshot", "-o", str(target)],
        "pdf render": ["pdf", "render", str(pdf), "-o", str(target)],
    }[kind]


KINDS = ["chats export", "chats export-dataset", "screenshot", "pdf render"]


@pytest.mark.parametrize("kind", KINDS)
def test_an_existing_file_is_refused_without_force(capsys, tmp_path, saved_chat, pdf, kind):
    target = tmp_path / "out.png"
    target.write_text("precious")
    result = cli(capsys, *_commands(kind, target, pdf))
    assert result.code == 2
    assert "already exists; pass --force" in result.one_line()
    assert target.read_text() == "precious"
    assert integrity_ok()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("force", [False, True])
def test_a_symlink_is_never_written_through(capsys, tmp_path, saved_chat, pdf, kind, force):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "out.png"
    link.symlink_to(victim)
    dangling = tmp_path / "dangling.png"
    dangling.symlink_to(tmp_path / "would-be-created.txt")
    for target in (link, dangling):
        args = _commands(kind, target, pdf) + (["--force"] if force else [])
        result = cli(capsys, *args)
        assert result.code == 2 and "symbolic link" in result.one_line()
    assert victim.read_text() == "precious"
    assert not (tmp_path / "would-be-created.txt").exists()


@pytest.mark.parametrize("kind", ["chats export", "chats export-dataset", "pdf render"])
def test_force_replaces_atomically_and_leaves_no_temporary_file(capsys, tmp_path, saved_chat, pdf, kind):
    target = tmp_path / "out.png"
    target.write_text("old")
    result = cli(capsys, *_commands(kind, target, pdf), "--force")
    assert result.code == 0, result.err
    assert target.read_bytes() != b"old" and not target.is_symlink()
    assert oct(os.stat(target).st_mode & 0o777) == oct(0o600)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], list(tmp_path.iterdir())


@pytest.mark.parametrize("kind", ["chats export", "pdf render"])
def test_a_missing_or_unwritable_folder_is_one_line(capsys, tmp_path, saved_chat, pdf, kind):
    result = cli(capsys, *_commands(kind, tmp_path / "no" / "such" / "out.png", pdf))
    assert result.code == 2 and "does not exist" in result.one_line()
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        result = cli(capsys, *_commands(kind, locked / "out.png", pdf))
        assert result.code == 2 and "cannot write" in result.one_line()
    finally:
        locked.chmod(0o700)
