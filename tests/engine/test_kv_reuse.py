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
