"""The vision cache (engine/vision_cache.py): a hit gives exactly the uncached logits and skips the encoder; a
changed image, processor setting, dtype or adapter never hits; the bound holds; training bypasses it."""

from __future__ import annotations

import pytest
from PIL import Image

from assistant import Assistant
from assistant.engine.inputs import image_kwargs
from assistant.engine.vision_cache import VisionCache, digest
from tests.helpers import make_image

TINY = ["tiny-smolvlm", "tiny-qwen2vl"]


def _inputs(loaded, image, **override):
    processor = loaded.processor
    chat = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}]
    prompt = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    kwargs = dict(image_kwargs(loaded), **override)
    return processor(text=[prompt], images=[[image]], return_tensors="pt", **kwargs)


def _logits(loaded, inputs):
    import torch

    with torch.inference_mode():
        return loaded.model(**inputs).logits


def _count_encoder_calls(loaded):
    """Wrap the vision tower's forward to count how often it really runs."""
    inner = loaded.model.model
    vision = getattr(inner, "vision_model", None) or inner.visual
    calls = []
    forward = vision.forward

    def counting(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    vision.forward = counting
    return calls


@pytest.mark.parametrize("profile", TINY)
def test_hit_gives_the_uncached_logits_without_encoding(profile, tmp_path):
    import torch

    bot = Assistant.from_profile(profile)
    loaded, cache = bot.engine.loaded, bot.engine.vision_cache
    image = Image.open(make_image(tmp_path / "a.png", (300, 200), "red")).convert("RGB")
    inputs = _inputs(loaded, image)
    cache.max_bytes = 0  # off: the reference
    reference = _logits(loaded, inputs)
    cache.max_bytes = 1 << 26
    calls = _count_encoder_calls(loaded)
    first = _logits(loaded, inputs)
    assert cache.misses > 0 and cache.hits == 0 and calls
    encoded, misses = len(calls), cache.misses
    second = _logits(loaded, inputs)
    assert len(calls) == encoded, "a hit must not run the vision encoder"
    assert cache.misses == misses and cache.hits == misses
    assert torch.equal(first, reference)
    assert torch.equal(second, reference)


def _units(inputs):
    """What the encoder treats independently, as it receives it: SmolVLM's real tiles (with their masks),
    Qwen2-VL's images (patches with their grid)."""
    if "image_grid_thw" in inputs:
        grids = inputs["image_grid_thw"]
        return list(zip(inputs["pixel_values"].split(grids.prod(-1).tolist()), grids))
    tiles, masks = inputs["pixel_values"][0], inputs["pixel_attention_mask"][0]
    return [(tile, mask) for tile, mask in zip(tiles, masks) if tile.abs().sum() > 0]


def _identical(unit, other):
    import torch

    return all(a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b) for a, b in zip(unit, other))


@pytest.mark.parametrize("profile", TINY)
def test_changed_image_or_processor_setting_never_hits(profile, tmp_path):
    """Only units (tiles / images) byte-identical to ones already encoded hit: a changed image or setting
    re-encodes every unit it changed (SmolVLM tiles it left alone may still hit: same pixels, same features)."""
    bot = Assistant.from_profile(profile)
    loaded, cache = bot.engine.loaded, bot.engine.vision_cache
    image = Image.open(make_image(tmp_path / "a.png", (300, 200), "red")).convert("RGB")
    seen = []

    def ask(inputs):
        units = _units(inputs)
        expected = sum(any(_identical(unit, old) for old in seen) for unit in units)
        before = cache.hits
        _logits(loaded, inputs)
        assert cache.hits - before == expected
        seen.extend(units)
        return expected, len(units)

    assert ask(_inputs(loaded, image))[0] == 0
    changed = image.copy()
    changed.putpixel((150, 100), (0, 255, 0))  # one pixel
    other = Image.open(make_image(tmp_path / "b.png", (300, 200), "blue")).convert("RGB")
    processor = loaded.processor.image_processor
    variants = [
        _inputs(loaded, changed),
        _inputs(loaded, other),
        _inputs(loaded, image, image_mean=[0.4, 0.5, 0.6], image_std=list(processor.image_std)),
        _inputs(loaded, image, do_rescale=True, rescale_factor=1 / 256),
    ]
    for inputs in variants:
        hits, units = ask(inputs)
        assert hits < units  # something the encoder sees changed, and that was encoded again
    assert ask(_inputs(loaded, image, image_mean=[0.45, 0.5, 0.55], image_std=list(processor.image_std)))[0] == 0
    hits, units = ask(_inputs(loaded, image))  # the original again: every unit hits
    assert hits == units > 0


def test_dtype_and_adapter_are_part_of_the_key(tmp_path):
    import torch

    bot = Assistant.from_profile("tiny-smolvlm")
    loaded, cache = bot.engine.loaded, bot.engine.vision_cache
    image = Image.open(make_image(tmp_path / "a.png", (300, 200), "red")).convert("RGB")
    inputs = _inputs(loaded, image)
    _logits(loaded, inputs)
    cache.scope = "some-adapter"
    _logits(loaded, inputs)
    assert cache.hits == 0
    cache.scope = None
    loaded.model.to(torch.float64)
    _logits(loaded, inputs)
    assert cache.hits == 0
    _logits(loaded, inputs)
    assert cache.hits > 0


