"""Molmo pointing: `<point x= y= alt=>`, `<points x1= y1= ...>` in percent; Molmo2 `coords="..."` in 0-1000.

Molmo (v1) writes points as HTML-like tags with coordinates in percent of the image (0-100)::

    <point x="61.5" y="40.6" alt="robot">robot</point>
    <points x1="9.1" y1="11.7" x2="17.2" y2="41.3" alt="the boats">the boats</points>

(source: the maintainers' `extract_points`, https://huggingface.co/allenai/Molmo-7B-O-0924/discussions/1).
Molmo2 packs points into one attribute, coordinates in thousandths, each image (or video frame) introduced by
its index and each point by an object index, images separated by ";" or a tab::

    <points coords="1 1 555 169 2 649 154;2 3 709 162" alt="boats">boats</points>

(source: Molmo2 technical report, appendix "Pointing", and the Molmo2 model card's
`extract_multi_image_points`). A reply is about one image, so Molmo2 points of the first image index are
returned; points on other images are counted in `raw["other_image_points"]`. `<tracks>` (video) are ignored.
Qwen2.5-VL's XML point format (`<points x1= y1= alt=>`) shares this syntax; `xml_points` serves both.
"""

from __future__ import annotations

import re

from assistant.geometry import Grounding, Point

from .common import Scale, Size, clean_label, finish, make_point, never_raises, strip_thinking, to_float

FORMAT = "molmo"
DESCRIPTION = "Molmo/Molmo2 <point>/<points> tags (percent; Molmo2 coords= in 0-1000)"

_TAG_RE = re.compile(r"<\s*(points?)\b([^<>]*)>", re.IGNORECASE)
_CLOSE_RE = re.compile(r"<\s*/\s*points?\s*>", re.IGNORECASE)
_INNER_LIMIT = 500
_ATTR_RE = re.compile(r"([A-Za-z_][\w-]*)\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'>]+))")
_COORD_GROUP_RE = re.compile(r"([0-9.]+)\s+([0-9. ]+)")
_COORD_POINT_RE = re.compile(r"(\d+)\s+(\d{1,4}(?:\.\d+)?)\s+(\d{1,4}(?:\.\d+)?)")


def _inner_text(text: str, tag: re.Match[str]) -> str:
    """The text between an opening tag and its closing tag (looked for only nearby: linear time on junk)."""
    close = _CLOSE_RE.search(text, tag.end(), tag.end() + _INNER_LIMIT)
    return clean_label(text[tag.end():close.start()]) if close else ""


def _attributes(body: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for match in _ATTR_RE.finditer(body):
        value = next((g for g in match.groups()[1:] if g is not None), "")
        attrs[match.group(1).lower()] = value
    return attrs


def _numbered_points(attrs: dict[str, str]) -> list[tuple[float, float]]:
    """x/y, or x1/y1, x2/y2, ... in index order."""
    points: list[tuple[float, float]] = []
    x, y = to_float(attrs.get("x")), to_float(attrs.get("y"))
    if x is not None and y is not None:
        points.append((x, y))
    index = 1
    while f"x{index}" in attrs or f"y{index}" in attrs:
        x, y = to_float(attrs.get(f"x{index}")), to_float(attrs.get(f"y{index}"))
        if x is not None and y is not None:
            points.append((x, y))
        index += 1
        if index > 10_000:
            break
    return points


def xml_points(text: str, scale: Scale, size: Size) -> list[Point | None]:
    """Points of `<point x= y=>` / `<points x1= y1= ...>` tags (no coords= attribute), scaled by `scale`."""
    shapes: list[Point | None] = []
    for match in _TAG_RE.finditer(text):
        attrs = _attributes(match.group(2))
        if "coords" in attrs:
            continue
        label = attrs.get("alt") or _inner_text(text, match)
        for x, y in _numbered_points(attrs):
            shapes.append(make_point(scale.x(x), scale.y(y), label, size))
    return shapes


def _coords_points(coords: str) -> list[tuple[str, float, float]]:
    """(image index, x, y) for every point of a Molmo2 coords string, x/y in thousandths."""
    found: list[tuple[str, float, float]] = []
    for group in re.split(r"[;\t]", coords):
        head = _COORD_GROUP_RE.match(group.strip())
        if not head:
            continue
        image = head.group(1)
        for point in _COORD_POINT_RE.finditer(head.group(2)):
            x, y = to_float(point.group(2)), to_float(point.group(3))
            if x is not None and y is not None:
                found.append((image, x, y))
    return found


@never_raises(FORMAT)
def parse(text: str, image_size: Size, input_size: Size | None = None) -> Grounding:
    """Points from Molmo and Molmo2 replies, in original-image pixels."""
    text = strip_thinking(text)
    percent = Scale.normalized(image_size, 100.0)
    thousandths = Scale.normalized(image_size, 1000.0)
    shapes: list[Point | None] = []
    other_images = 0
    first_image: str | None = None
    for match in _TAG_RE.finditer(text):
        attrs = _attributes(match.group(2))
        label = attrs.get("alt") or _inner_text(text, match)
        if "coords" in attrs:
            for image, x, y in _coords_points(attrs["coords"]):
                first_image = first_image or image
                if image != first_image:
                    other_images += 1
                    continue
                shapes.append(make_point(thousandths.x(x), thousandths.y(y), label, image_size))
        else:
            for x, y in _numbered_points(attrs):
                shapes.append(make_point(percent.x(x), percent.y(y), label, image_size))
    raw = {"other_image_points": other_images} if other_images else {}
    return finish(FORMAT, shapes, image_size, raw)


def format_point(point: Point, image_size: Size) -> str:
    """Molmo (v1) text for `point` (percent, one decimal like the model)."""
    x = point.x / image_size[0] * 100
    y = point.y / image_size[1] * 100
    return f'<point x="{x:.1f}" y="{y:.1f}" alt="{point.label}">{point.label}</point>'


def format_points_molmo2(points: list[Point], image_size: Size, label: str = "") -> str:
    """Molmo2 text for several points of one image (thousandths, zero-padded to three digits)."""
    parts = ["1"]
    for index, point in enumerate(points, start=1):
        x = round(point.x / image_size[0] * 1000)
        y = round(point.y / image_size[1] * 1000)
        parts.append(f"{index} {x:03d} {y:03d}")
    return f'<points coords="{" ".join(parts)}" alt="{label}">{label}</points>'


__all__ = ["parse", "xml_points", "format_point", "format_points_molmo2"]
