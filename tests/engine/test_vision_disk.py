"""The vision cache's on-disk tier (engine/vision_disk.py): a second Assistant (a new process's memory) about the
same image skips the encoder and answers the same; a changed image, processor setting, dtype or weights file
never hits; an adapter keeps it off the disk; a broken file is a miss; the bound holds; off unless asked."""

from __future__ import annotations

import os
import shutil

import pytest
from PIL import Image

from assistant import Assistant
from assistant.engine.vision_disk import DISK_ENVIRONMENT, DiskFeatures
from tests.engine.test_vision_cache import _count_encoder_calls, _inputs, _logits
from tests.helpers import make_image, run_cli


@pytest.fixture
def disk(monkeypatch, shared_cache):
    """The tier on, in an empty folder (the cache dir is shared by the session's tests)."""
    folder = shared_cache / "vision"
    shutil.rmtree(folder, ignore_errors=True)
    monkeypatch.setenv(DISK_ENVIRONMENT, "64")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _files(folder):
    return sorted(folder.glob("*.safetensors")) if folder.is_dir() else []


@pytest.mark.parametrize("profile", ["tiny-smolvlm", "tiny-qwen2vl"])
def test_a_new_assistant_about_the_same_image_skips_the_encoder_and_answers_the_same(profile, disk, tmp_path):
    picture = make_image(tmp_path / "a.png", (300, 200), "red")
    first = Assistant.from_profile(profile)
    reply = first.chat().ask("What is in this picture?", images=[picture], max_new_tokens=6)
    written = _files(disk)
    assert written and first.engine.vision_cache.disk_hits == 0
    assert {path.stat().st_mode & 0o777 for path in written} == {0o600}  # derived from the user's screen
    first.close()

    second = Assistant.from_profile(profile)
    calls = _count_encoder_calls(second.engine.loaded)
    again = second.chat().ask("What is in this picture?", images=[picture], max_new_tokens=6)
    cache = second.engine.vision_cache
    assert not calls, "features read from disk must not run the vision encoder"
    assert cache.disk_hits == len(written) and cache.misses == 0
    assert again.text == reply.text
    assert _files(disk) == written  # nothing new to write


def test_changed_image_setting_dtype_or_weights_never_hit(disk, tmp_path):
    import torch

    image = Image.open(make_image(tmp_path / "a.png", (300, 200), "red")).convert("RGB")
    bot = Assistant.from_profile("tiny-smolvlm")
    loaded = bot.engine.loaded
    _logits(loaded, _inputs(loaded, image))
    stored = len(_files(disk))
    assert stored > 0

    def fresh_hits(prepare=lambda loaded: None, **override):
        other = Assistant.from_profile("tiny-smolvlm")
        prepare(other.engine.loaded)
        changed = image.copy()
        if override.pop("pixel", False):
            changed.putpixel((150, 100), (0, 255, 0))
        _logits(other.engine.loaded, _inputs(other.engine.loaded, changed, **override))
        return other.engine.vision_cache.disk_hits

    mean = [0.4, 0.5, 0.6]
    std = list(loaded.processor.image_processor.image_std)
    assert fresh_hits(image_mean=mean, image_std=std) == 0
    assert fresh_hits(lambda loaded: loaded.model.to(torch.float64)) == 0
    assert 0 < fresh_hits(pixel=True) < stored  # the tile with the changed pixel (and the global view) miss
    assert fresh_hits() == stored  # the same again: every unit from disk

    weights = [entry.path for entry in os.scandir(loaded.source) if entry.name.endswith(".safetensors")]
    assert weights
    later = os.stat(weights[0]).st_mtime_ns + 5_000_000_000
    os.utime(weights[0], ns=(later, later))  # the weights were replaced (a rebuilt or updated model)
    assert fresh_hits() == 0


