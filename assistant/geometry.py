"""Grounding geometry as plain values: boxes, points and polygons in pixels of the original image."""

from __future__ import annotations

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


def shape_from_dict(data: dict[str, Any]) -> Shape:
    kind = data.get("kind")
    if kind == "box":
        return Box(data["x1"], data["y1"], data["x2"], data["y2"], data.get("label", ""))
    if kind == "point":
        return Point(data["x"], data["y"], data.get("label", ""))
    if kind == "polygon":
        return Polygon(tuple((float(x), float(y)) for x, y in data["points"]), data.get("label", ""))
    raise ValueError(f"unknown shape kind {kind!r}")
