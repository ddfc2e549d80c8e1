"""Training examples from the real store: corrections, ratings, selections, missing images, empty data, split."""

from __future__ import annotations

import random

import pytest
from PIL import Image

from assistant.errors import AssistantError
from assistant.store import Store
from assistant_plugins.finetune.dataset import (
    MISSING_IMAGE,
    DataSelection,
    build_dataset,
    conversation_example,
    format_ids,
    parse_ids,
    split_examples,
)
from test_finetune_support import QUESTION, add_chat, colour_chats, square


@pytest.fixture
def store() -> Store:
    with Store.open_default() as opened:
        yield opened


def texts(example) -> list[tuple[str, str]]:
    return [(message.role, message.training_text) for message in example.messages]


def test_correction_replaces_reply_and_rated_down_ends_the_example(store: Store) -> None:
    chat = add_chat(
        store,
        [
            ("system", "Answer in one word."),
            ("user", "Colour of the sky?"),
            ("assistant", "Green.", {"correction": "blue"}),
            ("user", "And grass?"),
            ("assistant", "green", {"rating": 1}),
            ("user", "And snow?"),
            ("assistant", "purple", {"rating": -1}),
            ("user", "Sure?"),
            ("assistant", "yes"),
        ],
    )
    example, reason = conversation_example(store.get_conversation(chat))
    assert reason == ""
    assert texts(example) == [
        ("system", "Answer in one word."),
        ("user", "Colour of the sky?"),
        ("assistant", "blue"),
        ("user", "And grass?"),
        ("assistant", "green"),
    ]
    assert example.targets == [2, 4]


def test_modes_pick_rated_or_corrected_replies_and_keep_the_rest_as_context(store: Store) -> None:
    chat = add_chat(
        store,
        [
            ("user", "a?"), ("assistant", "A", {"rating": 1}),
            ("user", "b?"), ("assistant", "B", {"correction": "BB"}),
            ("user", "c?"), ("assistant", "C"),
        ],
    )
    conversation = store.get_conversation(chat)
    rated, _ = conversation_example(conversation, "rated")
    assert rated.targets == [1] and len(rated.messages) == 2
    corrected, _ = conversation_example(conversation, "corrected")
    assert corrected.targets == [3] and texts(corrected)[1] == ("assistant", "A")
    everything, _ = conversation_example(conversation, "all")
    assert everything.targets == [1, 3, 5]


def test_failed_replies_are_dropped_but_a_corrected_failure_is_learned(store: Store) -> None:
    chat = add_chat(
        store,
        [
            ("user", "q1"), ("assistant", "partial", {"status": "failed"}),
            ("user", "q2"), ("assistant", "cut", {"status": "stopped"}),
            ("user", "q3"), ("assistant", "", {"status": "failed", "correction": "fixed"}),
        ],
    )
    example, _ = conversation_example(store.get_conversation(chat))
    assert texts(example) == [("user", "q1"), ("user", "q2"), ("assistant", "cut"), ("user", "q3"),
                              ("assistant", "fixed")]
    assert example.targets == [4]  # the stopped reply is context only


def test_selection_by_ids_and_tag(store: Store) -> None:
    tagged = colour_chats(store, 3, tag="colours")
    other = add_chat(store, [("user", "hi"), ("assistant", "hello")], ["small-talk"])
    by_tag = build_dataset(store, DataSelection(tag="colours"))
    assert [example.conversation_id for example in by_tag.examples] == tagged
    assert by_tag.stats.summary() == "3 conversations, 3 assistant turns, 3 images"
    by_ids = build_dataset(store, DataSelection(chats=[tagged[1], other]))
    assert [example.conversation_id for example in by_ids.examples] == [tagged[1], other]
    both = build_dataset(store, DataSelection(chats=[tagged[0], other], tag="colours"))
    assert [example.conversation_id for example in both.examples] == [tagged[0]]


def test_missing_image_skips_the_chat_counts_and_warns(store: Store) -> None:
    ids = colour_chats(store, 3)
    victim = store.get_conversation(ids[1]).images[0]
    store.image_path(victim.sha256).unlink()
    dataset = build_dataset(store, DataSelection())
    assert [example.conversation_id for example in dataset.examples] == [ids[0], ids[2]]
    assert dataset.stats.skipped == {MISSING_IMAGE: 1}
    assert any("missing from the store" in line for line in dataset.stats.warnings())


