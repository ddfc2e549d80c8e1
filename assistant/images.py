"""Image intake: image files and in-memory images as content-addressed bytes, bomb-checked (the engine downscales)."""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import AssistantError

MAX_IMAGE_PIXELS = 100_000_000
"""Refuse images above this (decompression bombs). Images between a model's budget and this are fine: the engine
downscales them."""

SUPPORTED_FORMATS = "a PNG, JPEG, WebP, GIF or BMP file"

_KEPT_FORMATS: dict[str, str] = {"PNG": "png", "JPEG": "jpg", "MPO": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}
"""PIL formats whose original bytes are stored as they are (name -> file extension); others are stored as PNG."""

_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    TypeError,
)
"""What PIL raises for damaged files (it has no single exception type for them)."""


@dataclass
class LoadedImage:
    """An image ready to store: the decoded RGB bitmap plus the exact bytes that will be kept and their hash."""

    image: Image.Image
    """RGB, fully loaded, EXIF orientation applied."""
    source: str
    """Display name ("cat.png", "screenshot monitor 1"); never used to read the image again."""
    sha256: str
    """Hex digest of `data`: the name of the stored file."""
    data: bytes
    """The bytes to store: the original file when it is a PNG/JPEG/WebP/GIF/BMP, else a PNG encoding."""
    width: int
    height: int

    @property
    def extension(self) -> str:
        """File extension (no dot) for the stored bytes."""
        return image_extension(self.data)


def image_extension(data: bytes) -> str:
    """The file extension for encoded image bytes, from their magic number ("png" for anything unknown)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if data.startswith(b"BM"):
        return "bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return "png"


def _has_known_magic(data: bytes) -> bool:
    return data.startswith(b"\x89PNG\r\n\x1a\n") or image_extension(data) != "png"


def _not_an_image(label: str, why: str) -> AssistantError:
    return AssistantError(f"not an image: {label} ({why}); attach {SUPPORTED_FORMATS}")


def _corrupt(label: str, why: str) -> AssistantError:
    return AssistantError(
        f"image is truncated or corrupt: {label} ({why}); open it in an image viewer, save it again and attach the copy"
    )


def _too_large(label: str, size: tuple[int, int] | None, pixels: int | None = None) -> AssistantError:
    limit_mp = MAX_IMAGE_PIXELS // 1_000_000
    if size is not None:
        megapixels = size[0] * size[1] / 1_000_000
        what = f"is {size[0]}x{size[1]} ({megapixels:.0f} megapixels)"
    elif pixels is not None:
        what = f"has {pixels / 1_000_000:.0f} megapixels"
    else:
        what = "has too many pixels"
    return AssistantError(f"image too large: {label} {what}, the limit is {limit_mp} megapixels; downscale it first")


def _probe_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the header alone, bypassing PIL's bomb check (which hides the size from us)."""
    Image.init()
    prefix = data[:16]
    for name in list(Image.ID):
        factory, accept = Image.OPEN[name]
        try:
            accepted = not accept or accept(prefix)
            if isinstance(accepted, str) or not accepted:
                continue
            probe = factory(io.BytesIO(data), "")
            return probe.size
        except Exception:  # a header this plugin cannot parse: try the next one
            continue
    return None


def _bomb_pixels(error: Exception) -> int | None:
    match = re.search(r"\((\d+) pixels\)", str(error))
    return int(match.group(1)) if match else None


