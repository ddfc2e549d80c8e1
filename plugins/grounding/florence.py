"""Florence-2: `label<loc_x1><loc_y1><loc_x2><loc_y2>`, 1000 bins per axis, a bin means its centre.

Florence-2 quantizes x and y into 1000 bins each; a token `<loc_N>` stands for the centre of bin N, i.e.
`(N + 0.5) / 1000 * size` (Florence2PostProcessor.dequantize in transformers, and the model card:
https://huggingface.co/microsoft/Florence-2-large). Replies mix phrases and location runs:

- boxes (OD, phrase grounding, region proposal): `car<loc_53><loc_333><loc_933><loc_774>`, several boxes per
  label as one longer run (`wheel<loc_709>...<loc_772><loc_150>...<loc_773>`), unlabelled runs for proposals;
- quadrilaterals (OCR with region): `text` + 8 locs, the corners clockwise from top-left;
- polygons (segmentation): a long run of x/y pairs, or `<poly>...<sep>...</poly>` groups.

The reply does not say which task produced it, so a run is read as: `<poly>`/`<sep>` -> polygons; 8 locs that are
not two valid boxes -> a quadrilateral; 4k locs that are all valid boxes (x1<=x2, y1<=y2) -> boxes; any other
even run of 6+ -> one polygon.
"""

from __future__ import annotations

import re

from assistant.geometry import Box, Grounding, Polygon, Shape

from .common import Scale, Size, clean_label, finish, make_box, make_polygon, never_raises, strip_thinking

FORMAT = "florence2"
DESCRIPTION = "Florence-2 <loc_N> tokens (1000 bins, bin centre), boxes, quads and polygons"

_RUN_RE = re.compile(r"(?:<loc_\d{1,6}>|<poly>|</poly>|<sep>)+")
_LOC_RE = re.compile(r"<loc_(\d{1,6})>")
_NOISE_RE = re.compile(r"</?(?:s|pad|od|ocr|ground|obj|box|bbox|cap|dcap|ncap|region_cap|proposal)>")
_TAG_RE = re.compile(r"<[^<>]{0,40}>")


def _is_box(group: list[int]) -> bool:
    return group[0] <= group[2] and group[1] <= group[3]


def _quads(locs: list[int]) -> list[list[int]]:
    return [locs[i:i + 4] for i in range(0, len(locs) - 3, 4)]


def _run_shapes(run: str, label: str, scale: Scale, size: Size) -> list[Shape | None]:
    def centre_x(n: int) -> float:
        return scale.x(n + 0.5)

    def centre_y(n: int) -> float:
        return scale.y(n + 0.5)

    def polygon(locs: list[int]) -> Polygon | None:
        points = [(centre_x(locs[i]), centre_y(locs[i + 1])) for i in range(0, len(locs) - 1, 2)]
        return make_polygon(points, label, size)

    def box(group: list[int]) -> Box | None:
        return make_box(centre_x(group[0]), centre_y(group[1]), centre_x(group[2]), centre_y(group[3]), label, size)

    if "<poly>" in run or "<sep>" in run:
        pieces = re.split(r"<sep>|<poly>|</poly>", run)
        return [polygon(locs) for locs in ([int(n) for n in _LOC_RE.findall(p)] for p in pieces) if len(locs) >= 6]
    locs = [int(n) for n in _LOC_RE.findall(run)]
    groups = _quads(locs)
    if len(locs) == 8 and not all(_is_box(g) for g in groups):
        return [polygon(locs)]
    if len(locs) % 4 == 0 and all(_is_box(g) for g in groups):
        return [box(g) for g in groups]
    if len(locs) % 2 == 0 and len(locs) >= 6:
        return [polygon(locs)]
    return [box(g) for g in groups]


@never_raises(FORMAT)
def parse(text: str, image_size: Size, input_size: Size | None = None) -> Grounding:
    """Boxes, quadrilaterals and polygons from a Florence-2 reply, in original-image pixels."""
    text = _NOISE_RE.sub("", strip_thinking(text))
    scale = Scale.normalized(image_size, 1000.0)
    shapes: list[Shape | None] = []
    previous_end = 0
    for match in _RUN_RE.finditer(text):
        label = clean_label(_TAG_RE.sub(" ", text[previous_end:match.start()]))
        shapes.extend(_run_shapes(match.group(0), label, scale, image_size))
        previous_end = match.end()
    return finish(FORMAT, shapes, image_size)


def _bin(value: float, full: float) -> int:
    return min(999, max(0, int(value / full * 1000)))


def format_box(box: Box, image_size: Size) -> str:
    """Florence-2 text for `box` (the bin each coordinate falls in)."""
    w, h = image_size
    return (f"{box.label}<loc_{_bin(box.x1, w)}><loc_{_bin(box.y1, h)}>"
            f"<loc_{_bin(box.x2, w)}><loc_{_bin(box.y2, h)}>")


def format_polygon(polygon: Polygon, image_size: Size) -> str:
    """Florence-2 text for a polygon (a quadrilateral when it has four vertices, as OCR regions do)."""
    w, h = image_size
    locs = "".join(f"<loc_{_bin(x, w)}><loc_{_bin(y, h)}>" for x, y in polygon.points)
    return f"{polygon.label}{locs}"
