"""Kosmos-2: `<phrase>a snowman</phrase><object><patch_index_0044><patch_index_0863></object>`, a 32x32 grid.

The image is a 32x32 grid of patches numbered row by row; an object is the pair (upper-left patch, lower-right
patch), several objects of one phrase joined by `</delimiter_of_multi_objects/>`. The mapping from patch
indices to a box is the one of transformers' Kosmos2Processor post-processing (`patch_index_to_coordinate`,
itself copied from microsoft/unilm kosmos-2/demo/decode_string.py): corners at patch centres, except when the
two patches share a row or column (or are the same), where the box covers the patches' full extent. Model card:
https://huggingface.co/microsoft/kosmos-2-patch14-224.
"""

from __future__ import annotations

import math
import re

from assistant.geometry import Box, Grounding, Shape

from .common import Size, clean_label, finish, make_box, never_raises, strip_thinking

FORMAT = "kosmos2"
DESCRIPTION = "Kosmos-2 <phrase>/<object><patch_index_N> tokens on a 32x32 grid"

GRID = 32
_ENTITY_RE = re.compile(
    r"(?:<phrase>([^<]*)</phrase>)?<object>((?:<patch_index_\d+><patch_index_\d+></delimiter_of_multi_objects/>)*"
    r"<patch_index_\d+><patch_index_\d+>)</object>"
)
_PAIR_RE = re.compile(r"<patch_index_(\d+)><patch_index_(\d+)>")


def patch_box(upper_left: int, lower_right: int, grid: int = GRID) -> tuple[float, float, float, float]:
    """Normalized (x1, y1, x2, y2) of a patch pair, exactly as transformers' `patch_index_to_coordinate`."""
    cell = 1.0 / grid
    ul_x, ul_y = upper_left % grid, upper_left // grid
    lr_x, lr_y = lower_right % grid, lower_right // grid
    if upper_left == lower_right or ul_x == lr_x or ul_y == lr_y:
        return ul_x * cell, ul_y * cell, lr_x * cell + cell, lr_y * cell + cell
    return ul_x * cell + cell / 2, ul_y * cell + cell / 2, lr_x * cell + cell / 2, lr_y * cell + cell / 2


@never_raises(FORMAT)
def parse(text: str, image_size: Size, input_size: Size | None = None) -> Grounding:
    """Boxes of every <object> in a Kosmos-2 reply, labelled with their phrase, in original-image pixels."""
    text = strip_thinking(text)
    width, height = image_size
    shapes: list[Shape | None] = []
    limit = GRID * GRID
    for match in _ENTITY_RE.finditer(text):
        label = clean_label(match.group(1) or "")
        for pair in _PAIR_RE.finditer(match.group(2)):
            upper_left, lower_right = int(pair.group(1)), int(pair.group(2))
            if upper_left >= limit or lower_right >= limit:
                continue  # not a patch of the grid: the model's vocabulary stops at 1023
            x1, y1, x2, y2 = patch_box(upper_left, lower_right)
            shapes.append(make_box(x1 * width, y1 * height, x2 * width, y2 * height, label, image_size))
    return finish(FORMAT, shapes, image_size)


def format_box(box: Box, image_size: Size) -> str:
    """Kosmos-2 text for `box` (the patches holding its corners, as transformers' coordinate_to_patch_index)."""
    width, height = image_size

    def index(x: float, y: float, upper: bool) -> int:
        if upper:  # a tiny epsilon keeps patch edges (k / 32 * size) on their own patch despite float error
            col, row = math.floor(x / width * GRID + 1e-9), math.floor(y / height * GRID + 1e-9)
        else:
            col, row = math.ceil(x / width * GRID - 1 - 1e-9), math.ceil(y / height * GRID - 1 - 1e-9)
        col, row = min(GRID - 1, max(0, col)), min(GRID - 1, max(0, row))
        return row * GRID + col

    ul = index(box.x1, box.y1, True)
    lr = index(box.x2, box.y2, False)
    return f"<phrase>{box.label}</phrase><object><patch_index_{ul:04d}><patch_index_{lr:04d}></object>"
