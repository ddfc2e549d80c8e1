"""Gemini-style JSON: `[{"box_2d": [ymin, xmin, ymax, xmax], "label": ...}]`, y first, relative 0-1000.

Convention from the Gemini API docs (https://ai.google.dev/gemini-api/docs/image-understanding, "Object
detection": "The box_2d should be [ymin, xmin, ymax, xmax] normalized to 0-1000") and the spatial-understanding
cookbook (https://github.com/google-gemini/cookbook/blob/main/quickstarts/Spatial_understanding.ipynb), which
draws `box_2d[0]/1000*height, box_2d[1]/1000*width, ...`. Points follow the same cookbook: `{"point": [y, x],
"label": ...}`, also 0-1000. Fenced or bare JSON, prose around it and truncated lists are all accepted.
"""

from __future__ import annotations

import json

from assistant.geometry import Box, Grounding, Point, Shape

from .common import (
    Scale,
    Size,
    dict_label,
    finish,
    groups_of,
    json_objects,
    make_box,
    make_point,
    never_raises,
    strip_thinking,
    walk_dicts,
)

FORMAT = "gemini"
DESCRIPTION = 'Gemini JSON {"box_2d": [ymin,xmin,ymax,xmax]} / {"point": [y,x]} (0-1000)'


@never_raises(FORMAT)
def parse(text: str, image_size: Size, input_size: Size | None = None) -> Grounding:
    """Boxes and points from Gemini-style JSON, in original-image pixels."""
    scale = Scale.normalized(image_size, 1000.0)
    shapes: list[Shape | None] = []
    for value in json_objects(strip_thinking(text)):
        for item, parent in walk_dicts(value):
            label = dict_label(item, parent)
            for ymin, xmin, ymax, xmax in groups_of(item.get("box_2d"), 4):
                shapes.append(make_box(scale.x(xmin), scale.y(ymin), scale.x(xmax), scale.y(ymax), label, image_size))
            for y, x in groups_of(item.get("point"), 2):
                shapes.append(make_point(scale.x(x), scale.y(y), label, image_size))
    return finish(FORMAT, shapes, image_size)


def _n(value: float, full: float) -> int:
    return round(value / full * 1000)


def format_box(box: Box, image_size: Size) -> str:
    """Gemini text for `box`."""
    w, h = image_size
    return (f'```json\n[\n  {{"box_2d": [{_n(box.y1, h)}, {_n(box.x1, w)}, {_n(box.y2, h)}, {_n(box.x2, w)}], '
            f'"label": {json.dumps(box.label)}}}\n]\n```')


def format_point(point: Point, image_size: Size) -> str:
    """Gemini text for `point`."""
    w, h = image_size
    item = f'{{"point": [{_n(point.y, h)}, {_n(point.x, w)}], "label": {json.dumps(point.label)}}}'
    return f"```json\n[\n  {item}\n]\n```"
