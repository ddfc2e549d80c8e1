"""Small helpers shared by tests: images on disk, a fresh assistant on a tiny profile."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw


def make_image(path: Path, size: tuple[int, int] = (320, 240), colour: str = "red") -> Path:
    """A real PNG with a shape on it (so two images with different colours differ in content)."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.rectangle([w // 4, h // 4, 3 * w // 4, 3 * h // 4], fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
