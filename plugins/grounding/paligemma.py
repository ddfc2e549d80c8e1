"""PaliGemma: `<locY1><locX1><locY2><locX2> label ; ...` with 1024 bins per axis, y before x.

Each `<locNNNN>` is N/1024 of the image height (y) or width (x), in the order ymin, xmin, ymax, xmax; a
segmentation answer adds 16 `<segNNN>` codewords (a VQ-VAE mask code) after the four locations. Detections are
separated by " ; ". Decoding follows Google's reference parser `extract_objs`
(https://huggingface.co/spaces/big-vision/paligemma, paligemma_parse.py: `int(x) / 1024` times the size) and
the docs (https://ai.google.dev/gemma/docs/paligemma/prompt-system-instructions). The `<seg>` codes are kept, as
data, in `raw["segments"]` (one entry per detection that has them: index into shapes, label, 16 codes).
"""

from __future__ import annotations

import re

from assistant.geometry import Box, Grounding, Shape

from .common import Scale, Size, clean_label, finish, make_box, never_raises, strip_thinking

FORMAT = "paligemma"
DESCRIPTION = "PaliGemma <locNNNN> tokens (y first, 1024 bins), optional <segNNN> mask codes"

_DETECT_RE = re.compile(
    r"<loc(\d{4})>\s*<loc(\d{4})>\s*<loc(\d{4})>\s*<loc(\d{4})>\s*"
    r"((?:<seg\d{3}>\s*){16})?"
    r"([^;<>\n]*)"
)
_SEG_RE = re.compile(r"<seg(\d{3})>")


@never_raises(FORMAT)
def parse(text: str, image_size: Size, input_size: Size | None = None) -> Grounding:
    """Boxes (and raw mask codes) from a PaliGemma detect/segment reply, in original-image pixels."""
    text = strip_thinking(text)
    scale = Scale.normalized(image_size, 1024.0)
    shapes: list[Shape | None] = []
    with_codes: list[tuple[Box, list[int]]] = []
    for match in _DETECT_RE.finditer(text):
        y1, x1, y2, x2 = (int(match.group(i)) for i in range(1, 5))
        box = make_box(scale.x(x1), scale.y(y1), scale.x(x2), scale.y(y2), clean_label(match.group(6)), image_size)
        if match.group(5) and box is not None:
            with_codes.append((box, [int(c) for c in _SEG_RE.findall(match.group(5))]))
        shapes.append(box)
    grounding = finish(FORMAT, shapes, image_size)
    segments = [{"shape": index, "label": shape.label, "codes": codes}
                for index, shape in enumerate(grounding.shapes) for box, codes in with_codes if shape is box]
    if segments:
        grounding.raw["segments"] = segments
    return grounding


def _bin(value: float, full: float) -> int:
    return min(1023, max(0, round(value / full * 1024)))


def format_box(box: Box, image_size: Size, segment: list[int] | None = None) -> str:
    """PaliGemma text for `box` (ymin, xmin, ymax, xmax), optionally with 16 mask codes."""
    w, h = image_size
    locs = (f"<loc{_bin(box.y1, h):04d}><loc{_bin(box.x1, w):04d}>"
            f"<loc{_bin(box.y2, h):04d}><loc{_bin(box.x2, w):04d}>")
    seg = (" " + "".join(f"<seg{c:03d}>" for c in segment)) if segment else ""
    return f"{locs}{seg} {box.label}"
