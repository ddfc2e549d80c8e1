"""The headless CLI: every core subcommand, and every bad input gives one line, a non-zero exit, nothing lost."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from assistant.paths import user_paths
from assistant.store import Store
from tests.helpers import make_image, one_line_error
from tests.helpers import run_cli as run


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


def test_missing_model_says_how_to_fix_and_leaves_no_chat(capsys, tmp_path):
    code, _, err = run(capsys, "ask", "--model", "someone/not-downloaded-model", "hi there")
    line = one_line_error(err)
    assert code == 2
    assert "someone/not-downloaded-model" in line and "--profile tiny-smolvlm" in line and "--model PATH" in line
    assert "not kept" in line and "unsaved-questions.jsonl" in line
    with Store.open_default() as store:
        assert store.list_conversations() == []
    saved = (user_paths().data / "unsaved-questions.jsonl").read_text()
    assert json.loads(saved.splitlines()[-1])["question"] == "hi there"


def test_a_model_path_that_does_not_exist_is_named(capsys, tmp_path):
    for value in (str(tmp_path / "wrong" / "path"), "./no-model-here", "~/nowhere/model"):
        code, _, err = run(capsys, "ask", "--model", value, "hi")
        line = one_line_error(err)
        assert code == 2 and f"no such model directory: {value}" in line and "--model PATH" not in line
    with Store.open_default() as store:
        assert store.list_conversations() == []


# --- stdin, sampling options, JSON output, continuing --------------------------------------------

def pipe_into_stdin(monkeypatch, tmp_path, data: bytes):
    """Make stdin a real redirected file, as `assistant ask ... < file` does."""
    source = tmp_path / "stdin.bin"
    source.write_bytes(data)
    handle = open(source, "r", encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", handle)
    return handle


def user_messages(chat_id=1):
    with Store.open_default() as store:
        conversation = store.get_conversation(chat_id)
    return conversation, [m for m in conversation.messages if m.role == "user"]


def test_piped_text_is_added_after_the_question(capsys, monkeypatch, tmp_path):
    pipe_into_stdin(monkeypatch, tmp_path, b"Zebras have stripes.\nThey live in Africa.\n")
    code, out, err = ask(capsys, "summarise")
    assert code == 0, err
    conversation, (question,) = user_messages()
    assert question.text == "summarise\n\nZebras have stripes.\nThey live in Africa."
    assert conversation.title == "summarise"


def test_piped_text_alone_is_the_question(capsys, monkeypatch, tmp_path):
    pipe_into_stdin(monkeypatch, tmp_path, b"what is a zebra?\n")
    code, _, err = ask(capsys)
    assert code == 0, err
    _, (question,) = user_messages()
    assert question.text == "what is a zebra?"


def test_piped_bytes_that_are_not_text_are_refused(capsys, monkeypatch, tmp_path):
    pipe_into_stdin(monkeypatch, tmp_path, b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    code, _, err = ask(capsys, "what is this?")
    assert code == 2 and "--image -" in one_line_error(err)


def test_image_from_stdin(capsys, monkeypatch, tmp_path):
    image = make_image(tmp_path / "clip.png", (200, 100), "blue")
    pipe_into_stdin(monkeypatch, tmp_path, image.read_bytes())
    code, _, err = ask(capsys, "--image", "-", "what is this?")
    assert code == 0, err
    _, (question,) = user_messages()
    (part,) = question.images
    assert (part.width, part.height, part.source) == (200, 100, "stdin")
    assert question.text == "what is this?"


def test_image_from_stdin_needs_something_piped(capsys):
    code, _, err = ask(capsys, "--image", "-", "what is this?")
    assert code == 2 and "nothing is piped" in one_line_error(err)


def test_ask_json_prints_one_object(capsys, tmp_path):
    code, out, err = ask(capsys, "--json", "hi")
    assert code == 0, err
    record = json.loads(out)
    assert record["chat_id"] == 1 and record["status"] == "ok" and record["profile"] == "tiny-smolvlm"
    assert record["tokens"]["completion"] == 4 and record["tokens"]["prompt"] > 0
    assert record["timings"]["ttft_s"] > 0
    assert record["grounding"] is None and record["notes"] == []
    with Store.open_default() as store:
        saved = store.get_conversation(1).messages[-1]
    assert (record["message_id"], record["text"]) == (saved.id, saved.text)


def test_ask_json_stream_prints_lines_as_text_arrives(capsys):
    code, out, err = ask(capsys, "--json-stream", "hi")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[-1]["type"] == "reply" and all(line["type"] == "text" for line in lines[:-1])
    assert len(lines) > 1
    assert "".join(line["text"] for line in lines[:-1]) == lines[-1]["text"]


def test_ask_json_with_grounding_shapes(capsys, monkeypatch):
    """The grounding shapes of a reply with a box reach the JSON (the tiny model's text is noise, so it is set)."""
    from assistant.api import ReplyStream

    def fake_pieces(self):
        self._started = True
        self.text = '[{"bbox_2d": [100, 100, 500, 500], "label": "cat"}]'
        self._finish(status="ok")
        yield self.text

    monkeypatch.setattr(ReplyStream, "_read", fake_pieces)
    image = make_image(user_paths().ensure().data / "cat.png", (400, 300))
    code, out, err = ask(capsys, "--json", "--image", str(image), "where is the cat?")
    assert code == 0, err
    record = json.loads(out)
    assert record["grounding"]["shapes"][0]["label"] == "cat"
    assert record["grounding"]["image_size"] == [400, 300]


def test_sampling_options_and_system_prompt(capsys):
    args = ("--temperature", "1.5", "--top-p", "0.9", "--seed", "5", "--max-tokens", "10", "--json", "pick words")
    first = json.loads(ask(capsys, *args)[1])
    second = json.loads(ask(capsys, *args)[1])
    assert first["text"] == second["text"]
    plain = json.loads(ask(capsys, "--json", "pick words")[1])
    system = json.loads(ask(capsys, "--json", "--system", "Answer with one word, always.", "pick words")[1])
    assert system["tokens"]["prompt"] > plain["tokens"]["prompt"]
    with Store.open_default() as store:
        meta = store.get_conversation(system["chat_id"]).messages[-1].meta
    assert meta.extra["system_prompt"] == "Answer with one word, always."


def test_continue_the_most_recent_chat(capsys):
    code, _, err = ask(capsys, "-c", "hi")
    assert code == 2 and "no saved chat to continue" in one_line_error(err)
    assert ask(capsys, "first")[0] == 0
    assert ask(capsys, "other chat")[0] == 0
    assert ask(capsys, "--chat", "1", "back to the first")[0] == 0  # chat 1 is now the most recent
    assert ask(capsys, "-c", "continued")[0] == 0
    assert ask(capsys, "--chat", "last", "and again")[0] == 0
    _, questions = user_messages(1)
    assert [m.text for m in questions] == ["first", "back to the first", "continued", "and again"]
    code, _, err = ask(capsys, "--chat", "newest", "hi")
    assert code == 2 and "chat id or `last`" in one_line_error(err)


def test_ask_help_lists_the_new_options(capsys):
    code, out, _ = run(capsys, "ask", "--help")
    assert code == 0
    out = " ".join(out.split())
    for option in ("--system", "--temperature", "--top-p", "--seed", "--max-tokens", "--json", "--json-stream",
                   "--continue", "-c", "--chat ID|last", "- reads one from stdin", "piped"):
        assert option in out, option


# --- models, pull ---------------------------------------------------------------------------------

def fake_hub_download(cache, repo_id, complete=True):
    """A Hugging Face cache entry laid out as huggingface_hub writes it (blobs, refs, snapshot links)."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    files = {"config.json": b"{}", "model.safetensors": b"w" * 5000}
    if not complete:
        files = {"config.json": b"{}"}
        (repo / "blobs" / "feed.incomplete").write_bytes(b"w" * 100)
    for name, data in files.items():
        blob = repo / "blobs" / f"blob-{name}"
        blob.write_bytes(data)
        (snapshot / name).symlink_to(blob)
    return repo


def test_models_lists_local_and_missing_models(capsys, monkeypatch, tmp_path):
    cache = tmp_path / "hf"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    fake_hub_download(cache, "HuggingFaceTB/SmolVLM-256M-Instruct")
    fake_hub_download(cache, "Qwen/Qwen2.5-VL-3B-Instruct", complete=False)
    assert ask(capsys, "build the tiny model")[0] == 0
    code, out, err = run(capsys, "models")
    assert code == 0, err
    rows = {line.split()[1] if line.startswith("*") else line.split()[0]: line for line in out.splitlines()}
    assert "built locally" in rows["tiny-smolvlm"] and "KB" in rows["tiny-smolvlm"]
    assert "downloaded" in rows["smolvlm-256m"] and "5.0 KB" in rows["smolvlm-256m"]
    assert "partly downloaded" in rows["qwen2.5-vl-3b"]
    assert "not downloaded" in rows["smolvlm2-2.2b"]
    assert "assistant pull" in err
    code, out, _ = run(capsys, "models", "--json")
    states = {item["profile"]: item for item in json.loads(out)}
    assert states["smolvlm-256m"]["size_bytes"] == 5002 and states["smolvlm-256m"]["kind"] == "hub"


def test_pull_offline_and_local_builds_do_not_touch_the_network(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, _ = run(capsys, "pull", "tiny-smolvlm")
    assert code == 0 and "built locally" in out
    code, _, err = run(capsys, "pull", "smolvlm-256m")
    line = one_line_error(err)
    assert code == 2 and "HuggingFaceTB/SmolVLM-256M-Instruct" in line and "HF_HUB_OFFLINE" in line
    code, _, err = run(capsys, "pull", "no-such-profile")
    assert code == 2 and "unknown profile" in one_line_error(err)


def test_models_and_pull_for_a_remote_backend_and_a_local_directory(capsys, tmp_path):
    profiles = user_paths().ensure().profiles_dir
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / "served.toml").write_text('[model]\nid = "qwen2.5-vl"\nbackend = "openai"\n')
    weights = tmp_path / "my-model"
    weights.mkdir()
    (weights / "config.json").write_text("{}")
    (profiles / "mine.toml").write_text(f'[model]\nid = "{weights}"\n')
    code, out, _ = run(capsys, "models")
    rows = {line.split()[0]: line for line in out.splitlines() if not line.startswith("*")}
    assert "served by the openai backend" in rows["served"]
    assert "local directory" in rows["mine"] and "2 B" in rows["mine"]
    code, out, _ = run(capsys, "pull", "served")
    assert code == 0 and "nothing to download" in out
    code, out, _ = run(capsys, "pull", "mine")
    assert code == 0 and str(weights) in out


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


def test_models_and_warning_routing_stay_light():
    """`assistant models` reads directories only: its modules import no torch, transformers or huggingface_hub."""
    code = (
        "import json, sys, assistant.models, assistant.libwarnings\n"
        "print(json.dumps([m for m in ('torch', 'transformers', 'huggingface_hub') if m in sys.modules]))\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(output.strip().splitlines()[-1]) == []


def test_cli_sends_library_warnings_to_the_log_file():
    """What `assistant train` printed: transformers' FutureWarnings. After the CLI starts they go to assistant.log."""
    script = (
        "from assistant.cli import main\n"
        "main(['profiles', 'list'])\n"
        "from assistant.engine.loading import load_model\n"
        "from assistant.profiles import load_profile\n"
        "load_model(load_profile('tiny-smolvlm')).model.is_gradient_checkpointing\n"  # a FutureWarning in transformers 5
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            stdin=subprocess.DEVNULL, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    assert "FutureWarning: `is_gradient_checkpointing`" in user_paths().log_file.read_text()


def test_ctrl_c_during_a_reply_keeps_it_as_stopped_and_the_next_ask_works(capsys, monkeypatch):
    import click

    real_echo = click.echo
    printed = []

    def interrupting_echo(message=None, *args, **kwargs):
        if kwargs.get("nl") is False and message:
            printed.append(message)
            if len(printed) == 2:
                raise KeyboardInterrupt
        return real_echo(message, *args, **kwargs)

    monkeypatch.setattr(click, "echo", interrupting_echo)
    code, out, err = run(capsys, "ask", "--profile", "tiny-smolvlm", "--max-tokens", "300", "tell me everything")
    monkeypatch.setattr(click, "echo", real_echo)
    assert code == 130, err  # like any Ctrl+C, with the reply kept
    assert "stopped" in err
    with Store.open_default() as store:
        reply = store.get_conversation(1).messages[-1]
    assert reply.status == "stopped" and reply.meta.completion_tokens < 300
    assert reply.text.startswith("".join(printed))
    assert ask(capsys, "-c", "still there?")[0] == 0


def test_a_thread_count_that_is_not_a_number_keeps_the_default_and_says_so(capsys, monkeypatch):
    """It used to fail the reply with "generation failed: ValueError: invalid literal for int()"."""
    import torch

    from assistant.engine import executor

    before = executor.run(torch.get_num_threads)  # the engine thread's count (OpenMP keeps one per thread)
    monkeypatch.setenv("ASSISTANT_THREADS", "two")
    code, out, err = run(capsys, "ask", "--profile", "tiny-smolvlm", "--max-tokens", "2", "Hello?")
    assert code == 0, err
    assert err.splitlines()[0] == ("warning: ASSISTANT_THREADS='two' is not a whole number of threads, 1 or more, so "
                                   f"torch's default ({before}) is used")
    assert executor.run(torch.get_num_threads) == before and out.strip() and "[chat " in err  # the reply was given