def test_new_chat_about_the_same_image_skips_the_encoder_and_answers_the_same(tmp_path):
    bot = Assistant.from_profile("tiny-smolvlm")
    picture = make_image(tmp_path / "a.png", (300, 200), "red")
    cache = bot.engine.vision_cache
    first = bot.chat().ask("What is in this picture?", images=[picture], max_new_tokens=6)
    misses = cache.misses
    other = make_image(tmp_path / "b.png", (200, 300), "blue")
    bot.chat().ask("And this one?", images=[other], max_new_tokens=6)  # the KV cache now holds this chat
    assert cache.misses > misses
    misses, hits = cache.misses, cache.hits
    calls = _count_encoder_calls(bot.engine.loaded)
    second = bot.chat().ask("What is in this picture?", images=[picture], max_new_tokens=6)
    assert not calls and cache.misses == misses and cache.hits > hits
    assert second.text == first.text
    bot.engine.invalidate_cache()  # an adapter switch: features are dropped with the conversation cache
    assert len(cache) == 0


def test_training_bypasses_the_cache(tmp_path):
    import torch

    bot = Assistant.from_profile("tiny-smolvlm")
    loaded, cache = bot.engine.loaded, bot.engine.vision_cache
    image = Image.open(make_image(tmp_path / "a.png", (300, 200), "red")).convert("RGB")
    with torch.enable_grad():
        loaded.model(**_inputs(loaded, image))
    assert len(cache) == 0 and cache.misses == 0


def test_bound_drops_least_recently_used():
    import torch

    cache = VisionCache(max_bytes=3 * 400)
    for name in "abc":
        cache.put((name,), torch.zeros(100))  # 400 bytes each
    assert cache.get(("a",)) is not None  # a is now the most recent
    cache.put(("d",), torch.zeros(100))
    assert cache.get(("b",)) is None and cache.get(("a",)) is not None and len(cache) == 3
    assert cache.size_bytes == 1200
    cache.put(("huge",), torch.zeros(1000))  # larger than the bound: never stored
    assert cache.get(("huge",)) is None and len(cache) == 3
    off = VisionCache(max_bytes=0)
    off.put(("a",), torch.zeros(1))
    assert len(off) == 0


def test_digest_sees_shape_dtype_and_every_byte():
    import torch

    tile = torch.zeros(3, 8, 8)
    assert digest(tile) == digest(tile.clone())
    changed = tile.clone()
    changed[2, 7, 7] = 1e-7
    assert digest(changed) != digest(tile)
    assert digest(tile.view(3, 64)) != digest(tile)
    assert digest(tile.double()) != digest(tile)
    assert digest(tile, None) != digest(tile, torch.ones(8, 8, dtype=torch.bool))


@pytest.mark.parametrize("profile", TINY)
def test_encoding_ahead_lets_the_question_skip_the_encoder(profile, tmp_path):
    """What the TUI can do while the user types: encode the attached image; the reply then finds it cached
    and answers exactly as without it."""
    picture = make_image(tmp_path / "a.png", (300, 200), "red")
    ahead = Assistant.from_profile(profile)
    encoded = ahead.backend.encode_ahead(Image.open(picture).convert("RGB")).result()
    assert encoded > 0
    calls = _count_encoder_calls(ahead.engine.loaded)
    reply = ahead.chat().ask("What is in this picture?", images=[picture], max_new_tokens=6)
    assert not calls, "the question should find the image already encoded"
    plain = Assistant.from_profile(profile)
    assert plain.chat().ask("What is in this picture?", images=[picture], max_new_tokens=6).text == reply.text


@pytest.mark.parametrize("profile", TINY)
def test_prefilling_ahead_leaves_only_the_question_to_prefill(profile, tmp_path):
    """The TUI's head start (Assistant.prefill_ahead): in a chat with a turn already, the attached image and the
    conversation before it are prefilled while the question is typed; the question then reuses all of it (only its
    own tokens are computed, the encoder does not run), and the reply is exactly the one without the head start.
    An image removed before sending leaves a text question that still answers as without it."""
    from assistant.images import load_image_file

    picture = make_image(tmp_path / "a.png", (300, 200), "red")
    ahead, plain = Assistant.from_profile(profile), Assistant.from_profile(profile)
    chat, plain_chat = ahead.chat(), plain.chat()
    assert chat.ask("Hello there.", max_new_tokens=4).text == plain_chat.ask("Hello there.", max_new_tokens=4).text
    computed = ahead.prefill_ahead([load_image_file(picture)], chat=chat).result()
    history_tokens = len(ahead.engine.cache.turn.token_ids)
    assert computed > 0 and history_tokens > computed, "the earlier turn should come from the cache"
    calls = _count_encoder_calls(ahead.engine.loaded)
    before = dict(ahead.engine.cache.stats)
    reply = chat.ask("What is in this picture?", images=[picture], max_new_tokens=6)
    assert not calls, "the question should find the image prefilled"
    assert reply.text == plain_chat.ask("What is in this picture?", images=[picture], max_new_tokens=6).text
    reused = ahead.engine.cache.stats["reused_tokens"] - before["reused_tokens"]
    new = ahead.engine.cache.stats["computed_tokens"] - before["computed_tokens"]
    question_tokens = len(ahead.engine.loaded.tokenizer("What is in this picture?")["input_ids"])
    # Reused: everything up to the end of the image (the prefilled prompt's tail, "<end_of_utterance> Assistant:" and
    # the one generated token, differs from the question's). Computed: the question and that tail, no image token.
    assert reused >= history_tokens - 10 and new <= question_tokens + 10, (reused, new, history_tokens)
    ahead.prefill_ahead([load_image_file(picture)], chat=chat).result()
    removed = chat.ask("And now without it?", max_new_tokens=6).text
    assert removed == plain_chat.ask("And now without it?", max_new_tokens=6).text
