"""The label mask, token by token, on both tiny architectures (Idefics3/SmolVLM and Qwen2-VL)."""

from __future__ import annotations

import random

import pytest

from assistant.conversation import Message, TextPart
from assistant.engine.loading import load_model
from assistant.images import image_from_pil
from assistant.profiles import load_profile
from assistant_plugins.finetune.collate import IGNORE, Encoder, align_labels
from assistant_plugins.finetune.dataset import Example, ImageLibrary
from test_finetune_support import QUESTION, square

# How each chat template opens and closes an assistant turn.
TURN_MARKERS = {
    "tiny-smolvlm": ("Assistant:", "<end_of_utterance>"),
    "tiny-qwen2vl": ("<|im_start|>assistant\n", "<|im_end|>"),
}


@pytest.fixture(scope="module", params=sorted(TURN_MARKERS))
def loaded(request, tmp_path_factory, shared_cache):
    """The tiny model of one architecture, loaded once per module (private home, the session's model cache)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("ASSISTANT_HOME", str(tmp_path_factory.mktemp("home")))
    mp.setenv("ASSISTANT_CACHE_DIR", str(shared_cache))
    try:
        yield load_model(load_profile(request.param))
    finally:
        mp.undo()


def examples(library: ImageLibrary) -> list[Example]:
    rng = random.Random(0)
    red = library.add_image(image_from_pil(square("red", rng), "red.png"))
    blue = library.add_image(image_from_pil(square("blue", rng), "blue.png"))
    long_chat = [
        Message("system", [TextPart("Answer with one word.")]),
        Message("user", [red, TextPart(QUESTION)]),
        Message("assistant", [TextPart("red")]),  # learned
        Message("user", [blue, TextPart("And this one?")]),
        Message("assistant", [TextPart("purple")]),  # context only
        Message("user", [TextPart("Look again.")]),
        Message("assistant", [TextPart("green")], correction="blue, sorry"),  # learned, as corrected
        Message("user", [TextPart("after the last learned reply: cut")]),
    ]
    short_chat = [Message("user", [TextPart("Say hi")]), Message("assistant", [TextPart("hi there")])]
    return [Example(long_chat, [2, 6], "long"), Example(short_chat, [1], "short")]


def expected_mask(ids: list[int], tokenizer, profile: str, learned_turns: list[int]) -> list[bool]:
    """Independent of the implementation: find each assistant header's tokens, then mask up to its end marker."""
    header_text, end_text = TURN_MARKERS[profile]
    header = tokenizer.encode(header_text, add_special_tokens=False)
    end = tokenizer.convert_tokens_to_ids(end_text)
    mask = [False] * len(ids)
    turn = -1
    position = 0
    while position < len(ids):
        if ids[position : position + len(header)] == header:
            turn += 1
            position += len(header)
            learn = turn in learned_turns
            while position < len(ids):
                mask[position] = learn
                position += 1
                if ids[position - 1] == end:
                    break
            continue
        position += 1
    return mask


def test_labels_cover_exactly_the_learned_replies_token_by_token(loaded) -> None:
    library = ImageLibrary()
    batch_examples = examples(library)
    encoder = Encoder(loaded, library.open, system_prompt="You are a colour expert.")
    batch = encoder.encode(batch_examples)
    tokenizer = loaded.processor.tokenizer
    header_text, end_text = TURN_MARKERS[loaded.profile.name]
    learned_turns = [[0, 2], [0]]  # assistant turns by position in each chat
    wanted_text = [f"red{end_text}blue, sorry{end_text}", f"hi there{end_text}"]
    image_ids = encoder.image_token_ids()
    assert image_ids
    for row in range(2):
        ids = batch["input_ids"][row].tolist()
        labels = batch["labels"][row].tolist()
        attention = batch["attention_mask"][row].tolist()
        real = [position for position, flag in enumerate(attention) if flag]
        real_ids = [ids[position] for position in real]
        mask = expected_mask(real_ids, tokenizer, loaded.profile.name, learned_turns[row])
        for position, token, label in zip(range(len(ids)), ids, labels):
            if position not in real:
                assert label == IGNORE, f"padding at {position} is learned"
                continue
            should_learn = mask[real.index(position)]
            piece = tokenizer.decode([token])
            if should_learn:
                assert label == token, f"row {row} token {position} {piece!r} should be learned"
            else:
                assert label == IGNORE, f"row {row} token {position} {piece!r} must be masked"
            if token in image_ids:
                assert label == IGNORE
        learned = tokenizer.decode([label for label in labels if label != IGNORE])
        assert learned.replace(" ", "") == wanted_text[row].replace(" ", "")
    # the long chat really carries images (many image tokens, all masked) and was cut after the last learned reply
    long_ids = batch["input_ids"][0].tolist()
    assert sum(token in image_ids for token in long_ids) >= 2
    assert "cut" not in encoder.rendered(batch_examples[0]).text


