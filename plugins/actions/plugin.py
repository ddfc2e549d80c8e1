"""Built-in plugin: the desktop action tools (click, move, drag, scroll, type_text, press_keys, wait).

Coordinates are pixels of the latest screenshot of the chat (the `screenshot` tool's capture, or the one an
action returned), mapped once to virtual-desktop pixels through that capture's geometry (assistant.screenmap):
monitor offsets, HiDPI scale, and, with `[agent] action_coordinates = "model"`, the processor's resize or the
model's normalized system. Outside the agent loop (a plugin calling `tool.run`) they are desktop pixels.

Every action tool declares side effects, so the permission policy asks the user before each call, unless the user
answered "always" for a pointer action in that application window (Tool.allow_scope: the window under the target,
plugins.actions.windows); typing and keys ask every time. After approval
the rails in `safety` apply: the corner failsafe, pacing, the per-request limit, the focus check for keys, and
a line in the action log. Each action returns a new screenshot, so the model sees what happened.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from assistant import hookimpl
from assistant.errors import AssistantError
from assistant.hooktypes import ScreenshotRequest, Tool, ToolResult
from assistant.screenmap import ScreenMap, capture_of, check_on_screen, model_to_image, remember_capture

from . import safety
from .keys import parse_combination
from .xdotool import BUTTONS, XdotoolInput, input_problem

if TYPE_CHECKING:
    from PIL.Image import Image

    from assistant.agent import ToolContext
    from assistant.hooktypes import Screenshot

MAX_TEXT = 2000
MAX_CLICKS = 3
MAX_SCROLL = 25
MAX_WAIT_S = 10.0
SETTLE_S = 0.25
"""Pause after an action before the new screenshot (the application redraws)."""
SEARCH_IMAGES = 8
"""How many of the chat's latest images are looked at to find the latest screenshot."""


def _context() -> "ToolContext | None":
    from assistant.agent import optional_context

    return optional_context()


def _plugins(context: "ToolContext | None") -> Any:
    if context is not None:
        return context.plugins
    from assistant.plugins import get_plugin_manager

    return get_plugin_manager()


# --- where the coordinates point -------------------------------------------------------------------------------------


@dataclass
class Frame:
    """The coordinate frame of one call: the screenshot x, y refer to (None: desktop pixels, outside a chat)."""

    screen: ScreenMap | None
    monitors: tuple[tuple[int, int, int, int], ...]
    image_number: int | None = None
    image: "Image | None" = None
    to_image: Callable[[float, float], tuple[float, float]] = lambda x, y: (x, y)

    def desktop(self, x: float, y: float) -> tuple[int, int]:
        """A point of the call -> a desktop pixel on a monitor; AssistantError (refused) when it is not."""
        if self.screen is None:
            if isinstance(x, bool) or isinstance(y, bool):
                raise AssistantError("x and y must be numbers")
            point = (int(round(x)), int(round(y)))
            check_on_screen(*point, self.monitors)
            return point
        ix, iy = self.to_image(x, y)
        return self.screen.to_desktop(ix, iy)

    def describe(self, x: float, y: float, desktop: tuple[int, int]) -> str:
        if self.screen is None:
            return f"desktop ({desktop[0]}, {desktop[1]})"
        return f"({x:g}, {y:g}) of image {self.image_number} = desktop ({desktop[0]}, {desktop[1]})"


def _latest_capture(context: "ToolContext") -> tuple[ScreenMap, int, "Image", Any]:
    images = context.images()
    for number in range(len(images), max(0, len(images) - SEARCH_IMAGES), -1):
        part = images[number - 1]
        image = context.open_image(part)
        found = capture_of(image)
        if found is not None:
            return found, number, image, part
    raise AssistantError(
        "no screenshot to act on: call the screenshot tool first, then give x and y in pixels of that screenshot"
    )


