"""CogVLM / CogAgent: boxes `[[x1,y1,x2,y2]]` and points `[[x,y]]`, relative 0-1000 (zero-padded to 3 digits).

From the CogVLM README (https://github.com/THUDM/CogVLM#visual-grounding, "Format of coordination"): "The
bounding box coordinates in the model's input and output use the format [[x1, y1, x2, y2]], with the origin at
the top left corner ... with values as relative coordinates multiplied by 1000 (prefixed with zeros to three
digits)". Several boxes of one phrase are written `[[x1,y1,x2,y2];[x1,y1,x2,y2]]`. CogAgent answers GUI tasks
with e.g. `Grounded Operation:[combobox] Search -> TYPE: CogVLM at the box [[212,498,787,564]]`. Labels are
the few words before each group (the model writes them inline: "a dog [[...]] on a sofa [[...]]").
"""

from __future__ import annotations

from assistant.geometry import Box, Grounding, Point, Shape

from .common import (
    Scale,
    Size,
    double_bracket_groups,
    finish,
    label_before,
    make_box,
    make_point,
    never_raises,
    strip_thinking,
)

FORMAT = "cogvlm"
DESCRIPTION = "CogVLM/CogAgent [[x1,y1,x2,y2]] boxes and [[x,y]] points (0-1000)"


@never_raises(FORMAT)
def parse(text: str, image_size: Size, input_size: Size | None = None) -> Grounding:
    """Boxes and points of every `[[...]]` group, labelled by the words before it, in original pixels."""
    text = strip_thinking(text)
    scale = Scale.normalized(image_size, 1000.0)
    shapes: list[Shape | None] = []
    previous_end = 0
    for start, end, groups in double_bracket_groups(text):
        label = label_before(text, start, previous_end)
        for values in groups:
            if len(values) == 4:
                x1, y1, x2, y2 = values
                shapes.append(make_box(scale.x(x1), scale.y(y1), scale.x(x2), scale.y(y2), label, image_size))
            elif len(values) == 2:
                shapes.append(make_point(scale.x(values[0]), scale.y(values[1]), label, image_size))
        previous_end = end
    return finish(FORMAT, shapes, image_size)


def _n(value: float, full: float) -> str:
    return f"{min(999, max(0, round(value / full * 1000))):03d}"


def format_box(box: Box, image_size: Size) -> str:
    """CogVLM text for `box`."""
    w, h = image_size
    return f"{box.label} [[{_n(box.x1, w)},{_n(box.y1, h)},{_n(box.x2, w)},{_n(box.y2, h)}]]"


def format_point(point: Point, image_size: Size) -> str:
    """CogVLM text for `point`."""
    return f"{point.label} [[{_n(point.x, image_size[0])},{_n(point.y, image_size[1])}]]"