def test_count_reports_tokens_and_learned_tokens(loaded) -> None:
    library = ImageLibrary()
    long_chat, short_chat = examples(library)
    encoder = Encoder(loaded, library.open)
    tokens, learned = encoder.count(short_chat)
    single = encoder.encode([short_chat])
    assert tokens == single["input_ids"].shape[-1]
    assert learned == int((single["labels"] != IGNORE).sum()) > 0
    assert encoder.count(long_chat)[0] > tokens


def test_alignment_refuses_to_lose_learned_tokens() -> None:
    assert align_labels([1, 2, 3], [False, True, True], [1, 9, 9, 9, 2, 3]) == [IGNORE, IGNORE, IGNORE, IGNORE, 2, 3]
    with pytest.raises(RuntimeError, match="lost 1 of 2 learned tokens"):
        align_labels([1, 2, 3], [False, True, True], [1, 9, 9, 2, 4])


def test_agent_chats_train_on_exactly_the_inference_prompt_token_by_token(loaded) -> None:
    """An agent chat (tools offered, a tool call, a result with an image) is learned with the tools block and the
    tool-call format the model had when answering: each learned reply follows, token for token, the prompt
    `build_inputs` gives `generate` (native `tools=` on Qwen-style templates, the fallback block on SmolVLM)."""
    from assistant.conversation import ReplyMeta, ToolCallPart, ToolResultPart
    from assistant.engine.inputs import build_inputs
    from assistant.toolcalls import tool_spec

    tools = [tool_spec("screenshot", "Capture the screen.", {"type": "object", "properties": {}})]
    library = ImageLibrary()
    screen = library.add_image(image_from_pil(square("blue", random.Random(1)), "screen.png"))
    messages = [
        Message("user", [TextPart("What is on my screen?")]),
        Message("assistant", [ToolCallPart("screenshot", {}, "c1")], meta=ReplyMeta(extra={"tools": tools})),
        Message("tool", [ToolResultPart("c1", "screenshot", "Screenshot (64x64)."), screen]),
        Message("assistant", [TextPart("A blue square.")], meta=ReplyMeta(extra={"tools": tools})),
    ]
    encoder = Encoder(loaded, library.open)
    batch = encoder.encode([Example(messages, [1, 3], "agent")])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    assert "Capture the screen." in encoder.rendered(Example(messages, [1, 3], "agent")).text
    learned_runs = [index for index in range(len(ids)) if labels[index] != IGNORE
                    and (index == 0 or labels[index - 1] == IGNORE)]
    assert len(learned_runs) == 2  # the tool call and the final answer
    for target, start in zip([1, 3], learned_runs):
        prompt = build_inputs(loaded, messages[:target], library.open, tools=tools).tensors["input_ids"][0].tolist()
        assert ids[: len(prompt)] == prompt, f"reply {target}: training and inference prompts differ"
        assert start >= len(prompt)  # the reply's labels begin where the inference prompt ends
        assert not any(start <= index < len(prompt) for index in learned_runs)
    assert all(label == IGNORE for label in labels[: learned_runs[0]])
