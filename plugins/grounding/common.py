"""Shared helpers for the grounding parsers: number parsing, coordinate scaling, clamping, JSON scanning, dedupe."""

from __future__ import annotations

import ast
import functools
import json
import math
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from assistant.geometry import Box, Grounding, Point, Polygon, Shape

Size = tuple[int, int]
ParseFn = Callable[..., Grounding]

NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
"""A decimal number as models write it (sign, decimals and exponent allowed)."""

MAX_TEXT = 200_000
"""Replies longer than this are cut before parsing: keeps every parser linear-ish on hostile input."""

_MAX_JSON_SPANS = 5_000
_MAX_LITERAL_SPAN = 20_000
_LITERAL_BUDGET = 200_000
_MAX_DEPTH = 40
_LABEL_KEYS = ("label", "name", "description", "text", "category", "object", "caption")


# --- numbers and sizes ------------------------------------------------------------------------

def to_float(value: Any) -> float | None:
    """A finite float from an int, float or numeric string; None for anything else (bools, NaN, inf, junk)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def numbers(values: Any, count: int) -> list[float] | None:
    """Exactly `count` finite numbers from a list/tuple, or None."""
    if not isinstance(values, (list, tuple)) or len(values) != count:
        return None
    out = [to_float(v) for v in values]
    if any(v is None for v in out):
        return None
    return out  # type: ignore[return-value]


def valid_size(size: Any) -> Size | None:
    """(width, height) as positive ints, or None when the size cannot be used for mapping."""
    try:
        width, height = int(size[0]), int(size[1])
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if width <= 0 or height <= 0:
        return None
    return width, height


def smart_resize(width: int, height: int, factor: int = 28, min_pixels: int = 3136,
                 max_pixels: int = 12_845_056) -> Size:
    """The (width, height) Qwen2-VL-style processors resize an image to (multiples of `factor`, pixel budget).

    Port of `smart_resize` from qwen_vl_utils / the UI-TARS coordinate guide; useful when the real
    processor output (`image_grid_thw` x patch size) is not at hand.
    """
    def round_by(n: float) -> int:
        return round(n / factor) * factor

    h_bar = max(factor, round_by(height))
    w_bar = max(factor, round_by(width))
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return w_bar, h_bar


class Scale:
    """Maps model coordinates (x, y) to original-image pixels by multiplying with (kx, ky)."""

    def __init__(self, kx: float, ky: float) -> None:
        self.kx = kx
        self.ky = ky

    @classmethod
    def normalized(cls, image_size: Size, full_scale: float) -> "Scale":
        """Coordinates in [0, full_scale] relative to the image (1000, 1, 100, 1024, ...)."""
        return cls(image_size[0] / full_scale, image_size[1] / full_scale)

    @classmethod
    def pixels_of(cls, image_size: Size, input_size: Size | None) -> "Scale":
        """Absolute pixels of the resized model input; identity when the input size is unknown."""
        source = valid_size(input_size) if input_size is not None else None
        if source is None:
            return cls(1.0, 1.0)
        return cls(image_size[0] / source[0], image_size[1] / source[1])

    def x(self, value: float) -> float:
        return value * self.kx

    def y(self, value: float) -> float:
        return value * self.ky


def scale_for_system(system: str, image_size: Size, input_size: Size | None) -> Scale:
    """The scale of a named coordinate system: "pixel", "norm1000", "norm1", "percent" (anything else: norm1000)."""
    if system == "pixel":
        return Scale.pixels_of(image_size, input_size)
    if system == "norm1":
        return Scale.normalized(image_size, 1.0)
    if system == "percent":
        return Scale.normalized(image_size, 100.0)
    return Scale.normalized(image_size, 1000.0)


# --- shapes ----------------------------------------------------------------------------------

def clean_label(label: Any) -> str:
    """A one-line label of at most 200 characters (models sometimes put prose or newlines there)."""
    if not isinstance(label, str):
        return ""
    return " ".join(label.split())[:200]


def _clamp(value: float, high: float) -> float:
    return min(max(value, 0.0), float(high))


def make_box(x1: float, y1: float, x2: float, y2: float, label: str, size: Size) -> Box | None:
    """A Box in original pixels: corners sorted, clamped to the image; None if it has no area left."""
    coords = [to_float(v) for v in (x1, y1, x2, y2)]
    if any(v is None for v in coords):
        return None
    ax, ay, bx, by = coords  # type: ignore[misc]
    left, right = sorted((_clamp(ax, size[0]), _clamp(bx, size[0])))
    top, bottom = sorted((_clamp(ay, size[1]), _clamp(by, size[1])))
    if right - left <= 0 or bottom - top <= 0:
        return None
    return Box(left, top, right, bottom, clean_label(label))


def make_point(x: float, y: float, label: str, size: Size) -> Point | None:
    """A Point in original pixels, clamped to the image."""
    fx, fy = to_float(x), to_float(y)
    if fx is None or fy is None:
        return None
    return Point(_clamp(fx, size[0]), _clamp(fy, size[1]), clean_label(label))


def make_polygon(points: list[tuple[float, float]], label: str, size: Size) -> Polygon | None:
    """A Polygon in original pixels, vertices clamped; None below three distinct vertices."""
    clamped: list[tuple[float, float]] = []
    for x, y in points:
        fx, fy = to_float(x), to_float(y)
        if fx is None or fy is None:
            return None
        clamped.append((_clamp(fx, size[0]), _clamp(fy, size[1])))
    if len(set(clamped)) < 3:
        return None
    return Polygon(tuple(clamped), clean_label(label))


def _shape_key(shape: Shape) -> tuple[Any, ...]:
    if isinstance(shape, Box):
        coords: tuple[float, ...] = (shape.x1, shape.y1, shape.x2, shape.y2)
    elif isinstance(shape, Point):
        coords = (shape.x, shape.y)
    else:
        coords = tuple(v for p in shape.points for v in p)
    return (shape.kind, shape.label.casefold(), tuple(round(v, 1) for v in coords))


def dedupe(shapes: list[Shape | None]) -> list[Shape]:
    """Drop Nones and repeated shapes (same kind, label and coordinates to 0.1 px), keeping the first."""
    seen: set[tuple[Any, ...]] = set()
    out: list[Shape] = []
    for shape in shapes:
        if shape is None:
            continue
        key = _shape_key(shape)
        if key not in seen:
            seen.add(key)
            out.append(shape)
    return out


def finish(format_name: str, shapes: list[Shape | None], image_size: Size,
           raw: dict[str, Any] | None = None) -> Grounding:
    """The Grounding a parser returns: deduplicated shapes plus format-specific extras."""
    return Grounding(format=format_name, shapes=dedupe(shapes), image_size=image_size, raw=raw or {})


def never_raises(format_name: str) -> Callable[[ParseFn], ParseFn]:
    """Decorator: validate the sizes, bound the text, and turn any bug into an empty Grounding.

    The wrapped function receives a clean `text`, a valid `image_size` and `input_size` (or None). A bug still
    shows up as `raw["error"]`, so tests can tell a robust parser from a silenced one.
    """
    def decorate(parse: ParseFn) -> ParseFn:
        @functools.wraps(parse)
        def wrapper(text: Any, image_size: Any, input_size: Any = None, **kwargs: Any) -> Grounding:
            size = valid_size(image_size)
            if size is None:
                return Grounding(format=format_name, image_size=(0, 0), raw={"note": "invalid image size"})
            if not isinstance(text, str):
                return Grounding(format=format_name, image_size=size)
            source = valid_size(input_size) if input_size is not None else None
            try:
                return parse(text[:MAX_TEXT], size, source, **kwargs)
            except Exception as exc:  # noqa: BLE001 - parsers must never raise; keep the bug visible in raw
                return Grounding(format=format_name, image_size=size,
                                 raw={"error": f"{type(exc).__name__}: {exc}"[:500]})
        return wrapper
    return decorate


# --- text helpers ----------------------------------------------------------------------------

def strip_thinking(text: str) -> str:
    """Remove complete <think>...</think> blocks so reasoning drafts are not parsed as answers (linear time)."""
    lower = text.lower()
    pieces: list[str] = []
    position = 0
    while (start := lower.find("<think>", position)) >= 0:
        end = lower.find("</think>", start)
        if end < 0:
            break
        pieces.append(text[position:start])
        position = end + len("</think>")
    pieces.append(text[position:])
    return " ".join(pieces)


_BOUNDARY_RE = re.compile(r"[\n.;:!?\]>)]")
_TRAILING_FILLER = frozenset(
    "at is are in on of by to the a an box boxes bbox bounding coordinates coordinate located position "
    "positions region area within with".split()
)
_NOT_A_NAME = frozenset("i it it's its there here this that these those they answer sure yes".split())


def label_before(text: str, end: int, start: int = 0, max_words: int = 6) -> str:
    """A label from the words just before a coordinate group (for formats whose labels are plain text).

    Takes the text between the previous sentence boundary (or `start`) and `end`; gives up (empty label) when
    that is longer than `max_words` words, because then it is a sentence rather than a name.
    """
    chunk = text[start:end]
    cut = 0
    for match in _BOUNDARY_RE.finditer(chunk):
        cut = match.end()
    chunk = re.sub(r"<[^<>]*>", " ", chunk[cut:])
    words = chunk.strip(" \t,\"'`*-").split()
    while words and words[-1].lower().strip(",:-") in _TRAILING_FILLER:
        words.pop()
    if not words or len(words) > max_words or words[0].lower() in _NOT_A_NAME:
        return ""
    return clean_label(" ".join(words).strip(",:-"))


# --- JSON scanning ---------------------------------------------------------------------------

def _brace_spans(text: str) -> list[tuple[int, int]]:
    """Spans of balanced {...} at any depth; quotes count only inside braces (prose has apostrophes)."""
    spans: list[tuple[int, int]] = []
    stack: list[int] = []
    quote = ""
    escaped = False
    for index, char in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
            continue
        if char in "\"'" and stack:
            quote = char
        elif char == "{":
            stack.append(index)
        elif char == "}" and stack:
            spans.append((stack.pop(), index + 1))
            if len(spans) >= _MAX_JSON_SPANS:
                break
    return spans


def _load(snippet: str, literal_budget: list[int]) -> Any:
    try:
        return json.loads(snippet)
    except (ValueError, RecursionError):
        pass
    if len(snippet) <= min(_MAX_LITERAL_SPAN, literal_budget[0]):
        literal_budget[0] -= len(snippet)
        try:  # Python-literal style ({'bbox_2d': [...]}) as some models and cookbooks write it
            with warnings.catch_warnings():  # "invalid decimal literal" and friends: model text, not our code
                warnings.simplefilter("ignore", SyntaxWarning)
                return ast.literal_eval(snippet)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None
    return None


def json_objects(text: str) -> list[Any]:
    """Every complete JSON (or Python-literal) object in `text`, outermost first, in reading order.

    Works on fenced or unfenced JSON, surrounding prose, and truncated output: an unclosed outer list or
    object is skipped but the complete objects inside it are still returned.
    """
    spans = sorted(_brace_spans(text), key=lambda s: (s[0], -s[1]))
    found: list[Any] = []
    covered_until = -1
    literal_budget = [_LITERAL_BUDGET]
    for start, end in spans:
        if start < covered_until:
            continue
        value = _load(text[start:end], literal_budget)
        if value is not None:
            found.append(value)
            covered_until = end
    return found


def walk_dicts(value: Any, parent_key: str = "", depth: int = 0) -> Iterator[tuple[dict[Any, Any], str]]:
    """Every dict nested in `value` with the key it was found under ("" at the top)."""
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, dict):
        yield value, parent_key
        for key, child in value.items():
            if isinstance(child, (dict, list)):
                yield from walk_dicts(child, key if isinstance(key, str) else "", depth + 1)
    elif isinstance(value, list):
        for child in value:
            yield from walk_dicts(child, parent_key, depth + 1)


def dict_label(item: dict[Any, Any], parent_key: str = "") -> str:
    """The label of a JSON detection: the first string among label/name/description/..., else its parent key."""
    for key in _LABEL_KEYS:
        value = item.get(key)
        if isinstance(value, str) and value.strip():
            return clean_label(value)
    return clean_label(parent_key)


def groups_of(value: Any, count: int) -> list[list[float]]:
    """`value` as one or several groups of `count` numbers: [a, b, ...] or [[a, b, ...], [...]]."""
    single = numbers(value, count)
    if single is not None:
        return [single]
    if isinstance(value, (list, tuple)):
        return [g for g in (numbers(v, count) for v in value[:1000]) if g is not None]
    return []


# --- bracketed coordinate lists --------------------------------------------------------------

_DOUBLE_RE = re.compile(r"\[\[([^\[\]]*(?:\][\s,;]*\[[^\[\]]*)*)\]\]")
_SINGLE_RE = re.compile(rf"\[\s*({NUM}(?:\s*,\s*{NUM})*)\s*\]")
_PART_SPLIT_RE = re.compile(r"\][\s,;]*\[|;")
_NUM_RE = re.compile(NUM)


def double_bracket_groups(text: str) -> Iterator[tuple[int, int, list[list[float]]]]:
    """`[[a,b,c,d]]`, `[[a,b,c,d],[e,f,g,h]]`, `[[a,b,c,d];[...]]`, `[[x,y]]`: (start, end, number groups)."""
    for match in _DOUBLE_RE.finditer(text):
        groups = []
        for part in _PART_SPLIT_RE.split(match.group(1)):
            values = [to_float(v) for v in _NUM_RE.findall(part)]
            if values and all(v is not None for v in values):
                groups.append(values)  # type: ignore[arg-type]
        yield match.start(), match.end(), groups


def single_bracket_groups(text: str) -> Iterator[tuple[int, int, list[float]]]:
    """Every flat `[n, n, ...]` list of numbers: (start, end, numbers)."""
    for match in _SINGLE_RE.finditer(text):
        values = [to_float(v) for v in _NUM_RE.findall(match.group(1))]
        if all(v is not None for v in values):
            yield match.start(), match.end(), values  # type: ignore[misc]
