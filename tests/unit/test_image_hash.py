"""An image's content hash covers every byte: two files that differ only at the end are two images in the store."""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path

from PIL import Image

from assistant.images import image_from_pil, load_image_file
from assistant.store import Store

SIZE = (256, 256)
"""Uncompressed, the pixel rows alone are 196 kB: the two files share far more than any plausible 'first bytes'."""


def twins() -> tuple[Image.Image, Image.Image]:
    """Two noisy images (they compress badly, so even stored as PNG they are large) equal but for the last pixel."""
    first = Image.frombytes("RGB", SIZE, random.Random(7).randbytes(SIZE[0] * SIZE[1] * 3))
    first.putpixel((SIZE[0] - 1, SIZE[1] - 1), (10, 120, 200))
    second = first.copy()
    second.putpixel((SIZE[0] - 1, SIZE[1] - 1), (250, 0, 0))
    return first, second


def uncompressed_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=0)  # stored deflate blocks: the bytes differ only near the end
    return buffer.getvalue()


def test_files_differing_only_at_the_end_hash_apart_and_are_stored_apart(tmp_path: Path) -> None:
    paths = []
    for name, image in zip(("first.png", "second.png"), twins()):
        path = tmp_path / name
        path.write_bytes(uncompressed_png(image))
        paths.append(path)
    a_bytes, b_bytes = (path.read_bytes() for path in paths)
    shared = next(i for i, (x, y) in enumerate(zip(a_bytes, b_bytes)) if x != y)
    assert shared > 190_000 and len(a_bytes) == len(b_bytes)  # the files really share a long prefix

    a, b = (load_image_file(path) for path in paths)
    assert a.sha256 == hashlib.sha256(a_bytes).hexdigest()
    assert b.sha256 == hashlib.sha256(b_bytes).hexdigest()
    assert a.sha256 != b.sha256

    with Store(tmp_path / "chats.sqlite3", tmp_path / "images") as store:
        part_a, part_b = store.put_image(a), store.put_image(b)
        assert (part_a.sha256, part_b.sha256) == (a.sha256, b.sha256)
        stored_a, stored_b = store.image_path(part_a.sha256), store.image_path(part_b.sha256)
        assert stored_a != stored_b
        assert hashlib.sha256(stored_a.read_bytes()).hexdigest() == part_a.sha256
        assert hashlib.sha256(stored_b.read_bytes()).hexdigest() == part_b.sha256
        assert store.open_image(part_b).getpixel((SIZE[0] - 1, SIZE[1] - 1)) == (250, 0, 0)
        assert store.open_image(part_a).getpixel((SIZE[0] - 1, SIZE[1] - 1)) == (10, 120, 200)


def test_in_memory_images_differing_only_at_the_end_hash_apart() -> None:
    first, second = twins()
    a, b = image_from_pil(first, "a"), image_from_pil(second, "b")
    assert len(a.data) > 190_000
    assert a.sha256 == hashlib.sha256(a.data).hexdigest() != b.sha256 == hashlib.sha256(b.data).hexdigest()