def test_no_usable_examples_says_why(store: Store) -> None:
    with pytest.raises(AssistantError, match="no chats saved to train on"):
        build_dataset(store, DataSelection())
    add_chat(store, [("user", "only a question")])
    add_chat(store, [("user", "q"), ("assistant", "bad", {"rating": -1})])
    with pytest.raises(AssistantError) as error:
        build_dataset(store, DataSelection())
    message = str(error.value)
    assert "2 selected chats" in message and "1 with no assistant reply" in message
    assert "1 with only rated-down replies" in message
    add_chat(store, [("user", "q"), ("assistant", "fine")])
    with pytest.raises(AssistantError, match="no reply rated up.*rate good replies up"):
        build_dataset(store, DataSelection(rated=True))
    with pytest.raises(AssistantError, match="with tag 'nothing'"):
        build_dataset(store, DataSelection(tag="nothing"))


def test_plugin_examples_replace_the_built_in_conversion(store: Store) -> None:
    from assistant import hookimpl
    from assistant.plugins import create_plugin_manager

    class Uppercase:
        @hookimpl
        def conversation_to_examples(self, conversation):
            image = square("red", random.Random(1))
            return [{"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q"}]},
                                  {"role": "assistant", "content": "RED"}], "images": [image]}]

    manager = create_plugin_manager(load_entry_points=False)
    manager.register(Uppercase(), name="uppercase")
    colour_chats(store, 2)
    dataset = build_dataset(store, DataSelection(), plugins=manager)
    assert len(dataset.examples) == 2
    example = dataset.examples[0]
    assert texts(example)[1] == ("assistant", "RED")
    part = example.messages[0].images[0]
    image = dataset.images.open(part)
    assert isinstance(image, Image.Image) and image.size == (part.width, part.height)

    class Broken:
        @hookimpl
        def conversation_to_examples(self, conversation):
            raise KeyError("oops")

    manager.register(Broken(), name="broken")
    with pytest.raises(AssistantError, match="plugin broken failed to turn chat .* ASSISTANT_DISABLE_PLUGINS=broken"):
        build_dataset(store, DataSelection(), plugins=manager)


def test_ids_round_trip_and_bad_ids() -> None:
    assert parse_ids("3,5,10-12") == [3, 5, 10, 11, 12]
    assert format_ids([12, 3, 10, 11, 5]) == "3,5,10-12"
    with pytest.raises(AssistantError, match="'x' is not a chat id"):
        parse_ids("1,x")
    with pytest.raises(AssistantError, match="'5-2'"):
        parse_ids("5-2")


def test_split_is_seeded_and_keeps_training_data(store: Store) -> None:
    colour_chats(store, 10)
    examples = build_dataset(store, DataSelection()).examples
    train, held = split_examples(examples, 0.2, seed=3)
    again_train, again_held = split_examples(examples, 0.2, seed=3)
    assert [e.conversation_id for e in held] == [e.conversation_id for e in again_held]
    assert len(held) == 2 and len(train) == 8
    assert not {e.conversation_id for e in held} & {e.conversation_id for e in train}
    assert split_examples(examples[:1], 0.5, seed=0) == (examples[:1], [])
    with pytest.raises(AssistantError, match="val-split"):
        split_examples(examples, 1.0, seed=0)


def test_split_keeps_the_examples_of_one_chat_together(store: Store) -> None:
    colour_chats(store, 6)
    examples = build_dataset(store, DataSelection()).examples
    # a plugin may make several examples of one chat: they stay on one side whatever the seed
    doubled = [example for example in examples for _ in range(3)]
    for seed in range(8):
        train, held = split_examples(doubled, 0.34, seed=seed)
        assert len(held) == 6 and len(train) == 12  # 2 of the 6 chats, 3 examples each
        assert not {e.conversation_id for e in held} & {e.conversation_id for e in train}
    sides = {tuple(e.conversation_id for e in split_examples(doubled, 0.34, seed=seed)[1]) for seed in range(8)}
    assert len(sides) > 1  # the seed chooses which chats


def test_fingerprint_follows_what_training_reads(store: Store) -> None:
    chat = add_chat(store, [("user", QUESTION), ("assistant", "red")])
    before = build_dataset(store, DataSelection()).fingerprint()
    assert build_dataset(store, DataSelection()).fingerprint() == before
    assert build_dataset(store, DataSelection()).fingerprint("Be brief.") != before
    reply = store.get_conversation(chat).messages[1]
    store.set_correction(reply.id, "blue")
    assert build_dataset(store, DataSelection()).fingerprint() != before
