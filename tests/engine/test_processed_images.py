"""A follow-up about the same images reuses their processed pixels (engine/processed_images.py), on both tiny
families; a changed image or a changed processor setting is processed anew, and the prompt is the same either way.

What would break it: a stale output after an image or a setting changed, an output the processor had already
popped entries from (Idefics3 pops rows/cols), reuse for calls whose names are not content hashes (page fitting
numbers its images), the processor left wrapped after the call, or unbounded memory.
"""

from __future__ import annotations

import pytest

from assistant import Assistant
from assistant.engine import processed_images
from assistant.engine.inputs import build_inputs, image_kwargs
from assistant.engine.processed_images import kept_for, reusing_processed_images
from tests.helpers import make_image

TINY = ["tiny-smolvlm", "tiny-qwen2vl"]


def _fresh(loaded, messages, open_image):
    """The same inputs with nothing kept: what processing every image anew gives."""
    kept_for(loaded.processor).clear()
    return build_inputs(loaded, messages, open_image)


def _same(a, b):
    import torch

    assert a.prompt == b.prompt and set(a.tensors) == set(b.tensors)
    for name in a.tensors:
        assert torch.equal(a.tensors[name], b.tensors[name]), name


def _equal_pixels(a, b) -> bool:
    import torch

    pa, pb = a.tensors["pixel_values"], b.tensors["pixel_values"]
    return pa.shape == pb.shape and bool(torch.equal(pa, pb))


def _asked_about_an_image(profile, tmp_path):
    """(assistant, chat, loaded model, what is kept) after one question about a 300x200 picture."""
    bot = Assistant.from_profile(profile)
    chat = bot.chat()
    chat.ask("What is this?", images=[make_image(tmp_path / "a.png", (300, 200))], max_new_tokens=2)
    loaded = bot.engine.loaded
    return bot, chat, loaded, kept_for(loaded.processor)


@pytest.mark.parametrize("profile", TINY)
def test_a_follow_up_reuses_the_processed_image_and_gets_the_same_inputs(profile, tmp_path):
    bot, chat, loaded, kept = _asked_about_an_image(profile, tmp_path)
    hits = kept.hits
    chat.ask("And the colour?", max_new_tokens=2)
    assert kept.hits == hits + 1  # the follow-up did not process the image again
    reused = build_inputs(loaded, chat.messages, bot.store.open_image)
    assert kept.hits == hits + 2
    _same(reused, _fresh(loaded, chat.messages, bot.store.open_image))
    again = build_inputs(loaded, chat.messages, bot.store.open_image)  # after a hit, the kept output is whole
    _same(again, reused)
    inner = type(loaded.processor.image_processor).__name__
    assert inner.endswith("ImageProcessor") or inner.endswith("ImageProcessorFast")  # unwrapped outside the call
    assert "image_processor" in repr(loaded.processor)  # printing (and saving) the processor still works


@pytest.mark.parametrize("profile", TINY)
def test_a_changed_image_or_setting_is_processed_anew(profile, tmp_path):
    bot, chat, loaded, kept = _asked_about_an_image(profile, tmp_path)
    first = build_inputs(loaded, chat.messages, bot.store.open_image)

    other = bot.chat()
    other.ask("One", images=[make_image(tmp_path / "b.png", (300, 200), "blue")], max_new_tokens=2)
    hits = kept.hits
    changed = build_inputs(loaded, other.messages, bot.store.open_image)
    assert kept.hits == hits + 1  # the same image as the reply just before it, not as `first`
    assert not _equal_pixels(first, changed)

    image_processor = loaded.processor.image_processor
    hits = kept.hits
    mean = list(image_processor.image_mean)
    image_processor.image_mean = [value + 0.25 for value in mean]  # the processor's own setting
    renormalised = build_inputs(loaded, other.messages, bot.store.open_image)
    assert kept.hits == hits and not _equal_pixels(changed, renormalised)
    image_processor.image_mean = mean
    _same(build_inputs(loaded, other.messages, bot.store.open_image), _fresh(loaded, other.messages, bot.store.open_image))

    hits = kept.hits
    before = image_kwargs(loaded)
    loaded.profile.image.mode = "quick"  # SmolVLM: no tile splitting
    loaded.profile.image.max_pixels = 56 * 56  # Qwen2-VL: a smaller longest edge
    assert image_kwargs(loaded) != before  # the call's keywords changed
    quick = build_inputs(loaded, other.messages, bot.store.open_image)
    assert kept.hits == hits and not _equal_pixels(changed, quick)
    _same(quick, _fresh(loaded, other.messages, bot.store.open_image))


@pytest.mark.parametrize("profile", TINY)
def test_page_fitting_counts_each_page_by_its_own_size(profile, tmp_path):
    """engine/budget.py names a measure's images by position: a wide page then a tall one are both 'measure-0'."""
    from PIL import Image

    from assistant.engine.budget import question_measure

    bot = Assistant.from_profile(profile)
    measure, _ = question_measure(bot, "What does it say?")
    tall, wide = (Image.open(make_image(tmp_path / f"{n}.png", size)) for n, size in (("t", (200, 700)), ("w", (900, 160))))
    tall_first = measure([tall], "")
    wide_count = measure([wide], "")
    assert wide_count != tall_first
    assert measure([tall], "") == tall_first


def test_a_question_without_images_drops_what_was_kept(tmp_path):
    bot = Assistant.from_profile("tiny-smolvlm")
    bot.chat().ask("One", images=[make_image(tmp_path / "a.png")], max_new_tokens=2)
    kept = kept_for(bot.engine.loaded.processor)
    assert kept.output is not None
    bot.chat().ask("Just text", max_new_tokens=2)
    assert kept.output is None and kept.key is None


def test_calls_outside_the_block_or_not_matching_its_names_pass_through(tmp_path):
    from PIL import Image

    bot = Assistant.from_profile("tiny-qwen2vl")
    bot.chat().ask("One", images=[make_image(tmp_path / "a.png")], max_new_tokens=2)
    processor = bot.engine.loaded.processor
    kept = kept_for(processor)
    key, hits = kept.key, kept.hits
    image = Image.open(tmp_path / "a.png")
    processor.image_processor([image], return_tensors="pt")  # no block: the real processor
    with reusing_processed_images(processor, ["x", "y"]):  # two names, one image: not what the caller promised
        processor.image_processor([image], return_tensors="pt")
    assert kept.hits == hits and kept.key == key


def test_a_processor_whose_settings_cannot_be_said_is_never_reused():
    class Unsayable:
        scale = 1

        def to_json_string(self):
            raise TypeError("not JSON")

        def __call__(self, images, **kwargs):
            return {"pixel_values": [self.scale]}

    class Processor:
        image_processor = Unsayable()

    processor = Processor()
    for scale in (1, 2):
        processor.image_processor.scale = scale
        with reusing_processed_images(processor, ["a"]):
            assert processor.image_processor(["image"]) == {"pixel_values": [scale]}
    assert kept_for(processor).hits == 0 and isinstance(processor.image_processor, Unsayable)


def test_outputs_over_the_bound_are_not_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(processed_images, "MAX_KEPT_BYTES", 1000)
    bot = Assistant.from_profile("tiny-smolvlm")
    chat = bot.chat()
    chat.ask("One", images=[make_image(tmp_path / "a.png")], max_new_tokens=2)
    chat.ask("Two", max_new_tokens=2)
    kept = kept_for(bot.engine.loaded.processor)
    assert kept.output is None and kept.hits == 0
