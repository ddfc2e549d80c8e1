"""UI-TARS GUI actions: `click(start_box='(x,y)')`, `drag(start_box=..., end_box=...)`, `<point>x y</point>`.

Two coordinate conventions, hence two format names:

- `uitars` (UI-TARS-1.5): ABSOLUTE pixels of the smart-resized model input. The official coordinate guide
  (https://github.com/bytedance/UI-TARS/blob/main/README_coordinates.md) maps `click(start_box='(197,525)')`
  back with `x / new_width * width` where `new_height, new_width = smart_resize(height, width)` with factor 28,
  min_pixels 100*28*28 and max_pixels 16384*28*28. Pass the processor's input size as `input_size`; when it is
  None this parser computes that same smart_resize of the original size.
- `uitars1` (UI-TARS 1.0 / 7B-SFT/DPO and Doubao-style `click(point='<point>200 300</point>')`): relative
  0-1000, as the `ui-tars` package parses them with `factor=1000`.

A value with two numbers is a point; four numbers (`start_box='(x1,y1,x2,y2)'`, `<bbox>x1 y1 x2 y2</bbox>`) a
box. Shapes are labelled with the action ("click", "drag", "drag end", ...). The actions themselves (click, type,
hotkey, scroll, ...) are in `raw["actions"]` as desktop tool calls in image pixels (uitars_actions.py).
"""

from __future__ import annotations

import bisect
import re

from assistant.geometry import Grounding, Point, Shape

from .uitars_actions import action_calls
from .common import (
    NUM,
    Scale,
    Size,
    finish,
    make_box,
    make_point,
    never_raises,
    smart_resize,
    strip_thinking,
    to_float,
)

FORMAT = "uitars"
FORMAT_V1 = "uitars1"
DESCRIPTION = "UI-TARS-1.5 actions click(start_box='(x,y)') in resized-input pixels"
DESCRIPTION_V1 = "UI-TARS 1.0 / Doubao actions, <point>x y</point> (0-1000)"

UITARS_MIN_PIXELS = 100 * 28 * 28
UITARS_MAX_PIXELS = 16384 * 28 * 28

_ARG_RE = re.compile(
    r"\b(start_box|end_box|start_point|end_point|point|box)\s*=\s*"
    r"(?:'([^']{0,300})'|\"([^\"]{0,300})\"|(\([^()]{0,300}\)|\[[^\[\]]{0,300}\]))"
)
_CALL_RE = re.compile(r"([A-Za-z_]\w*)\s*\(")
_TAG_RE = re.compile(r"<(point|bbox)>([^<>]*)</\1>")
_NUM_RE = re.compile(NUM)


def _values(text: str) -> list[float]:
    values = [to_float(v) for v in _NUM_RE.findall(text)]
    return [v for v in values if v is not None]


def _action_before(text: str, position: int) -> str:
    name = ""
    for call in _CALL_RE.finditer(text, max(0, position - 400), position):
        name = call.group(1)
    return name


def _shape(values: list[float], label: str, scale: Scale, size: Size) -> Shape | None:
    if len(values) == 2:
        return make_point(scale.x(values[0]), scale.y(values[1]), label, size)
    if len(values) == 4:
        x1, y1, x2, y2 = values
        return make_box(scale.x(x1), scale.y(y1), scale.x(x2), scale.y(y2), label, size)
    return None


def _parse(name: str, text: str, scale: Scale, size: Size) -> Grounding:
    text = strip_thinking(text)
    shapes: list[Shape | None] = []
    used: list[tuple[int, int]] = []
    for match in _ARG_RE.finditer(text):
        action = _action_before(text, match.start())
        label = f"{action} end" if match.group(1).startswith("end_") else action
        value = next(group for group in match.groups()[1:] if group is not None)
        shapes.append(_shape(_values(value), label, scale, size))
        used.append(match.span())
    starts = [start for start, _ in used]
    for tag in _TAG_RE.finditer(text):
        inside = bisect.bisect_right(starts, tag.start()) - 1
        if inside >= 0 and tag.start() < used[inside][1]:
            continue  # already read as the value of start_box=/point=...
        shapes.append(_shape(_values(tag.group(2)), "", scale, size))
    actions = action_calls(text, scale, size)
    return finish(name, shapes, size, {"actions": actions} if actions else None)


@never_raises(FORMAT)
def parse(text: str, image_size: Size, input_size: Size | None = None) -> Grounding:
    """UI-TARS-1.5 action coordinates (resized-input pixels) mapped to original-image pixels."""
    source = input_size or smart_resize(image_size[0], image_size[1], 28, UITARS_MIN_PIXELS, UITARS_MAX_PIXELS)
    return _parse(FORMAT, text, Scale.pixels_of(image_size, source), image_size)


@never_raises(FORMAT_V1)
def parse_v1(text: str, image_size: Size, input_size: Size | None = None) -> Grounding:
    """UI-TARS 1.0 / Doubao action coordinates (0-1000) mapped to original-image pixels."""
    return _parse(FORMAT_V1, text, Scale.normalized(image_size, 1000.0), image_size)


def format_point(point: Point, image_size: Size, input_size: Size | None = None) -> str:
    """UI-TARS-1.5 click on `point`, in the (given or smart-resized) input pixels."""
    iw, ih = input_size or smart_resize(image_size[0], image_size[1], 28, UITARS_MIN_PIXELS, UITARS_MAX_PIXELS)
    x, y = round(point.x * iw / image_size[0]), round(point.y * ih / image_size[1])
    return f"Thought: {point.label}\nAction: click(start_box='({x},{y})')"


def format_point_v1(point: Point, image_size: Size) -> str:
    """UI-TARS 1.0 / Doubao click on `point`, relative 0-1000."""
    x, y = round(point.x / image_size[0] * 1000), round(point.y / image_size[1] * 1000)
    return f"Action: click(point='<point>{x} {y}</point>')"