def _frame(context: "ToolContext | None", settings: safety.ActionSettings) -> Frame:
    if context is None:
        shot = _capture(None, ScreenshotRequest())
        monitors = tuple((int(m["left"]), int(m["top"]), int(m["width"]), int(m["height"])) for m in shot.monitors)
        return Frame(None, monitors or ((shot.left, shot.top, shot.width, shot.height),))
    screen, number, image, part = _latest_capture(context)
    system = settings.coordinates
    input_size = None
    if system == "model":
        assistant = context.chat.assistant
        system = assistant.profile.grounding.coordinates
        if system == "pixel":
            from assistant.grounding import model_input_size

            input_size = model_input_size(assistant, part)
    size = screen.image_size

    def to_image(x: float, y: float) -> tuple[float, float]:
        for name, value in (("x", x), ("y", y)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise AssistantError(f"{name} = {value!r} is not a number; give pixels of the screenshot")
        return model_to_image(x, y, system, size, input_size)

    return Frame(screen, screen.monitors or (screen.area,), number, image, to_image)


# --- capturing ------------------------------------------------------------------------------------------------------


def _capture(context: "ToolContext | None", request: ScreenshotRequest) -> "Screenshot":
    shot = _plugins(context).call_first("capture_screenshot", request=request)
    if shot is None:
        raise AssistantError("no screenshot plugin is active; enable the built-in `screenshot` plugin")
    remember_capture(shot)
    return shot


def _same_view(frame: Frame) -> ScreenshotRequest:
    """The capture request that shows what the frame's screenshot showed (the same monitor, region or desktop)."""
    screen = frame.screen
    if screen is None:
        return ScreenshotRequest()
    if screen.request_monitor is not None:
        return ScreenshotRequest(monitor=screen.request_monitor)
    left, top, width, height = screen.area
    if screen.monitors:
        right = max(m[0] + m[2] for m in screen.monitors)
        bottom = max(m[1] + m[3] for m in screen.monitors)
        if (left, top) == (min(m[0] for m in screen.monitors), min(m[1] for m in screen.monitors)) and (
            left + width, top + height) == (right, bottom):
            return ScreenshotRequest()
    return ScreenshotRequest(region=(left, top, width, height))


def _preview(frame: Frame, points: list[tuple[float, float]], tool: str) -> str:
    """Write the screenshot with the target(s) marked (for the confirmation and dry runs): the path, or "" when
    there is nothing to draw (no screenshot: desktop pixels outside a chat; keyboard actions)."""
    if frame.image is None or not points:
        return ""
    from PIL import ImageDraw

    from assistant.paths import user_paths

    image = frame.image.convert("RGB")
    draw = ImageDraw.Draw(image)
    for x, y in (frame.to_image(px, py) for px, py in points):
        draw.line((x - 12, y, x + 12, y), fill=(255, 0, 0), width=2)
        draw.line((x, y - 12, x, y + 12), fill=(255, 0, 0), width=2)
        draw.ellipse((x - 6, y - 6, x + 6, y + 6), outline=(255, 0, 0), width=2)
    folder = user_paths().data / "actions"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"preview-{time.strftime('%Y%m%d-%H%M%S')}-{time.monotonic_ns() % 1_000_000:06d}-{tool}.png"
    image.save(path)
    return str(path)


# --- running one action ---------------------------------------------------------------------------------------------


def act(
    tool: str,
    arguments: dict[str, Any],
    points: list[tuple[float, float]],
    perform: Callable[[XdotoolInput, list[tuple[int, int]]], None],
    done: str,
    keyboard: bool = False,
) -> ToolResult:
    """Map `points`, pass the rails, run `perform(driver, desktop_points)` (unless dry run), take a new screenshot."""
    context = _context()
    settings = safety.load_settings()

    def refuse(message: str) -> AssistantError:
        safety.record(tool, arguments, "refused", reason=message)
        return AssistantError(message)

    if context is not None:
        count = safety.actions_this_request(context.chat.conversation.messages)
        if count > settings.max_actions:
            raise refuse(
                f"refused: this request already made {settings.max_actions} desktop actions ([agent] max_actions); "
                "answer with what you have, the user can ask again"
            )
    if not settings.dry_run:
        problem = input_problem()
        if problem:
            raise refuse(problem)
    frame = _frame(context, settings)
    try:
        desktop = [frame.desktop(x, y) for x, y in points]
    except AssistantError as error:
        raise refuse(str(error)) from None
    where = ", ".join(frame.describe(x, y, d) for (x, y), d in zip(points, desktop))
    driver: XdotoolInput | None = None
    if not settings.dry_run:
        driver = XdotoolInput()
        if settings.failsafe:
            corner = safety.corner_of(*driver.pointer(), frame.monitors)
            if corner is not None:
                error = refuse(safety.failsafe_message(corner))
                if context is not None:
                    context.stop.set()  # last, so the call ends with this message rather than "stopped"
                raise error
        if keyboard:
            own = os.environ.get("WINDOWID", "").strip()
            if own.isdigit() and int(own) in driver.focused_windows():
                raise refuse(
                    "refused: the assistant's own terminal has the keyboard focus, so the keys would go to the "
                    "assistant; click the target window first"
                )
    if not safety.pace(settings.delay_s, (lambda: context.cancelled) if context is not None else None):
        raise refuse(f"{tool} was not run: the user stopped")
    if driver is not None and context is not None and context.allowed_window:
        from .windows import window_at

        now = {window_at(*point) for point in desktop}
        if now != {context.allowed_window}:
            raise refuse(
                f"refused: {tool} was allowed in the window {context.allowed_window!r} by your always rule, but the "
                f"window under the target is now {', '.join(repr(title) for title in sorted(now))}; take a new "
                "screenshot and try again"
            )
    if settings.dry_run:
        preview = _preview(frame, points, tool)
        safety.record(tool, arguments, "dry run", desktop=desktop, preview=preview)
        summary = f"Dry run: would have {done}" + (f" at {where}" if where else "") + "; nothing was sent."
        if preview:
            summary += f" Preview: {preview}."
        window = ""
    else:
        assert driver is not None
        perform(driver, desktop)
        window = driver.window_name()
        safety.record(tool, arguments, "done", desktop=desktop, window=window)
        summary = f"Done: {done}" + (f" at {where}" if where else "") + (f" in window {window!r}" if window else "") + "."
        time.sleep(SETTLE_S)
    shot = _capture(context, _same_view(frame))
    number = f"; it is image {len(context.images()) + 1} of this chat" if context is not None else ""
    summary += f" New screenshot: {shot.image.width}x{shot.image.height} pixels{number}."
    return ToolResult(text=summary, images=[shot.image])


# --- what a call will do (shown when the user is asked) ---------------------------------------------------------------

MAX_PREVIEWS = 50
"""Preview images kept in the data folder's actions/ (older ones are removed)."""


def _prune_previews() -> None:
    from assistant.paths import user_paths

    folder = user_paths().data / "actions"
    try:
        previews = sorted(folder.glob("preview-*.png"), key=lambda path: path.stat().st_mtime)
        for old in previews[:-MAX_PREVIEWS]:
            old.unlink()
    except OSError:
        pass


def pointer_preview(tool: str, points: list[tuple[float, float]], what: str) -> str:
    """'click left at (60, 120) of image 3 = desktop (700, 120), monitor 2; preview: PATH' (or why it is refused)."""
    from assistant.screenmap import on_monitor

    context = _context()
    try:
        frame = _frame(context, safety.load_settings())
        desktop = [frame.desktop(x, y) for x, y in points]
    except AssistantError as error:
        return f"will be refused: {error}"
    where = " to ".join(
        f"{frame.describe(x, y, d)} on monitor {on_monitor(*d, frame.monitors)}" for (x, y), d in zip(points, desktop)
    )
    path = _preview(frame, points, tool)
    _prune_previews()
    return f"{what} at {where}" + (f"; preview with the target marked: {path}" if path else "")


def pointer_window(points: list[tuple[float, float]]) -> str:
    """The title of the application window under the target (Tool.allow_scope of the pointer actions): what the X
    server names the window at that desktop pixel, never text from the model or the screenshot. "" when unknown,
    off screen, or (drag) when the two ends are in different windows: then "always" is not offered."""
    from .windows import window_at

    if input_problem() is not None:
        return ""
    try:
        frame = _frame(_context(), safety.load_settings())
        titles = {window_at(*frame.desktop(x, y)) for x, y in points}
    except AssistantError:
        return ""
    return titles.pop() if len(titles) == 1 else ""


def keyboard_preview(what: str) -> str:
    """What keys or text go where: the title of the window that has the keyboard focus, when known."""
    title = ""
    if input_problem() is None:
        try:
            driver = XdotoolInput(timeout_s=5.0)
            focused = sorted(driver.focused_windows())
            title = driver.window_name(focused[-1]) if focused else ""
        except AssistantError:
            title = ""
    return f"{what} in " + (f"the focused window {title!r}" if title else "the window that has the keyboard focus")


def _keys_preview(keys: str) -> str:
    return keyboard_preview(f"presses {'+'.join(parse_combination(keys))}")


# --- the tools -------------------------------------------------------------------------------------------------------


def _int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise AssistantError(f"{name} must be a whole number from {low} to {high}, not {value!r}")
    return value


def click(x: float, y: float, button: str = "left", clicks: int = 1) -> ToolResult:
    """Click (1-3 times) with a mouse button at a point of the latest screenshot."""
    if button not in BUTTONS:
        raise AssistantError(f"button must be left, right or middle, not {button!r}")
    clicks = _int(clicks, "clicks", 1, MAX_CLICKS)
    what = {1: "clicked", 2: "double-clicked", 3: "triple-clicked"}[clicks]
    return act(
        "click", {"x": x, "y": y, "button": button, "clicks": clicks}, [(x, y)],
        lambda driver, points: driver.click(*points[0], button=button, clicks=clicks),
        f"{what} {button}",
    )


def move(x: float, y: float) -> ToolResult:
    """Move the mouse pointer to a point of the latest screenshot (hover)."""
    return act("move", {"x": x, "y": y}, [(x, y)], lambda driver, points: driver.move(*points[0]), "moved the pointer")


def drag(x1: float, y1: float, x2: float, y2: float) -> ToolResult:
    """Press the left button at (x1, y1), move to (x2, y2) and release."""
    return act(
        "drag", {"x1": x1, "y1": y1, "x2": x2, "y2": y2}, [(x1, y1), (x2, y2)],
        lambda driver, points: driver.drag(points[0], points[1]),
        "dragged",
    )


def scroll(x: float, y: float, dx: int = 0, dy: int = 0) -> ToolResult:
    """Scroll the mouse wheel at a point: dy > 0 down, dy < 0 up, dx > 0 right, dx < 0 left (notches)."""
    dx = _int(dx, "dx", -MAX_SCROLL, MAX_SCROLL)
    dy = _int(dy, "dy", -MAX_SCROLL, MAX_SCROLL)
    if not dx and not dy:
        raise AssistantError("give dy (down > 0, up < 0) or dx (right > 0, left < 0) to scroll")
    return act(
        "scroll", {"x": x, "y": y, "dx": dx, "dy": dy}, [(x, y)],
        lambda driver, points: driver.scroll(*points[0], dx, dy),
        f"scrolled dx={dx} dy={dy}",
    )


def type_text(text: str) -> ToolResult:
    """Type text into the window that has the keyboard focus."""
    if not isinstance(text, str) or not text:
        raise AssistantError("give the text to type")
    if len(text) > MAX_TEXT:
        raise AssistantError(f"the text has {len(text)} characters; type at most {MAX_TEXT} in one call")
    if any(ord(c) < 32 and c not in "\n\t" for c in text):
        raise AssistantError("the text holds control characters; use press_keys for keys such as ctrl+c")
    return act(
        "type_text", {"text": text}, [], lambda driver, _: driver.type_text(text),
        f"typed {len(text)} characters", keyboard=True,
    )


def press_keys(keys: str) -> ToolResult:
    """Press one key combination (e.g. "ctrl+s", "alt+tab", "enter") in the focused window."""
    syms = parse_combination(keys)
    return act(
        "press_keys", {"keys": keys}, [], lambda driver, _: driver.press(syms), f"pressed {'+'.join(syms)}",
        keyboard=True,
    )


def wait(seconds: float) -> ToolResult:
    """Wait for the screen to change (a window opening, a page loading), at most MAX_WAIT_S."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= MAX_WAIT_S:
        raise AssistantError(f"seconds must be more than 0 and at most {MAX_WAIT_S:g}, not {seconds!r}")
    context = _context()
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        if context is not None and context.cancelled:
            return ToolResult(text="Wait stopped.", is_error=True)
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
    return ToolResult(text=f"Waited {float(seconds):g} s. Take a screenshot to see the screen now.")


_POINT = {
    "x": {"type": "number", "description": "x in pixels of the latest screenshot."},
    "y": {"type": "number", "description": "y in pixels of the latest screenshot."},
}
_AFTER = " Asks the user first; returns a new screenshot."

CLICK = Tool(
    name="click",
    description="Click on the screen at a point of the latest screenshot." + _AFTER,
    parameters={
        "type": "object",
        "properties": {
            **_POINT,
            "button": {"type": "string", "enum": ["left", "right", "middle"], "description": "Default left."},
            "clicks": {"type": "integer", "minimum": 1, "maximum": MAX_CLICKS, "description": "1-3 (2: double)."},
        },
        "required": ["x", "y"],
        "additionalProperties": False,
    },
    run=click,
    side_effects=True,
    timeout_s=30.0,
    preview=lambda x, y, button="left", clicks=1: pointer_preview(
        "click", [(x, y)], f"{button} click" + (f" x{clicks}" if clicks != 1 else "")
    ),
    allow_scope=lambda x, y, **_: pointer_window([(x, y)]),
)
MOVE = Tool(
    name="move",
    description="Move the mouse pointer to a point of the latest screenshot (hover)." + _AFTER,
    parameters={"type": "object", "properties": dict(_POINT), "required": ["x", "y"], "additionalProperties": False},
    run=move,
    side_effects=True,
    timeout_s=30.0,
    preview=lambda x, y: pointer_preview("move", [(x, y)], "moves the pointer"),
    allow_scope=lambda x, y: pointer_window([(x, y)]),
)
DRAG = Tool(
    name="drag",
    description="Drag with the left button from (x1, y1) to (x2, y2), pixels of the latest screenshot." + _AFTER,
    parameters={
        "type": "object",
        "properties": {name: {"type": "number"} for name in ("x1", "y1", "x2", "y2")},
        "required": ["x1", "y1", "x2", "y2"],
        "additionalProperties": False,
    },
    run=drag,
    side_effects=True,
    timeout_s=30.0,
    preview=lambda x1, y1, x2, y2: pointer_preview("drag", [(x1, y1), (x2, y2)], "drags"),
    allow_scope=lambda x1, y1, x2, y2: pointer_window([(x1, y1), (x2, y2)]),
)
SCROLL = Tool(
    name="scroll",
    description="Scroll the mouse wheel at a point: dy > 0 down, dy < 0 up, dx > 0 right, dx < 0 left." + _AFTER,
    parameters={
        "type": "object",
        "properties": {
            **_POINT,
            "dx": {"type": "integer", "minimum": -MAX_SCROLL, "maximum": MAX_SCROLL},
            "dy": {"type": "integer", "minimum": -MAX_SCROLL, "maximum": MAX_SCROLL},
        },
        "required": ["x", "y"],
        "additionalProperties": False,
    },
    run=scroll,
    side_effects=True,
    timeout_s=30.0,
    preview=lambda x, y, dx=0, dy=0: pointer_preview("scroll", [(x, y)], f"scrolls dx={dx} dy={dy}"),
    allow_scope=lambda x, y, **_: pointer_window([(x, y)]),
)
TYPE_TEXT = Tool(
    name="type_text",
    description="Type text into the focused window (click the field first)." + _AFTER,
    parameters={
        "type": "object",
        "properties": {"text": {"type": "string", "maxLength": MAX_TEXT}},
        "required": ["text"],
        "additionalProperties": False,
    },
    run=type_text,
    side_effects=True,
    timeout_s=60.0,
    preview=lambda text: keyboard_preview(f"types {json.dumps(text, ensure_ascii=True)} ({len(text)} characters)"),
)
PRESS_KEYS = Tool(
    name="press_keys",
    description='Press a key combination in the focused window, e.g. "ctrl+s", "alt+tab", "enter".' + _AFTER,
    parameters={
        "type": "object",
        "properties": {"keys": {"type": "string", "description": "Keys joined with +."}},
        "required": ["keys"],
        "additionalProperties": False,
    },
    run=press_keys,
    side_effects=True,
    timeout_s=30.0,
    preview=_keys_preview,
)
WAIT = Tool(
    name="wait",
    description=f"Wait up to {MAX_WAIT_S:g} seconds for the screen to change.",
    parameters={
        "type": "object",
        "properties": {"seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_WAIT_S}},
        "required": ["seconds"],
        "additionalProperties": False,
    },
    run=wait,
    timeout_s=MAX_WAIT_S + 5,
)

ACTION_TOOLS: tuple[Tool, ...] = (CLICK, MOVE, DRAG, SCROLL, TYPE_TEXT, PRESS_KEYS, WAIT)


@hookimpl
def register_tools(register: Callable[[Tool], None]) -> None:
    for tool in ACTION_TOOLS:
        register(tool)