def test_an_active_adapter_keeps_features_off_the_disk(disk, tmp_path):
    image = Image.open(make_image(tmp_path / "a.png", (300, 200), "red")).convert("RGB")
    bot = Assistant.from_profile("tiny-smolvlm")
    loaded, cache = bot.engine.loaded, bot.engine.vision_cache
    cache.scope = "my-adapter"  # what the engine sets while an adapter is active
    _logits(loaded, _inputs(loaded, image))
    assert len(cache) > 0 and _files(disk) == []


def test_an_unreadable_file_is_a_miss_and_is_replaced(disk, tmp_path):
    import torch

    image = Image.open(make_image(tmp_path / "a.png", (300, 200), "red")).convert("RGB")
    bot = Assistant.from_profile("tiny-smolvlm")
    reference = _logits(bot.engine.loaded, _inputs(bot.engine.loaded, image))
    broken = _files(disk)[0]
    broken.write_bytes(b"not a safetensors file")
    other = Assistant.from_profile("tiny-smolvlm")
    again = _logits(other.engine.loaded, _inputs(other.engine.loaded, image))
    assert torch.equal(again, reference)
    cache = other.engine.vision_cache
    assert cache.misses == 1 and cache.disk_hits == len(_files(disk)) - 1
    assert broken.stat().st_size > 100  # written again, whole


def test_the_bound_removes_the_least_recently_used_files(tmp_path):
    import torch

    disk = DiskFeatures(tmp_path / "vision", max_bytes=3 * 1200)
    for name in "abc":
        disk.put(name, torch.zeros(250))  # ~1.1 KB each on disk
    for name, age in zip("abc", (30, 20, 10)):  # a oldest, c newest
        old = os.stat(disk.path(name)).st_mtime_ns - age * 1_000_000_000
        os.utime(disk.path(name), ns=(old, old))
    assert disk.get("a") is not None  # a used now: the most recent
    disk.put("d", torch.zeros(250))
    assert sorted(path.stem for path in disk.directory.glob("*.safetensors")) == ["a", "c", "d"]
    assert disk.size_bytes() <= disk.max_bytes
    assert not list(disk.directory.glob(".*.tmp"))


def test_off_unless_asked_and_a_bad_setting_is_off_with_a_warning(monkeypatch, shared_cache, tmp_path, capsys):
    folder = shared_cache / "vision"
    shutil.rmtree(folder, ignore_errors=True)
    picture = make_image(tmp_path / "a.png", (300, 200), "red")
    monkeypatch.delenv(DISK_ENVIRONMENT, raising=False)
    bot = Assistant.from_profile("tiny-smolvlm")
    bot.chat().ask("What is this?", images=[picture], max_new_tokens=2)
    assert bot.engine.vision_cache.disk is None and _files(folder) == []
    monkeypatch.setenv(DISK_ENVIRONMENT, "lots")
    code, out, err = run_cli(capsys, "ask", "--profile", "tiny-smolvlm", "--image", str(picture), "What is this?")
    assert code == 0, err
    assert err.splitlines()[0] == f"warning: {DISK_ENVIRONMENT}='lots' is not a size in megabytes, 0 or more, so 0 is used"
    assert _files(folder) == []


def test_a_memory_bound_that_is_not_a_number_keeps_the_default_and_says_so(monkeypatch, capsys, tmp_path):
    from assistant.engine.vision_cache import DEFAULT_MB, default_max_bytes

    monkeypatch.setenv("ASSISTANT_VISION_CACHE_MB", "12")
    assert default_max_bytes() == 12 * 1024 * 1024
    monkeypatch.setenv("ASSISTANT_VISION_CACHE_MB", "0")
    assert default_max_bytes() == 0  # off
    monkeypatch.setenv("ASSISTANT_VISION_CACHE_MB", "64MB")
    picture = make_image(tmp_path / "a.png", (300, 200), "red")
    code, out, err = run_cli(capsys, "ask", "--profile", "tiny-smolvlm", "--image", str(picture), "What is this?")
    assert code == 0, err
    assert err.splitlines()[0] == (f"warning: ASSISTANT_VISION_CACHE_MB='64MB' is not a size in megabytes, 0 or more, "
                                   f"so {DEFAULT_MB} is used")
