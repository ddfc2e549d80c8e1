"""Qwen-VL family: Qwen2-VL box tokens (0-1000), Qwen2.5-VL JSON (input pixels), Qwen3-VL JSON (0-1000).

- Qwen2-VL: `<|object_ref_start|>the man<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>`, coordinates
  relative 0-1000 (https://swift.readthedocs.io/en/latest/Multi-Modal/qwen2-vl-best-practice.html). With
  `skip_special_tokens=True` the tokens vanish and the reply reads `the man(x1,y1),(x2,y2)`: both forms parse,
  as does Qwen-VL's `<ref>..</ref><box>(x1,y1),(x2,y2)</box>`.
- Qwen2.5-VL: ```json [{"bbox_2d": [x1, y1, x2, y2], "label": ...}, {"point_2d": [x, y], ...}] ``` in ABSOLUTE
  pixels of the resized model input (the processor's `image_grid_thw` x 14), also `<points x1= y1= alt=>` XML
  points and plain `x1,y1,x2,y2 label` lines
  (https://github.com/QwenLM/Qwen2.5-VL/blob/main/cookbooks/spatial_understanding.ipynb). Pass that input size
  as `input_size`; when it is None the coordinates are taken as pixels of the original image.
  `common.smart_resize` computes the input size the default processor would use.
- Qwen3-VL: the same JSON keys, relative 0-1000 (https://github.com/QwenLM/Qwen3-VL, "Coordinate System").
  `json1000` (the prompt for models without native grounding) parses the same way.
"""

from __future__ import annotations

import bisect
import json
import re

from assistant.geometry import Box, Grounding, Point, Shape

from .common import (
    NUM,
    Scale,
    Size,
    dict_label,
    finish,
    groups_of,
    json_objects,
    label_before,
    make_box,
    make_point,
    never_raises,
    strip_thinking,
    walk_dicts,
)
from .molmo import xml_points

QWEN2 = "qwen2vl"
QWEN25 = "qwen2.5vl"
QWEN3 = "qwen3vl"
JSON1000 = "json1000"

_PAIR = rf"\(\s*({NUM})\s*,\s*({NUM})\s*\)"
_BOX_PAIRS_RE = re.compile(_PAIR + r"\s*,?\s*" + _PAIR)
_REF_RE = re.compile(r"<\|object_ref_start\|>([^<]{0,1000})<\|object_ref_end\|>|<ref>([^<]{0,1000})</ref>")
_TOKENS_RE = re.compile(r"<\|?/?[a-z_]+\|?>")
_PLAIN_RE = re.compile(rf"^[ \t]*({NUM})[ \t]*,[ \t]*({NUM})[ \t]*,[ \t]*({NUM})[ \t]*,[ \t]*({NUM})[ \t]+(\S[^\n]*)$",
                       re.MULTILINE)
_BOX_KEYS = ("bbox_2d", "bbox")
_POINT_KEYS = ("point_2d", "point")


def json_shapes(text: str, scale: Scale, size: Size) -> list[Shape | None]:
    """Boxes and points from every `{"bbox_2d"|"bbox": ..., "point_2d"|"point": ..., "label": ...}` object."""
    shapes: list[Shape | None] = []
    for value in json_objects(text):
        for item, parent in walk_dicts(value):
            label = dict_label(item, parent)
            for key in _BOX_KEYS:
                for x1, y1, x2, y2 in groups_of(item.get(key), 4):
                    shapes.append(make_box(scale.x(x1), scale.y(y1), scale.x(x2), scale.y(y2), label, size))
            for key in _POINT_KEYS:
                for x, y in groups_of(item.get(key), 2):
                    shapes.append(make_point(scale.x(x), scale.y(y), label, size))
    return shapes


def plain_boxes(text: str, scale: Scale, size: Size) -> list[Shape | None]:
    """Qwen2.5-VL's plain-text box lines: `x1,y1,x2,y2 label`."""
    shapes: list[Shape | None] = []
    for match in _PLAIN_RE.finditer(text):
        x1, y1, x2, y2 = (float(match.group(i)) for i in range(1, 5))
        shapes.append(make_box(scale.x(x1), scale.y(y1), scale.x(x2), scale.y(y2), match.group(5), size))
    return shapes


def _json_family(name: str, text: str, scale: Scale, size: Size) -> Grounding:
    text = strip_thinking(text)
    shapes = json_shapes(text, scale, size)
    if not any(shapes):
        shapes = list(xml_points(text, scale, size))
    if not any(shapes):
        shapes = plain_boxes(text, scale, size)
    return finish(name, shapes, size)


