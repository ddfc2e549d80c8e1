"""Dataset files: TRL and ShareGPT parsing, import as chats (CLI included), export and round trips."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from assistant.cli import main
from assistant.errors import AssistantError
from assistant.store import Store
from assistant_plugins.finetune.dataset import DataSelection, build_dataset
from assistant_plugins.finetune.formats import import_file, read_file, write_dataset
from test_finetune_support import QUESTION, add_chat, colour_chats, square, write_colour_dataset


@pytest.fixture
def store() -> Store:
    with Store.open_default() as opened:
        yield opened


def write_lines(path: Path, records: list) -> Path:
    path.write_text("".join((record if isinstance(record, str) else json.dumps(record)) + "\n" for record in records))
    return path


def shape(chat) -> list[tuple[str, list]]:
    """(role, [kind or text, ...]) of a parsed chat: enough to compare structure."""
    return [(message.role, [value if kind == "text" else kind for kind, value in message.items])
            for message in chat.messages]


def test_trl_variants(tmp_path: Path) -> None:
    square("red", random.Random(0)).save(tmp_path / "a.png")
    square("blue", random.Random(1)).save(tmp_path / "b.png")
    path = write_lines(tmp_path / "data.jsonl", [
        {"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q1"}]},
                      {"role": "assistant", "content": [{"type": "text", "text": "A1"}]}], "images": ["a.png"]},
        {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "no marker"},
                      {"role": "assistant", "content": "A2"}], "images": ["a.png", "b.png"]},
        {"prompt": [{"role": "user", "content": [{"type": "image", "image": "b.png"}, {"type": "text", "text": "Q3"}]}],
         "completion": [{"role": "assistant", "content": "A3"}]},
        {"messages": [{"role": "user", "content": "<image>Q4"}, {"role": "assistant", "content": "A4"}],
         "images": ["b.png"]},
        "",
        {"messages": [{"role": "user", "content": "call it"},
                      {"role": "assistant", "content": "",
                       "tool_calls": [{"type": "function", "function": {"name": "click", "arguments": "{\"x\": 1}"}}]},
                      {"role": "tool", "content": "done"}, {"role": "assistant", "content": "ok"}]},
    ])
    chats = read_file(path)
    assert [shape(chat) for chat in chats] == [
        [("user", ["image", "Q1"]), ("assistant", ["A1"])],
        [("system", ["S"]), ("user", ["image", "image", "no marker"]), ("assistant", ["A2"])],
        [("user", ["image", "Q3"]), ("assistant", ["A3"])],
        [("user", ["image", "Q4"]), ("assistant", ["A4"])],
        [("user", ["call it"]), ("assistant", ["tool_call"]), ("tool", ["done"]), ("assistant", ["ok"])],
    ]
    assert chats[1].image_refs == ["a.png", "b.png"] and chats[2].image_refs == ["b.png"]
    assert chats[4].messages[1].items[0][1] == {"name": "click", "arguments": {"x": 1}}


def test_sharegpt(tmp_path: Path) -> None:
    square("red", random.Random(0)).save(tmp_path / "a.png")
    path = write_lines(tmp_path / "sg.jsonl", [
        {"conversations": [{"from": "human", "value": "<image>What colour?"}, {"from": "gpt", "value": "red"},
                           {"from": "human", "value": "Sure?"}, {"from": "function_call",
                                                                  "value": "{\"name\": \"look\", \"arguments\": {}}"},
                           {"from": "observation", "value": "red pixels"}, {"from": "gpt", "value": "yes"}],
         "system": "Be brief.", "images": ["a.png"]},
    ])
    (chat,) = read_file(path, "sharegpt")
    assert shape(chat) == [("system", ["Be brief."]), ("user", ["image", "What colour?"]), ("assistant", ["red"]),
                           ("user", ["Sure?"]), ("assistant", ["tool_call"]), ("tool", ["red pixels"]),
                           ("assistant", ["yes"])]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"data.jsonl line 1 is not JSON"),
        ('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "images": ["x.png"]}',
         r"line 1: image x.png not found \(paths are relative to "),
        ('{"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "image"}]}, '
         '{"role": "assistant", "content": "a"}], "images": ["a.png"]}', "more image placeholders than images"),
        ('{"messages": [{"role": "wizard", "content": "q"}]}', "unknown role 'wizard'"),
        ('{"messages": [{"role": "user", "content": "q"}]}', "no assistant message"),
        ('{"text": "hello"}', "neither TRL .* nor ShareGPT"),
        ('{"conversations": [{"from": "alien", "value": "q"}]}', "unknown speaker 'alien'"),
        ('{"messages": [{"role": "user", "content": [{"type": "image", "image": "https://x/y.png"}]}, '
         '{"role": "assistant", "content": "a"}]}', "remote image"),
    ],
)
def test_bad_lines_name_the_line_and_the_problem(tmp_path: Path, line: str, message: str) -> None:
    square("red", random.Random(0)).save(tmp_path / "a.png")
    path = tmp_path / "data.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(AssistantError, match=message):
        read_file(path)


def test_import_tags_chats_and_loads_images_relative_to_the_file(tmp_path: Path, store: Store) -> None:
    path = write_colour_dataset(tmp_path / "set", "colours", 2, seed=0)
    result = import_file(store, path, "auto", ["mine"])
    assert result.format == "trl" and result.images == 8 and result.messages == 16
    assert result.tags == ["import:colours.jsonl", "mine"]
    tagged = store.list_conversations(tag="import:colours.jsonl")
    assert sorted(summary.id for summary in tagged) == result.conversation_ids
    conversation = store.get_conversation(result.conversation_ids[0])
    assert conversation.title == QUESTION
    assert [message.role for message in conversation.messages] == ["user", "assistant"]
    part = conversation.messages[0].images[0]
    record = json.loads(path.read_text().splitlines()[0])
    original = (path.parent / record["images"][0]).read_bytes()
    assert store.image_path(part.sha256).read_bytes() == original


def test_failed_import_stores_nothing(tmp_path: Path, store: Store) -> None:
    square("red", random.Random(0)).save(tmp_path / "a.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    good = {"messages": [{"role": "user", "content": "<image>q"}, {"role": "assistant", "content": "a"}],
            "images": ["a.png"]}
    bad = dict(good, images=["broken.png"])
    path = write_lines(tmp_path / "data.jsonl", [good, good, bad])
    with pytest.raises(AssistantError, match="truncated or corrupt"):
        import_file(store, path)
    assert store.list_conversations() == []


@pytest.mark.parametrize("fmt", ["trl", "sharegpt"])
def test_export_then_import_round_trips(tmp_path: Path, store: Store, fmt: str) -> None:
    rng = random.Random(4)
    add_chat(store, [("system", "Be brief."), ("user", QUESTION, {"image": square("green", rng)}),
                     ("assistant", "blue", {"correction": "green"}), ("user", "Thanks"), ("assistant", "welcome")])
    add_chat(store, [("user", "q"), ("assistant", "bad", {"rating": -1})])
    colour_chats(store, 2, seed=9)
    source = build_dataset(store, DataSelection())
    output = tmp_path / "out" / f"export-{fmt}.jsonl"
    lines, images = write_dataset(source.examples, source.images, output, fmt)
    assert (lines, images) == (3, 3)
    assert all(path.suffix == ".png" for path in (output.parent / f"export-{fmt}_images").iterdir())
    with Store(tmp_path / "other.sqlite3", tmp_path / "other-images") as other:
        imported = import_file(other, output, fmt)
        again = build_dataset(other, DataSelection())
        assert len(imported.conversation_ids) == 3
        assert again.fingerprint() == source.fingerprint()


def test_cli_import_and_export_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_colour_dataset(tmp_path, "train", 1, seed=2)
    assert main(["chats", "import", str(path), "--tag", "colours"]) == 0
    out = capsys.readouterr().out
    assert "imported 4 chats (8 messages, 4 images, trl)" in out and "import:train.jsonl, colours" in out
    exported = tmp_path / "again.jsonl"
    assert main(["chats", "export-dataset", "--format", "sharegpt", "-o", str(exported), "--tag", "colours"]) == 0
    assert "wrote 4 conversations and 4 images" in capsys.readouterr().out
    first = json.loads(exported.read_text().splitlines()[0])
    assert first["conversations"][0]["value"] == "<image>" + QUESTION
    assert (exported.parent / first["images"][0]).is_file()
    assert main(["chats", "import", str(tmp_path / "missing.jsonl")]) == 2
    assert "dataset file not found" in capsys.readouterr().err
    # the lead's per-chat export still works
    assert main(["chats", "export", "1", "--format", "jsonl"]) == 0
