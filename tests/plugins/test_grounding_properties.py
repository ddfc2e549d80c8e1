"""Property tests for the grounding parsers: garbage never raises, round trips, truncation, swaps, clamps, dupes."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from assistant.geometry import Box, Grounding, Point, Polygon
from assistant_plugins.grounding import (
    cogvlm,
    florence,
    gemini,
    generic,
    internvl,
    kosmos,
    molmo,
    paligemma,
    qwen,
    uitars,
)
from assistant_plugins.grounding.common import smart_resize
from assistant_plugins.grounding.registry import FORMATS

SETTINGS = settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

FRAGMENTS = [
    "<|box_start|>", "<|box_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "(", ")", ",", "[", "]", "[[",
    "]]", "{", "}", '"bbox_2d"', '"point_2d"', '"box_2d"', '"point"', '"label"', '"bbox"', ":", '"', "'", "<loc_",
    "<loc", ">", "<seg", "<patch_index_", "<phrase>", "</phrase>", "<object>", "</object>",
    "</delimiter_of_multi_objects/>", "<ref>", "</ref>", "<box>", "</box>", "<point", "<points", "</point>",
    "</points>", 'x="', 'y="', 'x1="', 'y1="', 'coords="', "alt=", "click(", "start_box=", "end_box=", "point=",
    "<point>", "<bbox>", "<poly>", "<sep>", "</poly>", ";", "\t", "\n", " ", "```json", "```", "<think>",
    "</think>", "NaN", "Infinity", "-", ".", "e", "1e999", "\\", "<s>", "</s>",
]
TOKEN = st.one_of(
    st.sampled_from(FRAGMENTS),
    st.integers(-10**7, 10**7).map(str),
    st.integers(0, 1023).map(lambda n: f"<loc_{n}>"),
    st.integers(0, 1023).map(lambda n: f"<loc{n:04d}>"),
    st.integers(0, 1100).map(lambda n: f"<patch_index_{n:04d}>"),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=4),
)
SOUP = st.lists(TOKEN, max_size=80).map("".join)
SIZES = st.tuples(st.integers(-5, 5000), st.integers(-5, 5000))
INPUT_SIZES = st.one_of(st.none(), st.tuples(st.integers(-5, 5000), st.integers(-5, 5000)))


def _coords(shape):
    if isinstance(shape, Box):
        return (shape.x1, shape.y1, shape.x2, shape.y2)
    if isinstance(shape, Point):
        return (shape.x, shape.y)
    return tuple(v for p in shape.points for v in p)


def assert_well_formed(grounding, name, size):
    assert isinstance(grounding, Grounding)
    assert grounding.format == name
    assert "error" not in grounding.raw, grounding.raw
    width, height = size
    for shape in grounding.shapes:
        values = _coords(shape)
        assert all(math.isfinite(v) for v in values)
        xs, ys = values[0::2], values[1::2]
        assert all(0 <= x <= width for x in xs) and all(0 <= y <= height for y in ys), shape
        if isinstance(shape, Box):
            assert shape.x1 < shape.x2 and shape.y1 < shape.y2
        assert "\n" not in shape.label and len(shape.label) <= 200


@pytest.mark.parametrize("name", sorted(FORMATS))
@SETTINGS
@given(text=st.one_of(st.text(max_size=300), SOUP), size=SIZES, input_size=INPUT_SIZES)
def test_garbage_never_raises(name, text, size, input_size):
    grounding = FORMATS[name].parse(text, size, input_size)
    if size[0] <= 0 or size[1] <= 0:
        assert grounding.shapes == []
        return
    assert_well_formed(grounding, name, size)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_non_text_and_odd_sizes_never_raise(name):
    parse = FORMATS[name].parse
    for text, size in [(None, (10, 10)), (b"[[1,2,3,4]]", (10, 10)), ("[[1,2,3,4]]", None), ("[[1,2,3,4]]", "10x10"),
                       ("[[1,2,3,4]]", (10,)), ("[[1,2,3,4]]", (float("nan"), 3)), ("[[1,2,3,4]]", (10**30, 10**30))]:
        grounding = parse(text, size, None)
        assert isinstance(grounding, Grounding) and "error" not in grounding.raw


# --- round trips: format -> parse -> the same shape within a pixel ------------------------------------------

LABELS = st.sampled_from(["cat", "red car", "Popup close button", "dog", "the dog"])


@st.composite
def boxes(draw, max_side=1000, min_gap=4):
    width = draw(st.integers(16, max_side))
    height = draw(st.integers(16, max_side))
    x1 = draw(st.floats(0, width - min_gap))
    y1 = draw(st.floats(0, height - min_gap))
    x2 = draw(st.floats(x1 + min_gap, width))
    y2 = draw(st.floats(y1 + min_gap, height))
    return (width, height), Box(x1, y1, x2, y2, draw(LABELS))


@st.composite
def points(draw, max_side=1000):
    width = draw(st.integers(16, max_side))
    height = draw(st.integers(16, max_side))
    return (width, height), Point(draw(st.floats(0, width)), draw(st.floats(0, height)), draw(LABELS))


def assert_same(parsed, original, tol=1.0, check_label=True):
    assert len(parsed) == 1, parsed
    shape = parsed[0]
    assert type(shape) is type(original)
    assert all(abs(a - b) <= tol for a, b in zip(_coords(shape), _coords(original))), (shape, original)
    if check_label:
        assert shape.label == original.label


BOX_ROUND_TRIPS = {
    "qwen2vl": (qwen.format_box_qwen2, qwen.parse_qwen2),
    "qwen3vl": (qwen.format_box_qwen3, qwen.parse_qwen3),
    "json1000": (qwen.format_box_qwen3, qwen.parse_json1000),
    "florence2": (florence.format_box, florence.parse),
    "paligemma": (paligemma.format_box, paligemma.parse),
    "internvl": (internvl.format_box, internvl.parse),
    "cogvlm": (cogvlm.format_box, cogvlm.parse),
    "gemini": (gemini.format_box, gemini.parse),
    "generic": (generic.format_box, generic.parse),
}


@pytest.mark.parametrize("name", sorted(BOX_ROUND_TRIPS))
@SETTINGS
@given(case=boxes())
def test_box_round_trip(name, case):
    size, box = case
    encode, parse = BOX_ROUND_TRIPS[name]
    assert_same(parse(encode(box, size), size).shapes, box)


@SETTINGS
@given(case=boxes(), scale=st.floats(0.5, 2.0))
def test_qwen25_round_trip_through_the_resized_input(case, scale):
    size, box = case
    input_size = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
    tol = 0.5 * max(size[0] / input_size[0], size[1] / input_size[1]) + 1e-9  # half an input pixel
    parsed = qwen.parse_qwen25(qwen.format_box_qwen25(box, size, input_size), size, input_size).shapes
    assert_same(parsed, box, tol=tol)


@pytest.mark.parametrize("system", ["pixel", "norm1000", "norm1"])
@SETTINGS
@given(case=boxes())
def test_generic_round_trip_in_every_system(system, case):
    size, box = case
    text = generic.format_box(box, size, system=system)
    assert_same(generic.parse(text, size, system=system).shapes, box)


POINT_ROUND_TRIPS = {
    "qwen3vl": (qwen.format_point_qwen3, qwen.parse_qwen3, True),
    "cogvlm": (cogvlm.format_point, cogvlm.parse, True),
    "molmo": (molmo.format_point, molmo.parse, True),
    "gemini": (gemini.format_point, gemini.parse, True),
    "uitars1": (uitars.format_point_v1, uitars.parse_v1, False),
}


@pytest.mark.parametrize("name", sorted(POINT_ROUND_TRIPS))
@SETTINGS
@given(case=points())
def test_point_round_trip(name, case):
    size, point = case
    encode, parse, labelled = POINT_ROUND_TRIPS[name]
    assert_same(parse(encode(point, size), size).shapes, point, check_label=labelled)


@SETTINGS
@given(case=points(max_side=4000))
def test_uitars15_round_trip_through_smart_resize(case):
    size, point = case
    new_width, new_height = smart_resize(*size, 28, uitars.UITARS_MIN_PIXELS, uitars.UITARS_MAX_PIXELS)
    tol = 0.5 * max(size[0] / new_width, size[1] / new_height) + 1e-9
    assert_same(uitars.parse(uitars.format_point(point, size), size).shapes, point, tol=tol, check_label=False)


@SETTINGS
@given(case=points(), more=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), max_size=5))
def test_molmo2_points_round_trip(case, more):
    size, first = case
    pts = [first] + [Point(fx * size[0], fy * size[1], first.label) for fx, fy in more]
    parsed = molmo.parse(molmo.format_points_molmo2(pts, size, first.label), size).shapes
    # Molmo2 writes 0-1000 integers; the parser drops repeats that land within 0.1 px of each other.
    quantised = {(round(p.x / size[0] * 1000), round(p.y / size[1] * 1000)) for p in pts}
    in_pixels = {(round(x / 1000 * size[0], 1), round(y / 1000 * size[1], 1)) for x, y in quantised}
    assert len(parsed) == len(in_pixels)
    for shape in parsed:
        assert any(abs(shape.x - p.x) <= 1 and abs(shape.y - p.y) <= 1 for p in pts)


@SETTINGS
@given(size=st.tuples(st.integers(16, 1000), st.integers(16, 1000)),
       corners=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=4, max_size=4))
def test_florence_quad_round_trip(size, corners):
    w, h = size
    # an OCR region: top-left, top-right, bottom-right, bottom-left, with x and y spread enough to be a quad
    (ax, ay), (bx, by), (cx, cy), (dx, dy) = corners
    left, right = sorted((ax, bx))
    top, bottom = sorted((ay, cy))
    assume(right - left > 0.05 and bottom - top > 0.05)
    quad = Polygon(((left * w, top * h), (right * w, top * h), (right * w, bottom * h), (left * w, bottom * h)), "txt")
    assert_same(florence.parse(florence.format_polygon(quad, size), size).shapes, quad)


@SETTINGS
@given(size=st.tuples(st.integers(32, 2000), st.integers(32, 2000)),
       ul=st.tuples(st.integers(0, 31), st.integers(0, 31)), extent=st.tuples(st.integers(0, 31), st.integers(0, 31)))
def test_kosmos_round_trip_on_the_grid(size, ul, extent):
    col, row = ul
    lr_col, lr_row = min(31, col + extent[0]), min(31, row + extent[1])
    text = (f"<phrase>cat</phrase><object><patch_index_{row * 32 + col:04d}>"
            f"<patch_index_{lr_row * 32 + lr_col:04d}></object>")
    first = kosmos.parse(text, size).shapes
    assert len(first) == 1
    assert_same(kosmos.parse(kosmos.format_box(first[0], size), size).shapes, first[0], tol=1e-6)


# --- truncated JSON keeps the complete objects ---------------------------------------------------------------

JSON_FORMATS = {"qwen2.5vl": "bbox_2d", "qwen3vl": "bbox_2d", "json1000": "bbox_2d", "gemini": "box_2d",
                "generic": "bbox"}


@pytest.mark.parametrize("name", sorted(JSON_FORMATS))
@SETTINGS
@given(values=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 400), st.integers(1, 500), st.integers(1, 500)),
                       min_size=1, max_size=6), cut=st.floats(0, 1, exclude_max=True), fenced=st.booleans())
def test_truncated_json_keeps_complete_objects(name, values, cut, fenced):
    key = JSON_FORMATS[name]
    items = [{key: [a, b, a + c, b + d], "label": f"thing {i}"} for i, (a, b, c, d) in enumerate(values)]
    full = json.dumps(items, indent=2)
    if fenced:
        full = "Here you go:\n```json\n" + full + "\n```"
    last = full.rindex("{")
    end = full.index("}", last) + 1
    truncated = full[:last + 1 + int(cut * (end - last - 2))]
    parse = FORMATS[name].parse
    complete = parse(full, (1000, 1000)).shapes
    assert len(complete) == len(values)  # labels differ, so equal boxes are not duplicates
    kept = [s for s in complete if s.label != f"thing {len(values) - 1}"]
    got = parse(truncated, (1000, 1000)).shapes
    if name == "generic":  # it also reads a complete [x1, y1, x2, y2] list left in the cut object: a bonus
        assert got[:len(kept)] == kept and len(got) <= len(kept) + 1
    else:
        assert got == kept


def test_truncated_token_formats_keep_complete_objects():
    florence_text = "car<loc_53><loc_333><loc_933><loc_774>wheel<loc_709><loc_576><loc_8"
    assert [s.label for s in florence.parse(florence_text, (640, 480)).shapes] == ["car"]
    pali = "<loc0100><loc0100><loc0500><loc0500> cat ; <loc0200><loc02"
    assert [s.label for s in paligemma.parse(pali, (640, 480)).shapes] == ["cat"]
    nested = '{"objects": [{"bbox_2d": [1, 2, 30, 40], "label": "a"}, {"bbox_2d": [5, 6, 70'
    assert [s.label for s in qwen.parse_qwen3(nested, (1000, 1000)).shapes] == ["a"]


# --- swapped corners, clamping, duplicates ---------------------------------------------------------------------

SWAPPED = {
    # name: (text with corners swapped, the same box written the right way)
    "qwen2vl": ("<|box_start|>(300,400),(100,200)<|box_end|>", "<|box_start|>(100,200),(300,400)<|box_end|>"),
    "qwen2.5vl": ('{"bbox_2d": [300, 200, 100, 400]}', '{"bbox_2d": [100, 200, 300, 400]}'),
    "qwen3vl": ('{"bbox_2d": [100, 400, 300, 200]}', '{"bbox_2d": [100, 200, 300, 400]}'),
    "florence2": ("x<loc_300><loc_400><loc_100><loc_200>", "x<loc_100><loc_200><loc_300><loc_400>"),
    "paligemma": ("<loc0400><loc0300><loc0200><loc0100> x", "<loc0200><loc0100><loc0400><loc0300> x"),
    "internvl": ("<box>[[300, 400, 100, 200]]</box>", "<box>[[100, 200, 300, 400]]</box>"),
    "cogvlm": ("[[300,400,100,200]]", "[[100,200,300,400]]"),
    "gemini": ('{"box_2d": [400, 300, 200, 100]}', '{"box_2d": [200, 100, 400, 300]}'),
    "generic": ("[300, 400, 100, 200]", "[100, 200, 300, 400]"),
}


@pytest.mark.parametrize("name", sorted(SWAPPED))
def test_swapped_corners_give_the_same_box(name):
    swapped, right = SWAPPED[name]
    parse = FORMATS[name].parse
    got, want = parse(swapped, (1000, 800)).shapes, parse(right, (1000, 800)).shapes
    assert len(want) == 1 and got == want


@pytest.mark.parametrize("name", ["qwen2vl", "qwen3vl", "json1000", "internvl", "cogvlm", "gemini", "generic",
                                  "qwen2.5vl"])
@SETTINGS
@given(values=st.lists(st.integers(-5000, 5000), min_size=4, max_size=4), size=st.tuples(st.integers(1, 3000),
                                                                                          st.integers(1, 3000)))
def test_values_outside_the_range_are_clamped(name, values, size):
    a, b, c, d = values
    texts = {
        "qwen2vl": f"x({a},{b}),({c},{d})", "internvl": f"<box>[[{a}, {b}, {c}, {d}]]</box>",
        "cogvlm": f"[[{a},{b},{c},{d}]]", "generic": f"[{a}, {b}, {c}, {d}]",
        "gemini": f'{{"box_2d": [{a}, {b}, {c}, {d}]}}',
    }
    text = texts.get(name, f'{{"bbox_2d": [{a}, {b}, {c}, {d}]}}')
    grounding = FORMATS[name].parse(text, size, None)
    assert_well_formed(grounding, name, size)
    assert len(grounding.shapes) <= 1


def test_clamping_keeps_the_part_inside_and_drops_boxes_fully_outside():
    grounding = qwen.parse_qwen3('[{"bbox_2d": [-50, 500, 1200, 1500]}, {"bbox_2d": [1100, 0, 1300, 500]}]',
                                 (200, 100))
    assert grounding.shapes == [Box(0, 50, 200, 100, "")]


def test_duplicates_are_dropped_but_distinct_labels_kept():
    text = ('[{"bbox_2d": [1, 2, 30, 40], "label": "a"}, {"bbox_2d": [1, 2, 30, 40], "label": "a"}, '
            '{"bbox_2d": [1, 2, 30, 40], "label": "b"}]')
    assert [s.label for s in qwen.parse_qwen3(text, (1000, 1000)).shapes] == ["a", "b"]
    twice = "wheel<loc_709><loc_576><loc_865><loc_772><loc_709><loc_576><loc_865><loc_772>"
    assert len(florence.parse(twice, (640, 480)).shapes) == 1


def test_prose_and_reasoning_are_ignored():
    text = ("<think>Maybe it is at [10, 10, 20, 20]? No.</think>Sure! The cat is here:\n```json\n"
            '[{"bbox_2d": [100, 200, 300, 400], "label": "cat"}]\n```\nLet me know if you need more.')
    assert qwen.parse_qwen3(text, (1000, 1000)).shapes == [Box(100, 200, 300, 400, "cat")]
    assert generic.parse("I could not find it, sorry (it may be hidden).", (1000, 1000)).shapes == []


HOSTILE = [
    "{" * 20000 + "}" * 20000, "[" * 20000, "<think>" * 5000, '<point x="1" y="2">' * 2000, "<ref>" * 8000,
    "<box>" * 8000, "<|object_ref_start|>" * 2000, 'click(start_box="' * 2000, "[1,2,3,4] " * 3000,
    "[[1,2,3,4]]" * 3000, "{'a': " * 5000, "<loc_1>" * 5000, "<loc0001>" * 4000, "(1,2),(3,4)" * 3000,
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_long_hostile_replies_parse_cleanly_in_every_format(text):
    """Unclosed tags and deep nesting (the shapes of runaway generations) must not break or stall a parser."""
    for name, fmt in FORMATS.items():
        assert_well_formed(fmt.parse(text, (1000, 1000), None), name, (1000, 1000))
