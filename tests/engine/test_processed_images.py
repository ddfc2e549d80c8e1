"""A follow-up about the same images reuses their processed pixels (engine/processed_images.py), on both tiny
families; a changed image or a changed processor setting is processed anew, and the prompt is the same either way.

What would break it: a stale output after an image or a setting changed, an output the processor had already
popped entries from (Idefics3 pops rows/cols), reuse for calls that did not name their images, or unbounded
memory.
"""

from __future__ import annotations

import pytest

from assistant import Assistant
from assistant.engine import processed_images
from assistant.engine.inputs import build_inputs, image_kwargs
from assistant.engine.processed_images import ReusedImageProcessing, images_named
from tests.helpers import make_image

TINY = ["tiny-smolvlm", "tiny-qwen2vl"]


def _fresh(loaded, messages, open_image):
    """The same inputs with the wrapper's memory cleared: what processing every image anew gives."""
    wrapper = loaded.processor.image_processor
    object.__setattr__(wrapper, "last", None)
    return build_inputs(loaded, messages, open_image)


def _same(a, b):
    import torch

    assert a.prompt == b.prompt and set(a.tensors) == set(b.tensors)
    for name in a.tensors:
        assert torch.equal(a.tensors[name], b.tensors[name]), name


@pytest.mark.parametrize("profile", TINY)
def test_a_follow_up_reuses_the_processed_image_and_gets_the_same_inputs(profile, tmp_path):
    bot = Assistant.from_profile(profile)
    chat = bot.chat()
    chat.ask("What is this?", images=[make_image(tmp_path / "a.png", (300, 200))], max_new_tokens=2)
    loaded = bot.engine.loaded
    wrapper = loaded.processor.image_processor
    assert isinstance(wrapper, ReusedImageProcessing)
    hits = wrapper.hits
    chat.ask("And the colour?", max_new_tokens=2)
    assert wrapper.hits == hits + 1  # the follow-up did not process the image again
    reused = build_inputs(loaded, chat.messages, bot.store.open_image)
    assert wrapper.hits == hits + 2
    _same(reused, _fresh(loaded, chat.messages, bot.store.open_image))
    again = build_inputs(loaded, chat.messages, bot.store.open_image)  # after a hit, the kept output is whole
    _same(again, reused)


@pytest.mark.parametrize("profile", TINY)
def test_a_changed_image_or_setting_is_processed_anew(profile, tmp_path):
    bot = Assistant.from_profile(profile)
    chat = bot.chat()
    chat.ask("One", images=[make_image(tmp_path / "a.png", (300, 200))], max_new_tokens=2)
    loaded = bot.engine.loaded
    wrapper = loaded.processor.image_processor
    first = build_inputs(loaded, chat.messages, bot.store.open_image)

    other = bot.chat()
    other.ask("One", images=[make_image(tmp_path / "b.png", (300, 200), "blue")], max_new_tokens=2)
    hits = wrapper.hits
    changed = build_inputs(loaded, other.messages, bot.store.open_image)
    assert wrapper.hits == hits + 1  # the same image as the reply just before it, not as `first`
    assert not _equal_pixels(first, changed)

    hits = wrapper.hits
    mean = list(wrapper.image_mean)
    wrapper.image_mean = [value + 0.25 for value in mean]  # set through the wrapper: the processor's own setting
    assert wrapper.inner.image_mean == wrapper.image_mean
    renormalised = build_inputs(loaded, other.messages, bot.store.open_image)
    assert wrapper.hits == hits and not _equal_pixels(changed, renormalised)
    wrapper.image_mean = mean
    _same(build_inputs(loaded, other.messages, bot.store.open_image), _fresh(loaded, other.messages, bot.store.open_image))

    hits = wrapper.hits
    before = image_kwargs(loaded)
    loaded.profile.image.mode = "quick"  # SmolVLM: no tile splitting
    loaded.profile.image.max_pixels = 56 * 56  # Qwen2-VL: a smaller longest edge
    assert image_kwargs(loaded) != before  # the call's keywords changed
    quick = build_inputs(loaded, other.messages, bot.store.open_image)
    assert wrapper.hits == hits and not _equal_pixels(changed, quick)
    _same(quick, _fresh(loaded, other.messages, bot.store.open_image))


def _equal_pixels(a, b) -> bool:
    import torch

    pa, pb = a.tensors["pixel_values"], b.tensors["pixel_values"]
    return pa.shape == pb.shape and bool(torch.equal(pa, pb))


def test_calls_that_do_not_name_their_images_pass_through(tmp_path):
    from PIL import Image

    bot = Assistant.from_profile("tiny-qwen2vl")
    bot.chat().ask("One", images=[make_image(tmp_path / "a.png")], max_new_tokens=2)
    wrapper = bot.engine.loaded.processor.image_processor
    kept, hits = wrapper.last, wrapper.hits
    image = Image.open(tmp_path / "a.png")
    for _ in range(2):
        wrapper([image], return_tensors="pt")
    assert wrapper.hits == hits and wrapper.last is kept
    with images_named(["x", "y"]):  # two names, one image: not what the caller promised, so not reused
        wrapper([image], return_tensors="pt")
    assert wrapper.hits == hits and wrapper.last is kept


def test_outputs_over_the_bound_are_not_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(processed_images, "MAX_KEPT_BYTES", 1000)
    bot = Assistant.from_profile("tiny-smolvlm")
    chat = bot.chat()
    chat.ask("One", images=[make_image(tmp_path / "a.png")], max_new_tokens=2)
    chat.ask("Two", max_new_tokens=2)
    wrapper = bot.engine.loaded.processor.image_processor
    assert wrapper.last is None and wrapper.hits == 0


def test_the_wrapper_survives_copying():
    import copy

    from transformers import Qwen2VLImageProcessor

    wrapper = ReusedImageProcessing(Qwen2VLImageProcessor())
    clone = copy.deepcopy(wrapper)
    assert isinstance(clone.inner, Qwen2VLImageProcessor) and clone.patch_size == wrapper.patch_size
