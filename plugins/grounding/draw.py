"""Drawing parsed grounding on an image (numbered, labelled shapes) and cropping one shape for /zoom."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from assistant.geometry import Box, Grounding, Point, Polygon, Shape

PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
    (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (255, 225, 25), (170, 110, 40),
)
"""Distinct, saturated colours (Sasha Trubetskoy's list); shape N gets PALETTE[N % len]."""


def colour_for(index: int) -> tuple[int, int, int]:
    return PALETTE[index % len(PALETTE)]


def _text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError):  # Pillow without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def _scaled(shape: Shape, sx: float, sy: float) -> Shape:
    if isinstance(shape, Box):
        return Box(shape.x1 * sx, shape.y1 * sy, shape.x2 * sx, shape.y2 * sy, shape.label)
    if isinstance(shape, Point):
        return Point(shape.x * sx, shape.y * sy, shape.label)
    return Polygon(tuple((x * sx, y * sy) for x, y in shape.points), shape.label)


def _anchor(shape: Shape) -> tuple[float, float]:
    """Where a shape's tag goes: above the top-left corner (or the topmost vertex / the point)."""
    if isinstance(shape, Box):
        return shape.x1, shape.y1
    if isinstance(shape, Point):
        return shape.x, shape.y
    return min(shape.points, key=lambda p: (p[1], p[0]))


def draw_grounding(image: Image.Image, grounding: Grounding) -> Image.Image:
    """A copy of `image` with every shape drawn, numbered from 1 and labelled, in its own colour.

    Shapes are in pixels of `grounding.image_size`; when `image` has another size (a thumbnail, a preview) they
    are scaled to it. Line width and text size follow the image size so tags stay readable on screenshots.
    """
    canvas = image.convert("RGB") if image.mode != "RGB" else image.copy()
    width, height = canvas.size
    gw, gh = grounding.image_size if all(v > 0 for v in grounding.image_size) else canvas.size
    sx, sy = width / gw, height / gh
    line = max(2, round(max(width, height) / 400))
    font = _font(max(12, round(max(width, height) / 60)))
    pad = max(2, line)
    draw = ImageDraw.Draw(canvas)
    tags: list[tuple[tuple[float, float], str, tuple[int, int, int]]] = []
    for index, original in enumerate(grounding.shapes):
        shape = _scaled(original, sx, sy)
        colour = colour_for(index)
        if isinstance(shape, Box):
            draw.rectangle((shape.x1, shape.y1, shape.x2, shape.y2), outline=colour, width=line)
        elif isinstance(shape, Point):
            radius = line * 3
            draw.ellipse((shape.x - radius, shape.y - radius, shape.x + radius, shape.y + radius),
                         fill=colour, outline=_text_colour(colour), width=max(1, line // 2))
        else:
            draw.line([*shape.points, shape.points[0]], fill=colour, width=line, joint="curve")
        text = f"{index + 1} {shape.label}".strip() if shape.label else str(index + 1)
        x, y = _anchor(shape)
        if isinstance(shape, Point):  # beside the dot, not over it
            x, y = x + line * 4, y - line * 2
        tags.append(((x, y), text, colour))
    for (x, y), text, colour in tags:  # tags last, so no outline crosses a label
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left + 2 * pad, bottom - top + 2 * pad
        tx = min(max(0.0, x), max(0.0, width - tw))
        ty = y - th if y - th >= 0 else min(y, max(0.0, height - th))
        draw.rectangle((tx, ty, tx + tw, ty + th), fill=colour)
        draw.text((tx + pad - left, ty + pad - top), text, fill=_text_colour(colour), font=font)
    return canvas


def shape_bounds(shape: Shape) -> tuple[float, float, float, float]:
    """(x1, y1, x2, y2) of a shape (a point has zero size)."""
    if isinstance(shape, Box):
        return shape.x1, shape.y1, shape.x2, shape.y2
    if isinstance(shape, Point):
        return shape.x, shape.y, shape.x, shape.y
    xs = [p[0] for p in shape.points]
    ys = [p[1] for p in shape.points]
    return min(xs), min(ys), max(xs), max(ys)


def crop_shape(image: Image.Image, shape: Shape, margin: float = 0.1) -> Image.Image:
    """The region of `shape` cut from the full-resolution `image`, for /zoom.

    Boxes and polygons grow by `margin` of their size on each side (at least 8 px); a point gets a square
    whose side is 2 x `margin` of the image's longer side (at least 32 px), centred on it. The crop is clipped
    to the image and never empty.
    """
    width, height = image.size
    x1, y1, x2, y2 = shape_bounds(shape)
    if isinstance(shape, Point):
        half = max(16.0, margin * max(width, height))
        x1, y1, x2, y2 = x1 - half, y1 - half, x2 + half, y2 + half
    else:
        mx = max(8.0, (x2 - x1) * margin)
        my = max(8.0, (y2 - y1) * margin)
        x1, y1, x2, y2 = x1 - mx, y1 - my, x2 + mx, y2 + my
    left = int(min(max(0, x1), width - 1))
    top = int(min(max(0, y1), height - 1))
    right = int(max(min(width, round(x2)), left + 1))
    bottom = int(max(min(height, round(y2)), top + 1))
    return image.crop((left, top, right, bottom))
