"""InternVL: `<ref>label</ref><box>[[x1, y1, x2, y2], ...]</box>`, relative 0-1000.

Format and scale from the InternVL docs (https://internvl.readthedocs.io/en/latest/get_started/chat_data_format.html,
"Grounding Detection Data") and the official RefCOCO evaluation
(https://github.com/OpenGVLab/InternVL/blob/main/internvl_chat/eval/refcoco/evaluate_grounding.py), which reads
the first `[[a, b, c, d]]` of a reply and divides by 1000 -- unless the four numbers sum to less than 4, in which
case they are already 0-1 (early InternVL-Chat data). This parser applies the same rule per box. Without
`<box>` tags, bare `[[x1, y1, x2, y2]]` lists are read as the evaluation does.
"""

from __future__ import annotations

import bisect
import re

from assistant.geometry import Box, Grounding, Shape

from .common import (
    NUM,
    Scale,
    Size,
    clean_label,
    double_bracket_groups,
    finish,
    label_before,
    make_box,
    never_raises,
    strip_thinking,
    to_float,
)

FORMAT = "internvl"
DESCRIPTION = "InternVL <ref>label</ref><box>[[x1,y1,x2,y2]]</box> (0-1000)"

_BOX_TAG_RE = re.compile(r"<box>([^<]{0,20000})</box>")
_REF_RE = re.compile(r"<ref>([^<]{0,1000})</ref>")
_QUAD_RE = re.compile(rf"\[\s*({NUM})\s*,\s*({NUM})\s*,\s*({NUM})\s*,\s*({NUM})\s*\]")


def _box(values: list[float], label: str, size: Size) -> Box | None:
    full = 1.0 if sum(values) < 4 else 1000.0
    scale = Scale.normalized(size, full)
    x1, y1, x2, y2 = values
    return make_box(scale.x(x1), scale.y(y1), scale.x(x2), scale.y(y2), label, size)


@never_raises(FORMAT)
def parse(text: str, image_size: Size, input_size: Size | None = None) -> Grounding:
    """Boxes of `<box>` tags labelled by their `<ref>`, else of bare `[[...]]` lists, in original pixels."""
    text = strip_thinking(text)
    shapes: list[Shape | None] = []
    refs = list(_REF_RE.finditer(text))
    ref_ends = [ref.end() for ref in refs]
    previous_end = 0
    for tag in _BOX_TAG_RE.finditer(text):
        label = ""
        nearest = bisect.bisect_right(ref_ends, tag.start()) - 1
        if nearest >= 0 and not text[ref_ends[nearest]:tag.start()].strip():
            label = clean_label(refs[nearest].group(1))
        if not label:
            label = label_before(text, tag.start(), previous_end)
        for quad in _QUAD_RE.finditer(tag.group(1)):
            values = [to_float(quad.group(i)) for i in range(1, 5)]
            if all(v is not None for v in values):
                shapes.append(_box(values, label, image_size))  # type: ignore[arg-type]
        previous_end = tag.end()
    if not any(shapes):
        for start, end, groups in double_bracket_groups(text):
            label = label_before(text, start, previous_end)
            shapes.extend(_box(g, label, image_size) for g in groups if len(g) == 4)
            previous_end = end
    return finish(FORMAT, shapes, image_size)


def format_box(box: Box, image_size: Size) -> str:
    """InternVL text for `box`."""
    w, h = image_size
    values = [round(box.x1 / w * 1000), round(box.y1 / h * 1000), round(box.x2 / w * 1000), round(box.y2 / h * 1000)]
    return f"<ref>{box.label}</ref><box>[[{', '.join(str(v) for v in values)}]]</box>"
