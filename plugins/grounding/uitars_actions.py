"""UI-TARS actions as the assistant's desktop tool calls: `click(start_box='(x,y)')` -> click {x, y} in image pixels.

The UI-TARS action space (1.0 and 1.5, and the Qwen2.5-VL computer-use prompts written in the same style):
click / left_single, left_double, right_single, hover, drag / select (start_box, end_box), type(content=...),
hotkey(key='ctrl c'), scroll(start_box, direction), wait(). `finished(...)`, `call_user()` and anything else are
not actions. A box (four numbers) acts at its centre. The uitars parsers put the result in
`Grounding.raw["actions"]` as {"tool": name, "arguments": {...}}; the agent runs them through the same tools and
the same permission policy as JSON tool calls.
"""

from __future__ import annotations

import re
from typing import Any

from .common import NUM, Scale, Size, to_float

SCROLL_NOTCHES = 5
WAIT_S = 5.0
MAX_ACTIONS = 10

_CALL = re.compile(r"\b(click|left_single|left_double|right_single|hover|mouse_move|drag|select|type|hotkey|press|"
                   r"scroll|wait)\(")
_ARGUMENT = re.compile(r"(\w+)\s*=\s*(?:'((?:[^'\\]|\\.){0,4000})'|\"((?:[^\"\\]|\\.){0,4000})\")", re.S)
_NUMBER = re.compile(NUM)
_ESCAPES = {"n": "\n", "t": "\t", "'": "'", '"': '"', "\\": "\\"}


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), text, flags=re.S)


def _arguments(text: str, start: int) -> tuple[dict[str, str], int]:
    """key='value' pairs after an opening parenthesis, up to the closing one; (pairs, end position)."""
    found: dict[str, str] = {}
    position = start
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text) or text[position] == ")":
            return found, position + 1
        match = _ARGUMENT.match(text, position)
        if match is None:
            return found, position
        value = match.group(2) if match.group(2) is not None else match.group(3) or ""
        found[match.group(1)] = _unescape(value)
        position = match.end()


def _point(value: str | None, scale: Scale, size: Size) -> tuple[int, int] | None:
    """The pixel of the image a start_box/end_box value names (a box: its centre), clamped inside the image."""
    if value is None:
        return None
    numbers = [n for n in (to_float(v) for v in _NUMBER.findall(value)) if n is not None]
    if len(numbers) == 4:
        numbers = [(numbers[0] + numbers[2]) / 2, (numbers[1] + numbers[3]) / 2]
    if len(numbers) != 2:
        return None
    x = min(max(scale.x(numbers[0]), 0.0), size[0] - 1)
    y = min(max(scale.y(numbers[1]), 0.0), size[1] - 1)
    return round(x), round(y)


def _box(arguments: dict[str, str], *names: str) -> str | None:
    return next((arguments[name] for name in names if name in arguments), None)


def action_calls(text: str, scale: Scale, size: Size) -> list[dict[str, Any]]:
    """Every UI-TARS action in `text` as {"tool", "arguments"} for the desktop tools (image pixels)."""
    calls: list[dict[str, Any]] = []
    marker = text.find("Action:")
    if marker >= 0:  # "Thought: ... Action: click(...)": the thought is prose, not actions
        text = text[marker:]
    for match in _CALL.finditer(text):
        if len(calls) >= MAX_ACTIONS:
            break
        name = match.group(1)
        arguments, _ = _arguments(text, match.end())
        start = _point(_box(arguments, "start_box", "point", "start_point"), scale, size)
        call: dict[str, Any] | None = None
        if name in ("click", "left_single", "left_double", "right_single") and start:
            call = {"x": start[0], "y": start[1]}
            if name == "left_double":
                call["clicks"] = 2
            if name == "right_single":
                call["button"] = "right"
            calls.append({"tool": "click", "arguments": call})
        elif name in ("hover", "mouse_move") and start:
            calls.append({"tool": "move", "arguments": {"x": start[0], "y": start[1]}})
        elif name in ("drag", "select") and start:
            end = _point(_box(arguments, "end_box", "end_point"), scale, size)
            if end:
                calls.append({"tool": "drag", "arguments": {"x1": start[0], "y1": start[1], "x2": end[0], "y2": end[1]}})
        elif name == "type" and "content" in arguments:
            calls.append({"tool": "type_text", "arguments": {"text": arguments["content"]}})
        elif name in ("hotkey", "press") and arguments.get("key", "").strip():
            calls.append({"tool": "press_keys", "arguments": {"keys": arguments["key"].strip()}})
        elif name == "scroll" and start:
            direction = arguments.get("direction", "down").strip().lower()
            dx = {"left": -SCROLL_NOTCHES, "right": SCROLL_NOTCHES}.get(direction, 0)
            dy = {"up": -SCROLL_NOTCHES, "down": SCROLL_NOTCHES}.get(direction, 0)
            if dx or dy:
                calls.append({"tool": "scroll", "arguments": {"x": start[0], "y": start[1], "dx": dx, "dy": dy}})
        elif name == "wait" and not arguments:
            calls.append({"tool": "wait", "arguments": {"seconds": WAIT_S}})
    return calls
