"""Conversation KV-cache reuse gives exactly the greedy output of a full recompute, and really reuses work."""

from __future__ import annotations

import pytest

from assistant import Assistant
from tests.helpers import make_image

TINY = ["tiny-smolvlm", "tiny-qwen2vl"]


def script(bot, tmp_path):
    """A conversation touching every cache path: follow-up, new image, regenerate, edit, overflow."""
    first = make_image(tmp_path / "first.png", (300, 200), "red")
    second = make_image(tmp_path / "second.png", (220, 330), "blue")
    chat = bot.chat()
    texts = []
    reused = []

    def record(reply):
        texts.append(reply.text)
        reused.append(chat.messages[-1].meta.extra.get("reused_tokens", 0))

    record(chat.ask("What is in this picture?", images=[first], max_new_tokens=8))
    record(chat.ask("Tell me more about it.", max_new_tokens=8))
    record(chat.ask("And this second picture?", images=[second], max_new_tokens=8))
    chat.regenerate(max_new_tokens=8)
    record(_last_reply(chat))
    chat.edit_last("Compare the two pictures.", max_new_tokens=8)
    record(_last_reply(chat))
    record(chat.ask("Thanks, one last thing?", max_new_tokens=8))
    return texts, reused


def _last_reply(chat):
    message = chat.messages[-1]

    class Shim:
        text = message.text

    return Shim()


def in_float64(bot):
    """float64 keeps the two paths' rounding differences (~1e-16) far below any near-tie of a random model."""
    import torch

    engine = bot.engine
    engine.loaded.model.to(torch.float64)
    return engine


@pytest.mark.parametrize("profile", TINY)
def test_greedy_output_identical_with_and_without_reuse(profile, tmp_path):
    with_reuse = Assistant.from_profile(profile)
    without = Assistant.from_profile(profile)
    in_float64(with_reuse)
    in_float64(without).cache.enabled = False
    texts_reuse, _ = script(with_reuse, tmp_path)
    texts_plain, _ = script(without, tmp_path)
    assert texts_reuse == texts_plain
    stats = with_reuse.engine.cache.stats
    assert stats["reused_tokens"] > 0
    assert without.engine.cache.stats["reused_tokens"] == 0


@pytest.mark.parametrize("profile", TINY)
def test_follow_up_only_computes_new_tokens(profile, tmp_path):
    bot = Assistant.from_profile(profile)
    chat = bot.chat()
    chat.ask("Describe it.", images=[make_image(tmp_path / "a.png")], max_new_tokens=6)
    engine = bot.engine
    before = dict(engine.cache.stats)
    reply = chat.ask("Why?", max_new_tokens=6)
    computed = engine.cache.stats["computed_tokens"] - before["computed_tokens"]
    reused = engine.cache.stats["reused_tokens"] - before["reused_tokens"]
    assert reused > 0
    assert computed < 30  # the question and the template's few tokens, never the image again
    assert reused + computed == reply.prompt_tokens


def test_new_image_in_later_turn_is_encoded_alone(tmp_path, monkeypatch):
    """SmolVLM: only the new image's tiles reach the vision encoder on a follow-up."""
    bot = Assistant.from_profile("tiny-smolvlm")
    chat = bot.chat()
    chat.ask("First", images=[make_image(tmp_path / "a.png", (300, 200))], max_new_tokens=4)
    model = bot.engine.loaded.model
    seen = []
    original = model.model.get_image_features

    def spy(pixel_values, *args, **kwargs):
        seen.append(int(pixel_values.shape[1]) if pixel_values.ndim == 5 else int(pixel_values.shape[0]))
        return original(pixel_values, *args, **kwargs)

    monkeypatch.setattr(model.model, "get_image_features", spy)
    chat.ask("Second", images=[make_image(tmp_path / "b.png", (64, 64), "blue")], max_new_tokens=4)
    processor = bot.engine.loaded.processor
    alone = processor(text=["<image>"], images=[[bot.store.open_image(chat.messages[-2].images[0])]], return_tensors="pt")
    assert seen == [int(alone["pixel_values"].shape[1])]


def test_adapter_switch_or_changed_images_drop_the_cache(tmp_path):
    bot = Assistant.from_profile("tiny-smolvlm")
    chat = bot.chat()
    chat.ask("One", images=[make_image(tmp_path / "a.png")], max_new_tokens=4)
    engine = bot.engine
    engine.loaded.adapter = "pretend-adapter"  # what activate_adapter records; the cache must not survive it
    before = engine.cache.stats["reused_tokens"]
    chat.ask("Two", max_new_tokens=4)
    assert engine.cache.stats["reused_tokens"] == before
    other = bot.chat()
    other.ask("Other chat", images=[make_image(tmp_path / "b.png", (300, 200), "green")], max_new_tokens=4)
    assert engine.cache.stats["reused_tokens"] == before


def _batch_in_between(bot, tmp_path):
    """Another generate on the same model between two turns (`assistant batch` on the chat's engine): Qwen2-VL's
    model then holds that batch's rope_deltas, not the conversation's."""
    from assistant.conversation import Message, TextPart
    from assistant.hooktypes import GenerationRequest
    from assistant.images import load_image_file

    part = bot.store.put_image(load_image_file(make_image(tmp_path / "batch.png", (640, 120), "green")))
    request = GenerationRequest(
        messages=[Message(role="user", parts=[part, TextPart("Another question entirely, with a wide image")])],
        open_image=bot.store.open_image,
        settings=bot.profile.generation,
        max_new_tokens=2,
    )
    before = bot.engine.loaded.model.model.rope_deltas.clone()
    bot.engine.generate_batch([request])
    assert not bot.engine.loaded.model.model.rope_deltas.equal(before)  # the batch really moved them


def _first_positions(bot):
    """The 3D rotary positions of the first forward call of the next reply (a list, filled by a hook)."""
    seen = []

    def hook(module, args, kwargs):
        if not seen and kwargs.get("position_ids") is not None:
            seen.append(kwargs["position_ids"].clone())

    return seen, bot.engine.loaded.model.model.register_forward_pre_hook(hook, with_kwargs=True)


def test_qwen_follow_up_after_another_generate_uses_its_own_rope_deltas(tmp_path):
    """The cached turn restores its rope_deltas: after a batch ran on the same model, the follow-up's new tokens
    get the rotary positions a full recompute gives them (the tiny model's greedy text alone cannot tell)."""
    picture = make_image(tmp_path / "tall.png", (120, 400), "red")
    positions, answers = [], []
    for reuse in (True, False):
        bot = Assistant.from_profile("tiny-qwen2vl")
        engine = in_float64(bot)
        engine.cache.enabled = reuse
        chat = bot.chat()
        chat.ask("What is in this picture?", images=[picture], max_new_tokens=4)
        _batch_in_between(bot, tmp_path)
        before = dict(engine.cache.stats)
        seen, handle = _first_positions(bot)
        answers.append(chat.ask("Say more, in many words.", max_new_tokens=16).text)
        handle.remove()
        assert (engine.cache.stats["reused_tokens"] > before["reused_tokens"]) is reuse
        positions.append(seen[0])
    reused, full = positions
    new = reused.shape[-1]
    assert new < full.shape[-1]  # only the new tokens went through
    # text tokens: the three 3D rows of the full recompute agree; the reused call passes that one row
    assert all(full[row, 0, -new:].tolist() == reused.reshape(-1).tolist() for row in (1, 2, 3))
    assert answers[0] == answers[1]
