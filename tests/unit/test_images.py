"""Image intake: good files load with their original bytes; every bad file fails with one actionable line."""

from __future__ import annotations

import hashlib
import io
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import pytest
from PIL import Image

from assistant.errors import AssistantError
from assistant.images import (
    MAX_IMAGE_PIXELS,
    LoadedImage,
    decode_image_bytes,
    image_extension,
    image_from_pil,
    load_image_bytes,
    load_image_file,
)


def noisy_image(width: int = 64, height: int = 48, mode: str = "RGB") -> Image.Image:
    """Random pixels, so encoded files are big enough to truncate meaningfully."""
    channels = len(mode)
    pixels = bytes((i * 7919 + i // 3) % 251 for i in range(width * height * channels))
    return Image.frombytes(mode, (width, height), pixels)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny real PNG whose IHDR is patched (with a correct CRC) to claim another size: no big bitmap is made."""
    data = bytearray(png_bytes(Image.new("RGB", (1, 1), (10, 20, 30))))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


# --- good inputs -------------------------------------------------------------------------------------------------


def test_png_file_keeps_its_original_bytes(tmp_path: Path) -> None:
    original = noisy_image()
    file = tmp_path / "cat.png"
    file.write_bytes(png_bytes(original))

    loaded = load_image_file(file)

    assert isinstance(loaded, LoadedImage)
    assert loaded.source == "cat.png"
    assert loaded.data == file.read_bytes()
    assert loaded.sha256 == hashlib.sha256(file.read_bytes()).hexdigest()
    assert (loaded.width, loaded.height) == (64, 48) == loaded.image.size
    assert loaded.image.mode == "RGB"
    assert loaded.image.tobytes() == original.tobytes()
    assert loaded.extension == "png"


@pytest.mark.parametrize("fmt,extension", [("JPEG", "jpg"), ("WEBP", "webp"), ("GIF", "gif"), ("BMP", "bmp")])
def test_common_formats_keep_their_bytes(tmp_path: Path, fmt: str, extension: str) -> None:
    file = tmp_path / f"picture.{extension}"
    noisy_image(40, 30).save(file, format=fmt)

    loaded = load_image_file(file)

    assert loaded.data == file.read_bytes()
    assert loaded.extension == extension
    assert (loaded.width, loaded.height) == (40, 30)
    assert loaded.image.mode == "RGB"


def test_other_formats_are_stored_as_png(tmp_path: Path) -> None:
    file = tmp_path / "scan.tiff"
    original = noisy_image(20, 10)
    original.save(file, format="TIFF")

    loaded = load_image_file(file)

    assert loaded.data != file.read_bytes()
    assert loaded.extension == "png"
    assert loaded.sha256 == hashlib.sha256(loaded.data).hexdigest()
    assert Image.open(io.BytesIO(loaded.data)).tobytes() == original.tobytes()


def test_transparency_is_laid_over_white(tmp_path: Path) -> None:
    file = tmp_path / "logo.png"
    image = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    image.putpixel((0, 0), (255, 0, 0, 255))
    image.save(file)

    loaded = load_image_file(file)

    assert loaded.image.getpixel((0, 0)) == (255, 0, 0)
    assert loaded.image.getpixel((3, 3)) == (255, 255, 255)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    file = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    noisy_image(40, 20).save(file, format="JPEG", exif=exif)

    loaded = load_image_file(file)

    assert (loaded.width, loaded.height) == (20, 40) == loaded.image.size
    assert loaded.data == file.read_bytes()
    assert decode_image_bytes(loaded.data, "stored").size == (20, 40)


def test_image_from_pil_encodes_png_and_copies() -> None:
    screenshot = noisy_image(30, 20)

    loaded = image_from_pil(screenshot, "screenshot monitor 1")
    screenshot.putpixel((0, 0), (1, 2, 3))

    assert loaded.source == "screenshot monitor 1"
    assert loaded.data.startswith(b"\x89PNG")
    assert loaded.sha256 == hashlib.sha256(loaded.data).hexdigest()
    assert Image.open(io.BytesIO(loaded.data)).getpixel((0, 0)) == loaded.image.getpixel((0, 0)) != (1, 2, 3)
    assert image_from_pil(noisy_image(30, 20), "again").sha256 == loaded.sha256


def test_image_from_pil_converts_modes_to_rgb() -> None:
    loaded = image_from_pil(Image.new("L", (5, 5), 128), "page 1")
    assert loaded.image.mode == "RGB"
    assert loaded.image.getpixel((2, 2)) == (128, 128, 128)


def test_image_extension_from_magic() -> None:
    assert image_extension(b"\xff\xd8\xff\xe0rest") == "jpg"
    assert image_extension(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"
    assert image_extension(b"GIF89a...") == "gif"
    assert image_extension(b"\x89PNG\r\n\x1a\n") == "png"


# --- bad inputs ----------------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(AssistantError, match=r"^image not found: .*nope\.png; check the path$"):
        load_image_file(missing)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(AssistantError, match=r"^not an image: .* \(it is a directory\); attach a PNG, JPEG"):
        load_image_file(tmp_path)


def test_text_file_named_png(tmp_path: Path) -> None:
    file = tmp_path / "notes.png"
    file.write_text("these are my notes, not a picture\n")
    expected = r"^not an image: .*notes\.png \(.*\); attach a PNG, JPEG, WebP, GIF or BMP file$"
    with pytest.raises(AssistantError, match=expected):
        load_image_file(file)


def test_empty_file(tmp_path: Path) -> None:
    file = tmp_path / "empty.jpg"
    file.write_bytes(b"")
    with pytest.raises(AssistantError, match=r"^not an image: .*empty\.jpg \(the file is empty\)"):
        load_image_file(file)


def test_truncated_png(tmp_path: Path) -> None:
    data = png_bytes(noisy_image(64, 64))
    file = tmp_path / "half.png"
    file.write_bytes(data[: len(data) // 2])
    with pytest.raises(AssistantError, match=r"^image is truncated or corrupt: .*half\.png"):
        load_image_file(file)


def test_png_with_only_a_broken_header(tmp_path: Path) -> None:
    file = tmp_path / "stub.png"
    file.write_bytes(png_bytes(noisy_image())[:20])
    with pytest.raises(AssistantError, match=r"^image is truncated or corrupt: .*stub\.png"):
        load_image_file(file)


def test_corrupt_jpeg(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    noisy_image().save(buffer, format="JPEG")
    data = buffer.getvalue()
    file = tmp_path / "broken.jpg"
    file.write_bytes(data[:200])
    with pytest.raises(AssistantError, match=r"^image is truncated or corrupt: .*broken\.jpg"):
        load_image_file(file)


@pytest.mark.parametrize(
    "width,height",
    [
        (20_000, 20_000),  # past PIL's own DecompressionBombError threshold
        (12_000, 10_000),  # past our limit, where PIL only warns
    ],
)
def test_header_claiming_too_many_pixels_fails_fast(tmp_path: Path, width: int, height: int) -> None:
    file = tmp_path / "bomb.png"
    file.write_bytes(png_claiming_size(width, height))
    megapixels = round(width * height / 1_000_000)
    expected = (
        rf"^image too large: .*bomb\.png is {width}x{height} \({megapixels} megapixels\), "
        r"the limit is 100 megapixels; downscale it first$"
    )
    with pytest.raises(AssistantError, match=expected):
        load_image_file(file)
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_IMAGE_PIXELS * 2  # left untouched


def test_bomb_check_lets_no_warning_escape(tmp_path: Path) -> None:
    file = tmp_path / "bomb.png"
    file.write_bytes(png_claiming_size(12_000, 10_000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a DecompressionBombWarning escaping would now fail the test
        with pytest.raises(AssistantError, match="image too large"):
            load_image_file(file)


def test_load_image_bytes_names_the_source_in_errors() -> None:
    with pytest.raises(AssistantError, match=r"^not an image: clipboard \("):
        load_image_bytes(b"plain text", source="clipboard")


def test_images_module_is_pure_data() -> None:
    code = (
        "import sys, assistant.images, assistant.store; "
        "heavy = [m for m in ('torch', 'transformers', 'textual') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
