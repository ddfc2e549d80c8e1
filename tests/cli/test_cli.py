"""The headless CLI: every core subcommand, and every bad input gives one line, a non-zero exit, nothing lost."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from assistant.cli import main
from assistant.paths import user_paths
from assistant.store import Store
from tests.helpers import make_image


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def ask(capsys, *args):
    return run(capsys, "ask", "--profile", "tiny-smolvlm", "--max-tokens", "4", *args)


def test_ask_with_image_then_chats_list_and_show(capsys, tmp_path):
    image = make_image(tmp_path / "x.png")
    code, out, err = ask(capsys, "--image", str(image), "hi")
    assert code == 0, err
    assert "[chat 1 · TTFT" in err and "tok" in err
    code, out, _ = run(capsys, "chats", "list")
    assert code == 0 and "hi" in out and out.split()[0] == "1"
    code, out, _ = run(capsys, "chats", "show", "1")
    assert code == 0 and "hi" in out and "x.png" in out


def test_ask_continues_a_chat(capsys):
    assert ask(capsys, "first")[0] == 0
    assert ask(capsys, "--chat", "1", "second")[0] == 0
    with Store.open_default() as store:
        messages = store.get_conversation(1).messages
    assert [m.text for m in messages if m.role == "user"] == ["first", "second"]


def test_chats_search_export_rename_delete(capsys, tmp_path):
    ask(capsys, "a question about zebras")
    ask(capsys, "something else")
    code, out, _ = run(capsys, "chats", "search", "zebras")
    assert code == 0 and out.split()[0] == "1" and "zebras" in out
    code, out, _ = run(capsys, "chats", "search", "unicorns")
    assert code == 0 and "no messages match" in out
    target = tmp_path / "chat.md"
    code, out, _ = run(capsys, "chats", "export", "1", "--format", "md", "-o", str(target))
    assert code == 0 and "zebras" in target.read_text()
    code, out, _ = run(capsys, "chats", "export", "1", "--format", "jsonl")
    record = json.loads(out.strip().splitlines()[0])
    assert record["messages"][0]["role"] == "user"
    assert run(capsys, "chats", "rename", "1", "Zebra talk")[0] == 0
    code, out, _ = run(capsys, "chats", "list", "--json")
    titles = {item["id"]: item["title"] for item in json.loads(out)}
    assert titles[1] == "Zebra talk"
    assert run(capsys, "chats", "delete", "1", "--yes")[0] == 0
    code, out, _ = run(capsys, "chats", "list", "--json")
    assert [item["id"] for item in json.loads(out)] == [2]


def test_chats_list_when_empty(capsys):
    code, out, _ = run(capsys, "chats", "list")
    assert code == 0 and "no saved chats yet" in out


def test_profiles_and_plugins_list(capsys):
    code, out, _ = run(capsys, "profiles", "list")
    assert code == 0 and "* smolvlm-256m" in out and "tiny-qwen2vl" in out
    code, out, _ = run(capsys, "profiles", "show", "tiny-qwen2vl")
    assert code == 0 and json.loads(out)["model"]["local_build"] == "tiny-qwen2vl"
    code, out, _ = run(capsys, "plugins", "list")
    assert code == 0 and "screenshot" in out and "built-in" in out


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--image", "{tmp}/missing.png", "hi"], "image not found"),
        (["--image", "{tmp}/text.png", "hi"], "not an image"),
        (["--image", "{tmp}/truncated.png", "hi"], "truncated or corrupt"),
        (["   "], "question is empty"),
        (["--pages", "2", "hi"], "--pages and --password need --pdf"),
        (["--chat", "42", "hi"], "no chat with id 42"),
    ],
)
def test_ask_bad_input(capsys, tmp_path, args, expected):
    (tmp_path / "text.png").write_text("not an image at all")
    good = make_image(tmp_path / "good.png", (400, 300))
    (tmp_path / "truncated.png").write_bytes(good.read_bytes()[:200])
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    code, out, err = ask(capsys, *args)
    assert code == 2
    assert expected in one_line_error(err)
    with Store.open_default() as store:
        assert store.list_conversations() == []


def test_ask_decompression_bomb_is_refused_fast(capsys, tmp_path):
    from tests.unit.test_images import png_claiming_size  # shared helper of the images tests

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming_size(40000, 40000))
    code, _, err = ask(capsys, "--image", str(bomb), "hi")
    assert code == 2 and "too large" in one_line_error(err)


def test_unknown_and_malformed_profiles(capsys, tmp_path):
    code, _, err = run(capsys, "ask", "--profile", "nope", "hi")
    assert code == 2 and "unknown profile 'nope'" in one_line_error(err)
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nid = "x"\nflavour = 1\n')
    code, _, err = run(capsys, "ask", "--profile", str(bad), "hi")
    assert code == 2 and "unknown key 'flavour'" in one_line_error(err)


def test_missing_model_says_how_to_fix(capsys, tmp_path):
    code, _, err = run(capsys, "ask", "--model", "someone/not-downloaded-model", "hi")
    line = one_line_error(err)
    assert code == 2
    assert "someone/not-downloaded-model" in line and "--profile tiny-smolvlm" in line and "--model PATH" in line
    with Store.open_default() as store:
        (summary,) = store.list_conversations()
        messages = store.get_conversation(summary.id).messages
    assert messages[0].text == "hi" and messages[1].status == "failed"


def test_unknown_chat_for_show_and_delete(capsys):
    for args in (["chats", "show", "9"], ["chats", "delete", "9", "--yes"], ["chats", "export", "9"]):
        code, _, err = run(capsys, *args)
        assert code == 2 and "no chat with id 9" in one_line_error(err)


def test_store_from_newer_schema_is_refused_and_untouched(capsys):
    paths = user_paths().ensure()
    with sqlite3.connect(paths.store_file) as connection:
        connection.execute("PRAGMA user_version = 999")
    before = paths.store_file.read_bytes()
    code, _, err = run(capsys, "chats", "list")
    assert code == 2 and "newer version" in one_line_error(err)
    assert paths.store_file.read_bytes() == before


def test_locked_store_is_reported(capsys, monkeypatch):
    paths = user_paths().ensure()
    Store.open_default().close()
    holder = sqlite3.connect(paths.store_file, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        monkeypatch.setattr(Store.__init__, "__defaults__", (0.2,))
        code, _, err = ask(capsys, "hi")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 2 and "locked" in one_line_error(err)


def test_real_console_script_runs(tmp_path):
    """The installed `assistant` entry point itself (not only main()) works end to end."""
    env = dict(os.environ)
    exe = os.path.join(os.path.dirname(sys.executable), "assistant")
    result = subprocess.run([exe, "profiles", "list"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0 and "tiny-smolvlm" in result.stdout
    result = subprocess.run([exe, "chats", "show", "5"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2 and result.stderr.strip().startswith("error: no chat with id 5")