@never_raises(QWEN25)
def parse_qwen25(text: str, image_size: Size, input_size: Size | None = None) -> Grounding:
    """Qwen2.5-VL JSON/XML/plain boxes and points, from resized-input pixels to original pixels."""
    return _json_family(QWEN25, text, Scale.pixels_of(image_size, input_size), image_size)


@never_raises(QWEN3)
def parse_qwen3(text: str, image_size: Size, input_size: Size | None = None) -> Grounding:
    """Qwen3-VL JSON boxes and points, relative 0-1000."""
    return _json_family(QWEN3, text, Scale.normalized(image_size, 1000.0), image_size)


@never_raises(JSON1000)
def parse_json1000(text: str, image_size: Size, input_size: Size | None = None) -> Grounding:
    """The `json1000` prompt's answers: Qwen3-VL-style JSON, relative 0-1000."""
    return _json_family(JSON1000, text, Scale.normalized(image_size, 1000.0), image_size)


def _box_label(text: str, untagged: str, refs: list[re.Match[str]], ref_ends: list[int], start: int,
               previous_end: int) -> str:
    """The nearest <|object_ref|>/<ref> label if only tags separate it from the box, else the words before."""
    index = bisect.bisect_right(ref_ends, start) - 1
    if index >= 0 and start - ref_ends[index] <= 200:
        best = refs[index]
        between = _TOKENS_RE.sub("", text[best.end():start]).strip(" \t\n,;")
        if not between:
            return best.group(1) if best.group(1) is not None else best.group(2)
    return label_before(untagged, start, previous_end)


@never_raises(QWEN2)
def parse_qwen2(text: str, image_size: Size, input_size: Size | None = None) -> Grounding:
    """Qwen2-VL (and Qwen-VL) `(x1,y1),(x2,y2)` boxes, with or without the special tokens, relative 0-1000."""
    text = strip_thinking(text)
    scale = Scale.normalized(image_size, 1000.0)
    refs = list(_REF_RE.finditer(text))
    ref_ends = [ref.end() for ref in refs]
    untagged = _TOKENS_RE.sub(lambda m: " " * len(m.group(0)), text)
    shapes: list[Shape | None] = []
    previous_end = 0
    label = ""
    for match in _BOX_PAIRS_RE.finditer(text):
        x1, y1, x2, y2 = (float(match.group(i)) for i in range(1, 5))
        joined = previous_end and not _TOKENS_RE.sub("", text[previous_end:match.start()]).strip(" \t\n,;")
        if not joined:  # several boxes in a row share the label of the first
            label = _box_label(text, untagged, refs, ref_ends, match.start(), previous_end)
        shapes.append(make_box(scale.x(x1), scale.y(y1), scale.x(x2), scale.y(y2), label, image_size))
        previous_end = match.end()
    return finish(QWEN2, shapes, image_size)


# --- formatting (the inverse: original pixels -> each model's text), for tests and training data ----------

def _norm(value: float, full: float) -> int:
    return round(value / full * 1000)


def format_box_qwen2(box: Box, image_size: Size) -> str:
    w, h = image_size
    return (f"<|object_ref_start|>{box.label}<|object_ref_end|><|box_start|>"
            f"({_norm(box.x1, w)},{_norm(box.y1, h)}),({_norm(box.x2, w)},{_norm(box.y2, h)})<|box_end|>")


def _json_line(key: str, values: list[int], label: str) -> str:
    inner = ", ".join(str(v) for v in values)
    return f'```json\n[\n\t{{"{key}": [{inner}], "label": {json.dumps(label)}}}\n]\n```'


def format_box_qwen25(box: Box, image_size: Size, input_size: Size | None = None) -> str:
    iw, ih = input_size or image_size
    w, h = image_size
    values = [round(box.x1 * iw / w), round(box.y1 * ih / h), round(box.x2 * iw / w), round(box.y2 * ih / h)]
    return _json_line("bbox_2d", values, box.label)


def format_box_qwen3(box: Box, image_size: Size) -> str:
    w, h = image_size
    return _json_line("bbox_2d", [_norm(box.x1, w), _norm(box.y1, h), _norm(box.x2, w), _norm(box.y2, h)],
                      box.label)


def format_point_qwen3(point: Point, image_size: Size) -> str:
    w, h = image_size
    return _json_line("point_2d", [_norm(point.x, w), _norm(point.y, h)], point.label)
