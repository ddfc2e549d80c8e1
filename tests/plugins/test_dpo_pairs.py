"""Preference pairs: from corrections and rated-down regenerate siblings in a real store, from TRL preference files
in both of TRL's forms (imported as chats and exported again), and the one-line errors for bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from assistant import Assistant
from assistant.cli import main
from assistant.conversation import Conversation, Message, ReplyMeta, TextPart
from assistant.errors import AssistantError
from assistant.store import Store
from assistant_plugins.finetune.dataset import DataSelection
from assistant_plugins.finetune.formats import import_file
from assistant_plugins.finetune.pairs import (
    NO_PAIRS,
    conversation_pairs,
    pairs_from_file,
    pairs_from_store,
    split_pairs,
)
from test_finetune_support import QUESTION, add_chat, square


def sides(pairs) -> list[tuple[str, str]]:
    return [(pair.chosen.text, pair.rejected.text) for pair in pairs]


def test_corrections_and_rated_siblings_make_pairs_with_the_chat_before_them_as_prompt() -> None:
    red = Message("user", [TextPart(QUESTION)])
    conversation = Conversation(id=7, messages=[
        Message("system", [TextPart("Be brief.")]),
        red,
        Message("assistant", [TextPart("blue")], correction="red"),
        Message("user", [TextPart("Sure?")]),
        Message("assistant", [TextPart("yes")], rating=1,
                meta=ReplyMeta(extra={"rejected": [{"text": "no"}, {"text": "maybe"}, {"text": "yes"}]})),
        Message("user", [TextPart("Thanks")]),
        Message("assistant", [TextPart("welcome")], rating=1),  # rated up, nothing to compare with
        Message("user", [TextPart("Bye")]),
        Message("assistant", [TextPart("bye")], rating=-1),  # rated down, never regenerated
    ])
    pairs = conversation_pairs(conversation)
    assert sides(pairs) == [("red", "blue"), ("yes", "no"), ("yes", "maybe")]  # the identical sibling teaches nothing
    assert [pair.source for pair in pairs] == ["chat 7 reply 1", "chat 7 reply 2 (1)", "chat 7 reply 2 (2)"]
    first, second = pairs[0], pairs[1]
    assert first.prompt == conversation.messages[:2]
    assert second.prompt == conversation.messages[:4]  # the earlier (corrected) reply is context
    for pair in pairs:
        chosen, rejected = pair.examples
        assert chosen.targets == rejected.targets == [len(pair.prompt)]
        assert chosen.messages[-1] is pair.chosen and rejected.messages[-1] is pair.rejected
        assert pair.chosen.rating == pair.rejected.rating == 0 and pair.chosen.correction is None


def test_a_corrected_reply_with_siblings_prefers_the_correction_over_all_of_them() -> None:
    conversation = Conversation(id=1, messages=[
        Message("user", [TextPart("2+2?")]),
        Message("assistant", [TextPart("5")], rating=-1, correction="4",
                meta=ReplyMeta(extra={"rejected": [{"text": "22"}]})),
    ])
    assert sides(conversation_pairs(conversation)) == [("4", "5"), ("4", "22")]


def _store_pairs(store: Store, **selection) -> list:
    return pairs_from_store(store, DataSelection(**selection)).pairs


def test_pairs_from_the_store_keep_their_images(tmp_path: Path) -> None:
    rng = random.Random(0)
    with Store.open_default() as store:
        chat = add_chat(store, [("user", QUESTION, {"image": square("red", rng)}),
                                ("assistant", "blue", {"correction": "red"})], ["mine"])
        add_chat(store, [("user", "hello"), ("assistant", "hi")], ["mine"])
        pairs = _store_pairs(store, tag="mine")
        assert sides(pairs) == [("red", "blue")]
        assert pairs[0].conversation_id == chat and len(pairs[0].images) == 1
        assert pairs_from_store(store, DataSelection(tag="mine")).images.has(pairs[0].images[0])


def test_a_store_without_pairs_says_how_to_make_some() -> None:
    with Store.open_default() as store:
        add_chat(store, [("user", "hello"), ("assistant", "hi", {"rating": 1})])
        with pytest.raises(AssistantError) as caught:
            pairs_from_store(store, DataSelection())
    message = str(caught.value)
    assert message.startswith(NO_PAIRS + " in the 1 selected chat;") and "\n" not in message


def test_regenerating_a_rated_down_reply_keeps_it_as_the_rejected_sibling() -> None:
    bot = Assistant.from_profile("tiny-smolvlm")
    chat = bot.chat()
    first = chat.ask("Name a colour", max_new_tokens=3)
    chat.rate(first.message_id, -1)
    second = chat.regenerate(max_new_tokens=2)
    chat.rate(second.message_id, -1)
    third = chat.regenerate(max_new_tokens=4)
    with pytest.raises(AssistantError, match="no preference pairs"):
        _store_pairs(bot.store, chats=[chat.id])
    chat.rate(third.message_id, 1)
    pairs = _store_pairs(bot.store, chats=[chat.id])
    assert [pair.chosen.text for pair in pairs] == [third.text, third.text]
    assert [pair.rejected.text for pair in pairs] == [first.text, second.text]
    assert [message.role for message in pairs[0].prompt] == ["user"]

    chat.regenerate(max_new_tokens=2)  # a reply not rated down is replaced, not rejected; earlier rejections stay
    assert bot.store.get_conversation(chat.id).messages[-1].meta.extra["rejected"] == [
        {"text": first.text}, {"text": second.text}]
    bot.close()


# --- TRL preference files -----------------------------------------------------------------------------------------


def write_lines(path: Path, records: list) -> Path:
    path.write_text("".join((json.dumps(record) if not isinstance(record, str) else record) + "\n"
                            for record in records), encoding="utf-8")
    return path


def preference_file(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    square("red", random.Random(1)).save(folder / "red.png")
    conversational = {
        "prompt": [{"role": "system", "content": "Answer in one word."},
                   {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}],
        "chosen": [{"role": "assistant", "content": [{"type": "text", "text": "red"}]}],
        "rejected": [{"role": "assistant", "content": [{"type": "text", "text": "green"}]}],
        "images": ["red.png"],
    }
    plain = {"prompt": "<image>Is it a square?", "chosen": "yes", "rejected": "no", "images": ["red.png"]}
    implicit = {  # TRL's implicit prompt: the shared first messages of chosen and rejected
        "chosen": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
        "rejected": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}],
    }
    return write_lines(folder / "prefs.jsonl", [conversational, plain, implicit])


def test_both_trl_forms_read_as_pairs(tmp_path: Path) -> None:
    pair_set = pairs_from_file(preference_file(tmp_path / "data"))
    assert sides(pair_set.pairs) == [("red", "green"), ("yes", "no"), ("4", "5")]
    first, second, third = pair_set.pairs
    assert [message.role for message in first.prompt] == ["system", "user"] and len(first.images) == 1
    assert second.prompt[0].text == "Is it a square?" and len(second.images) == 1
    assert third.prompt[0].text == "2+2?" and not third.images
    assert [pair.source for pair in pair_set.pairs] == ["prefs.jsonl line 1", "prefs.jsonl line 2",
                                                         "prefs.jsonl line 3"]
    train, held = split_pairs(pair_set.pairs, 0.34, seed=0)
    assert len(train) == 2 and len(held) == 1


def test_import_then_export_trl_preference_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = preference_file(tmp_path / "data")
    assert main(["chats", "import", str(source), "--tag", "prefs"]) == 0
    out = capsys.readouterr().out
    assert "imported 3 chats" in out and "trl-preference" in out and "--method dpo" in out
    with Store.open_default() as store:
        reply = store.get_conversation(1).messages[-1]
        assert reply.rating == 1 and reply.meta.extra["rejected"] == [{"text": "green"}]
        assert sides(_store_pairs(store, tag="prefs")) == [("red", "green"), ("yes", "no"), ("4", "5")]

    exported = tmp_path / "pairs.jsonl"
    assert main(["chats", "export-dataset", "--format", "trl-preference", "--tag", "prefs", "-o", str(exported)]) == 0
    assert "wrote 3 preference pairs and 1 images" in capsys.readouterr().out
    records = [json.loads(line) for line in exported.read_text().splitlines()]
    assert records[0]["chosen"] == [{"role": "assistant", "content": [{"type": "text", "text": "red"}]}]
    assert records[0]["rejected"][0]["content"][0]["text"] == "green"
    assert records[0]["prompt"][1]["content"][0] == {"type": "image"} and len(records[0]["images"]) == 1
    assert (exported.parent / records[0]["images"][0]).is_file()
    again = pairs_from_file(exported)  # what was written reads back as the same pairs
    assert sides(again.pairs) == [("red", "green"), ("yes", "no"), ("4", "5")]
    assert [len(pair.images) for pair in again.pairs] == [1, 1, 0]


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"prompt": "hi", "chosen": "a"}, "line 2: no `rejected`; a preference line needs `prompt`, `chosen`"),
        ({"prompt": "hi", "rejected": "a"}, "line 2: no `chosen`"),
        ({"chosen": "a", "rejected": "b"}, "line 2: no `prompt`"),
        ({"prompt": "hi", "chosen": 3, "rejected": "b"}, "line 2: `chosen` must be a string or a list of messages"),
        ({"prompt": "hi", "chosen": "a", "rejected": ""}, "line 2: the `rejected` reply is empty"),
        ({"prompt": [{"role": "assistant", "content": "x"}], "chosen": "a", "rejected": "b"},
         "line 2: the `prompt` has no user message"),
        ({"prompt": "hi", "chosen": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}],
          "rejected": "b"}, "line 2: `chosen` must be one assistant reply"),
        ({"prompt": "<image>hi", "chosen": "a", "rejected": "b", "images": ["gone.png"]}, "image gone.png not found"),
    ],
)
def test_a_bad_preference_line_is_one_error_and_imports_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], record: dict, expected: str
) -> None:
    good = {"prompt": "hi", "chosen": "hello", "rejected": "go away"}
    path = write_lines(tmp_path / "bad.jsonl", [good, record])
    assert main(["chats", "import", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    with Store.open_default() as store:
        assert store.list_conversations() == []  # nothing half-imported
    with pytest.raises(AssistantError, match="line 2"):
        pairs_from_file(path)


def test_import_file_counts_a_preference_file(tmp_path: Path) -> None:
    with Store.open_default() as store:
        result = import_file(store, preference_file(tmp_path / "data"))
    assert result.format == "trl-preference" and len(result.conversation_ids) == 3 and result.images == 2


def test_chats_with_videos_are_skipped_with_one_counted_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Training cannot pass video frames to the processor yet: such chats are left out, counted and said once."""
    from assistant.conversation import VideoPart
    from assistant.images import image_from_pil
    from assistant_plugins.finetune.dataset import VIDEO, build_dataset

    with Store.open_default() as store:
        frame = store.put_image(image_from_pil(square("red", random.Random(3)), "frame.png"))
        video = VideoPart("clip.mp4", [frame.sha256], [0.0], [0], frame.width, frame.height, 10.0, 1.0, 10)
        for correction in ("red", "blue"):
            chat = store.create_conversation(tags=["mixed"])
            store.add_message(chat.id, Message("user", [video, TextPart("What colour?")]))
            reply = store.add_message(chat.id, Message("assistant", [TextPart("green")]))
            store.set_correction(reply.id, correction)
        add_chat(store, [("user", "2+2?"), ("assistant", "5", {"correction": "4"})], ["mixed"])

        dataset = build_dataset(store, DataSelection(tag="mixed"))
        assert len(dataset.examples) == 1 and dataset.stats.skipped == {VIDEO: 2}
        assert dataset.stats.warnings() == ["2 chats with videos skipped: training on videos is not supported yet"]
        pair_set = pairs_from_store(store, DataSelection(tag="mixed"))
        assert sides(pair_set.pairs) == [("4", "5")] and pair_set.skipped == {VIDEO: 2}
        with pytest.raises(AssistantError, match=r"in the 2 selected chats \(2 chats with videos skipped\)"):
            pairs_from_store(store, DataSelection(chats=[1, 2]))

    assert main(["chats", "export-dataset", "--tag", "mixed", "-o", str(tmp_path / "sft.jsonl")]) == 0
    assert "warning: 2 chats with videos skipped: training on videos is not supported yet" in capsys.readouterr().err
    assert len((tmp_path / "sft.jsonl").read_text().splitlines()) == 1
