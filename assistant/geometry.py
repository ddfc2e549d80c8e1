"""Grounding geometry as plain values: boxes, points and polygons in pixels of the original image."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Union


@dataclass(frozen=True)
class Box:
    """An axis-aligned box, x1 <= x2 and y1 <= y2, in pixels of the original image."""

    x1: float
    y1: float
    x2: float
    y2: float
    label: str = ""
    kind: Literal["box"] = "box"


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str = ""
    kind: Literal["point"] = "point"


@dataclass(frozen=True)
class Polygon:
    points: tuple[tuple[float, float], ...]
    label: str = ""
    kind: Literal["polygon"] = "polygon"


Shape = Union[Box, Point, Polygon]


@dataclass
class Grounding:
    """What a parser found in one reply, for one image."""

    format: str
    shapes: list[Shape] = field(default_factory=list)
    image_size: tuple[int, int] = (0, 0)
    raw: dict[str, Any] = field(default_factory=dict)
    """Format-specific extras kept as data (e.g. PaliGemma <segNNN> codes)."""


def shape_to_dict(shape: Shape) -> dict[str, Any]:
    from dataclasses import asdict

    data = asdict(shape)
    if isinstance(shape, Polygon):
        data["points"] = [list(p) for p in shape.points]
    return data


def rounded_shape_dict(shape: Shape, digits: int = 2) -> dict[str, Any]:
    """`shape_to_dict` with floats rounded (2 digits: a hundredth of a pixel), for JSON a person reads."""
    return _rounded(shape_to_dict(shape), digits)


def _rounded(value: Any, digits: int) -> Any:
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {key: _rounded(item, digits) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item, digits) for item in value]
    return value


def shape_from_dict(data: dict[str, Any]) -> Shape:
    kind = data.get("kind")
    if kind == "box":
        return Box(data["x1"], data["y1"], data["x2"], data["y2"], data.get("label", ""))
    if kind == "point":
        return Point(data["x"], data["y"], data.get("label", ""))
    if kind == "polygon":
        return Polygon(tuple((float(x), float(y)) for x, y in data["points"]), data.get("label", ""))
    raise ValueError(f"unknown shape kind {kind!r}")


def check_grounding(value: Any, image_size: tuple[int, int] | None = None) -> str | None:
    """None when `value` is a Grounding whose shapes keep the documented contract, else what is wrong.

    The contract: `shapes` is a list of Box, Point and Polygon; every coordinate is a finite number in pixels of
    the original image, inside it (0 <= x <= width, 0 <= y <= height, when the size is known); a box has
    x1 <= x2 and y1 <= y2; labels are strings.
    """
    if not isinstance(value, Grounding):
        kind = "None" if value is None else type(value).__name__
        return f"the parser returned {kind}, not a Grounding"
    if not isinstance(value.shapes, list):
        return f"Grounding.shapes is {type(value.shapes).__name__}, not a list"
    if not isinstance(value.raw, dict):
        return f"Grounding.raw is {type(value.raw).__name__}, not a dict"
    width, height = image_size if image_size else (0, 0)
    for index, shape in enumerate(value.shapes, 1):
        problem = _check_shape(shape, width, height)
        if problem:
            return f"shape {index} {problem}"
    return None


def _check_shape(shape: Any, width: float, height: float) -> str | None:
    if not isinstance(shape, (Box, Point, Polygon)):
        return f"is {type(shape).__name__}, not a Box, Point or Polygon"
    if not isinstance(shape.label, str):
        return f"has a {type(shape.label).__name__} label, not a str"
    if isinstance(shape, Box):
        pairs = [(shape.x1, shape.y1), (shape.x2, shape.y2)]
    elif isinstance(shape, Point):
        pairs = [(shape.x, shape.y)]
    else:
        try:
            pairs = [(x, y) for x, y in shape.points]
        except (TypeError, ValueError):
            return "has points that are not (x, y) pairs"
        if len(pairs) < 3:
            return f"is a polygon with {len(pairs)} points (needs 3 or more)"
    for x, y in pairs:
        for name, number, high in (("x", x, width), ("y", y, height)):
            if not isinstance(number, (int, float)) or isinstance(number, bool) or not math.isfinite(number):
                return f"has {name} = {number!r}, not a finite number"
            if number < 0 or (high and number > high):
                return f"has {name} = {number:g} outside the image (0 to {high:g} pixels)" if high else (
                    f"has {name} = {number:g}, a negative pixel coordinate"
                )
    if isinstance(shape, Box) and (shape.x1 > shape.x2 or shape.y1 > shape.y2):
        return f"is inverted ({shape.x1:g},{shape.y1:g})-({shape.x2:g},{shape.y2:g}): x1 <= x2 and y1 <= y2"
    return None
