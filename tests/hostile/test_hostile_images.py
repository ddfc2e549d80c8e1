"""Issues 22.11 and 22.12: a FIFO, device or socket given as an image is refused before it is read; every PIL mode
that can be opened becomes a faithful 8-bit RGB image (16-bit and float gray scaled, not clipped)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from PIL import Image

from assistant.images import image_from_pil, load_image_file
from tests.hostile.kit import cli, cli_process, integrity_ok, stored_messages

# --- 22.11: only regular files are read ------------------------------------------------------------------------------


@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    return path


def test_a_fifo_given_to_ask_is_refused_at_once(fifo):
    # A subprocess with a time limit: before the fix it blocked forever on the FIFO.
    result = cli_process("ask", "--profile", "tiny-smolvlm", "--image", str(fifo), "what is this?", timeout=120)
    assert result.code == 2
    assert "named pipe" in result.one_line()
    assert stored_messages() == [] and integrity_ok()  # refused before anything was saved


@pytest.mark.parametrize("kind", ["fifo", "device", "socket"])
def test_special_files_are_refused_naming_what_they_are(tmp_path, fifo, kind):
    if kind == "fifo":
        path, word = fifo, "named pipe"
    elif kind == "device":
        path, word = Path("/dev/zero"), "device"  # reading it would never end
    else:
        path, word = tmp_path / "s.png", "socket"
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
    with pytest.raises(Exception) as caught:
        load_image_file(path)
    assert type(caught.value).__name__ == "AssistantError" and word in str(caught.value)


def test_a_symlink_to_a_fifo_is_refused_too(capsys, tmp_path, fifo):
    link = tmp_path / "innocent.png"
    link.symlink_to(fifo)
    result = cli(capsys, "chats", "list")  # the store exists
    assert result.code == 0
    with pytest.raises(Exception, match="named pipe"):
        load_image_file(link)


# --- 22.12: every mode to 8-bit RGB ----------------------------------------------------------------------------------

LEVELS = list(range(256))


def _gray_ramp(mode: str) -> Image.Image:
    """A 256-pixel gray ramp (level x at column x) in `mode`, built so that the mode's full range is used."""
    if mode in ("I;16", "I"):
        image = Image.new(mode, (256, 1))
        for x in LEVELS:
            image.putpixel((x, 0), x * 257)  # 16-bit values, as a 16-bit PNG holds them
        return image
    if mode == "F":
        image = Image.new("F", (256, 1))
        for x in LEVELS:
            image.putpixel((x, 0), x / 255)  # fractions, as float TIFFs usually hold them
        return image
    if mode in ("P", "PA"):
        image = Image.new("P", (256, 1))
        image.putpalette([v for x in LEVELS for v in (x, x, x)])
        image.putdata(LEVELS)
        return image if mode == "P" else image.convert("PA")
    ramp = Image.new("L", (256, 1))
    ramp.putdata(LEVELS)
    if mode == "1":
        return ramp.convert("1", dither=Image.Dither.NONE)
    return ramp.convert("RGB").convert(mode) if mode not in ("L", "LA") else ramp.convert(mode)


# Tolerance per mode (colour-space round trips lose a little); "1" has two levels by nature.
MODES = {"1": None, "L": 0, "LA": 0, "P": 0, "PA": 0, "I": 1, "I;16": 1, "F": 1, "RGB": 0, "RGBA": 0, "CMYK": 0,
         "YCbCr": 2, "LAB": 4, "HSV": 1}


@pytest.mark.parametrize("mode", list(MODES))
def test_every_mode_becomes_faithful_8_bit_rgb(tmp_path, mode):
    source = _gray_ramp(mode)
    assert source.mode == mode
    file = tmp_path / "ramp.tiff"
    try:
        source.save(file, format="TIFF")  # through a real file when TIFF can hold the mode
        reopened = Image.open(file)
        kept = reopened.mode == mode
    except OSError:
        kept = False
    loaded = load_image_file(file) if kept else image_from_pil(source, mode)
    image = loaded.image
    assert image.mode == "RGB" and image.size == (256, 1)
    pixels = [image.getpixel((x, 0)) for x in LEVELS]
    tolerance = MODES[mode]
    if tolerance is None:
        assert {p[0] for p in pixels} == {0, 255} and pixels[0] == (0, 0, 0) and pixels[255] == (255, 255, 255)
        return
    worst = max(abs(channel - x) for x, pixel in zip(LEVELS, pixels) for channel in pixel)
    assert worst <= tolerance, (mode, pixels[:4], pixels[126:130], pixels[-4:])


def test_a_16_bit_png_keeps_its_gradient(tmp_path):
    file = tmp_path / "gray16.png"
    _gray_ramp("I;16").save(file)
    assert Image.open(file).mode.startswith("I")
    image = load_image_file(file).image
    assert len({image.getpixel((x, 0)) for x in LEVELS}) == 256  # before the fix: 2 levels (black and white)