def _to_8bit(image: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit or float grayscale image as 8-bit "L", scaled (a plain convert clips: a 16-bit gradient
    would come out almost all white). Integers up to 65535 are taken as 16-bit, floats within 0-1 as fractions,
    anything else is stretched from its own minimum to its maximum."""
    if image.mode != "F":
        image = image.convert("I")  # I;16, I;16B, ... -> 32-bit integers, same values
    low, high = image.getextrema()
    if image.mode == "F" and low >= 0 and high <= 1:
        scale, offset = 255.0, 0.0
    elif low >= 0 and high <= 255:
        scale, offset = 1.0, 0.0
    elif low >= 0 and high <= 65535:
        scale, offset = 1 / 257, 0.0
    else:
        span = (high - low) or 1
        scale, offset = 255.0 / span, -low * 255.0 / span
    if image.mode == "I":
        image = image.convert("F")  # float arithmetic: no integer truncation before the rounding below
    return image.point(lambda value: value * scale + offset + 0.5).convert("L")


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB, with transparent areas laid over white (a plain convert would often turn them black); high bit depths
    scaled to 8 bits; a colour mode that cannot become RGB is one line."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "F") or image.mode.startswith("I;"):
        return _to_8bit(image).convert("RGB")
    try:
        return _composite_rgb(image)
    except ValueError as error:
        raise AssistantError(
            f"cannot use an image in colour mode {image.mode} ({error}); save it as an ordinary RGB PNG or JPEG"
        ) from None


def _composite_rgb(image: Image.Image) -> Image.Image:
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if not has_alpha:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _decode(data: bytes, label: str) -> tuple[Image.Image, str | None]:
    """Decode encoded bytes into an RGB image (size checked from the header first), plus PIL's format name."""
    if not data:
        raise _not_an_image(label, "the file is empty")
    with warnings.catch_warnings():
        # Our own limit (checked below from the header) replaces PIL's warning threshold.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            opened = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as error:
            raise _too_large(label, _probe_size(data), _bomb_pixels(error)) from None
        except UnidentifiedImageError:
            if _has_known_magic(data):
                raise _corrupt(label, "the header cannot be read") from None
            raise _not_an_image(label, "unrecognised file contents") from None
        except _DECODE_ERRORS as error:
            raise _corrupt(label, str(error) or type(error).__name__) from None
        width, height = opened.size
        if width <= 0 or height <= 0:
            raise _corrupt(label, f"it claims a size of {width}x{height}")
        if width * height > MAX_IMAGE_PIXELS:
            raise _too_large(label, (width, height))
        image_format = opened.format
        try:
            opened.load()
        except Image.DecompressionBombError as error:
            raise _too_large(label, None, _bomb_pixels(error)) from None
        except _DECODE_ERRORS as error:
            raise _corrupt(label, str(error) or type(error).__name__) from None
    try:
        oriented = ImageOps.exif_transpose(opened)
    except _DECODE_ERRORS:  # unreadable EXIF: keep the stored orientation
        oriented = opened
    return _to_rgb(oriented), image_format


def decode_image_bytes(data: bytes, label: str) -> Image.Image:
    """Encoded image bytes as a fully loaded RGB image; `label` names the image in error messages."""
    return _decode(data, label)[0]


def _encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=4)
    return buffer.getvalue()


def load_image_bytes(data: bytes, source: str, label: str | None = None) -> LoadedImage:
    """Encoded image bytes (a file, a paste) as a LoadedImage; the original bytes are kept when the format allows."""
    image, image_format = _decode(data, label or source)
    stored = data if image_format in _KEPT_FORMATS else _encode_png(image)
    return LoadedImage(
        image=image,
        source=source,
        sha256=hashlib.sha256(stored).hexdigest(),
        data=stored,
        width=image.width,
        height=image.height,
    )


def load_image_file(path: str | Path) -> LoadedImage:
    """Read an image file the user attached; every way it can be unusable becomes a one-line AssistantError."""
    file = Path(path).expanduser()
    label = str(path)
    if file.is_dir():
        raise _not_an_image(label, "it is a directory")
    if not file.exists():
        raise AssistantError(f"image not found: {label}; check the path")
    try:
        data = _read_regular_file(file, label)
    except PermissionError:
        raise AssistantError(f"cannot read image {label}: permission denied; check the file's permissions") from None
    except OSError as error:
        raise AssistantError(f"cannot read image {label}: {error.strerror or error}; check the path") from None
    return load_image_bytes(data, source=file.name, label=label)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _read_regular_file(file: Path, label: str) -> bytes:
    """The bytes of a regular file; a FIFO, device or socket is refused before anything reads from it (reading
    a FIFO would block forever, a device may never end). Opened non-blocking and checked again on the handle."""
    mode = file.stat().st_mode
    if not stat.S_ISREG(mode):
        raise _not_an_image(label, f"it is {_kind(mode)}")
    fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if not stat.S_ISREG(mode):  # swapped for something else since the check above
            raise _not_an_image(label, f"it is {_kind(mode)}")
        return handle.read()


def image_from_pil(image: Image.Image, source: str) -> LoadedImage:
    """An in-memory image (screenshot, PDF page, crop) as a LoadedImage, stored as PNG."""
    image.load()
    rgb = _to_rgb(image)
    if rgb is image:  # the caller may keep drawing on its image: the stored one must not change with it
        rgb = image.copy()
    data = _encode_png(rgb)
    return LoadedImage(
        image=rgb,
        source=source,
        sha256=hashlib.sha256(data).hexdigest(),
        data=data,
        width=rgb.width,
        height=rgb.height,
    )
