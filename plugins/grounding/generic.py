"""Generic fallback: `[x1, y1, x2, y2]` lists (and JSON objects holding them) in a caller-chosen coordinate system.

Used when a profile's own format finds nothing, and for models with no documented grounding format. What the
numbers mean cannot be read from the text, so the coordinate system is an argument: "pixel" (pixels of
`input_size`, or of the original image when it is None), "norm1000" (relative 0-1000, the most common VLM
convention) or "norm1" (relative 0-1). Recognised, in order of preference:

1. JSON objects with a 4-number list under a key containing "box" (bbox, bbox_2d, box, ...) and optionally a
   2-number list under a key containing "point"; labels from label/name/... keys;
2. `[[x1, y1, x2, y2]]` and `[[x, y]]` double brackets; flat `[x1, y1, x2, y2]` lists;
3. `(x1, y1), (x2, y2)` corner pairs.
Labels of the bracket forms are the few words before them.
"""

from __future__ import annotations

import bisect
import re

from assistant.geometry import Box, Grounding, Shape

from .common import (
    NUM,
    Size,
    dict_label,
    double_bracket_groups,
    finish,
    groups_of,
    json_objects,
    label_before,
    make_box,
    make_point,
    never_raises,
    scale_for_system,
    single_bracket_groups,
    strip_thinking,
    walk_dicts,
)

FORMAT = "generic"
DESCRIPTION = "Plain [x1,y1,x2,y2] lists; coordinate system from the profile (pixel, norm1000, norm1)"
SYSTEMS = ("pixel", "norm1000", "norm1")

_PAIRS_RE = re.compile(rf"\(\s*({NUM})\s*,\s*({NUM})\s*\)\s*,?\s*\(\s*({NUM})\s*,\s*({NUM})\s*\)")


@never_raises(FORMAT)
def parse(text: str, image_size: Size, input_size: Size | None = None, system: str = "norm1000") -> Grounding:
    """Boxes and points from plain coordinate lists, read in `system`, in original-image pixels."""
    text = strip_thinking(text)
    scale = scale_for_system(system if system in SYSTEMS else "norm1000", image_size, input_size)

    def box(values: list[float], label: str) -> Box | None:
        x1, y1, x2, y2 = values
        return make_box(scale.x(x1), scale.y(y1), scale.x(x2), scale.y(y2), label, image_size)

    shapes: list[Shape | None] = []
    for value in json_objects(text):
        for item, parent in walk_dicts(value):
            label = dict_label(item, parent)
            for key, child in item.items():
                name = str(key).lower()
                if "box" in name:
                    shapes.extend(box(g, label) for g in groups_of(child, 4))
                elif "point" in name:
                    shapes.extend(make_point(scale.x(x), scale.y(y), label, image_size) for x, y in groups_of(child, 2))
    if any(shapes):
        return finish(FORMAT, shapes, image_size, {"system": system})

    previous_end = 0
    taken: list[tuple[int, int]] = []
    for start, end, groups in double_bracket_groups(text):
        label = label_before(text, start, previous_end)
        for values in groups:
            if len(values) == 4:
                shapes.append(box(values, label))
            elif len(values) == 2:
                shapes.append(make_point(scale.x(values[0]), scale.y(values[1]), label, image_size))
        taken.append((start, end))
        previous_end = end
    previous_end = 0
    taken_starts = [start for start, _ in taken]
    for start, end, values in single_bracket_groups(text):
        inside = bisect.bisect_right(taken_starts, start) - 1
        if len(values) == 4 and not (inside >= 0 and start < taken[inside][1]):
            shapes.append(box(values, label_before(text, start, previous_end)))
            previous_end = end
    if not any(shapes):
        for match in _PAIRS_RE.finditer(text):
            values = [float(match.group(i)) for i in range(1, 5)]
            shapes.append(box(values, label_before(text, match.start(), previous_end)))
            previous_end = match.end()
    return finish(FORMAT, shapes, image_size, {"system": system})


def format_box(box: Box, image_size: Size, input_size: Size | None = None, system: str = "norm1000") -> str:
    """Generic text for `box` in `system` (integers except for norm1, which gets three decimals)."""
    w, h = image_size
    if system == "norm1":
        values = [f"{box.x1 / w:.3f}", f"{box.y1 / h:.3f}", f"{box.x2 / w:.3f}", f"{box.y2 / h:.3f}"]
    elif system == "pixel":
        iw, ih = input_size or image_size
        values = [str(round(v)) for v in (box.x1 * iw / w, box.y1 * ih / h, box.x2 * iw / w, box.y2 * ih / h)]
    else:
        values = [str(round(v)) for v in (box.x1 / w * 1000, box.y1 / h * 1000, box.x2 / w * 1000, box.y2 / h * 1000)]
    return f"{box.label} [{', '.join(values)}]"
