"""Built-in plugin: screen capture with mss (whole screen, one monitor, a region), `assistant screenshot` and /screenshot.

Written only against the public hooks, so it doubles as an example for plugin authors. A plugin registered
later (e.g. a Wayland capture backend) wins over this one, because `capture_screenshot` is first-result.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from assistant import hookimpl
from assistant.errors import AssistantError
from assistant.hooktypes import Screenshot, ScreenshotRequest, SlashCommand

XVFB_HINT = "start a virtual display, e.g. `Xvfb :99 & export DISPLAY=:99`"


# --- parsing what to capture ------------------------------------------------------------------

def parse_region(text: str) -> tuple[int, int, int, int]:
    """"X,Y,W,H" -> (x, y, width, height) in virtual-screen pixels."""
    parts = [part.strip() for part in text.split(",")]
    try:
        x, y, width, height = (int(part) for part in parts)
    except ValueError:
        raise AssistantError(
            f"region {text!r} is not X,Y,W,H; give four whole numbers, e.g. 0,0,800,600"
        ) from None
    if width < 1 or height < 1:
        raise AssistantError(f"region {text!r} has no area: width and height must be at least 1")
    return x, y, width, height


def parse_target(argument: str) -> ScreenshotRequest:
    """What `/screenshot [N|X,Y,W,H]` asks for: "" the whole screen, "2" monitor 2, "0,0,800,600" a region."""
    text = argument.strip()
    if not text:
        return ScreenshotRequest()
    if "," in text:
        return ScreenshotRequest(region=parse_region(text))
    if text.isdigit():
        return ScreenshotRequest(monitor=int(text))
    raise AssistantError(
        f"cannot capture {text!r}: give nothing (whole screen), a monitor number (2) or a region X,Y,W,H"
    )


# --- capturing --------------------------------------------------------------------------------

def display_problem(environ: Mapping[str, str] | None = None, platform: str | None = None) -> str | None:
    """Why there is no screen to capture, before trying (X11 needs $DISPLAY); None when it looks possible."""
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if platform.startswith(("win", "darwin", "cygwin")):
        return None
    if environ.get("DISPLAY", "").strip():
        return None
    if environ.get("WAYLAND_DISPLAY", "").strip():
        return (
            "no X display to capture: this is a Wayland session without XWayland ($WAYLAND_DISPLAY is set, "
            "$DISPLAY is not); enable XWayland, or install a capture plugin for your compositor"
        )
    return (
        "no display to capture: $DISPLAY is not set (headless session); run inside your desktop session or "
        + XVFB_HINT
    )


def _area(monitor: Mapping[str, int]) -> dict[str, int]:
    return {key: int(monitor[key]) for key in ("left", "top", "width", "height")}


def choose_area(
    request: ScreenshotRequest, virtual: dict[str, int], monitors: list[dict[str, int]]
) -> dict[str, int]:
    """The rectangle to grab for a request, checked against the virtual screen and the monitor list."""
    if request.monitor is not None and request.region is not None:
        raise AssistantError("give a monitor or a region, not both")
    if request.monitor is not None:
        count = len(monitors)
        if not 1 <= request.monitor <= count:
            which = "1 monitor (1)" if count == 1 else f"{count} monitors (1-{count})"
            raise AssistantError(
                f"monitor {request.monitor} does not exist: this screen has {which}; "
                "leave the monitor out to capture the whole screen"
            )
        return monitors[request.monitor - 1]
    if request.region is not None:
        x, y, width, height = request.region
        if width < 1 or height < 1:
            raise AssistantError(f"region {x},{y},{width},{height} has no area: width and height must be at least 1")
        right, bottom = virtual["left"] + virtual["width"], virtual["top"] + virtual["height"]
        if x < virtual["left"] or y < virtual["top"] or x + width > right or y + height > bottom:
            raise AssistantError(
                f"region {x},{y},{width},{height} is outside the screen, which spans "
                f"{virtual['width']}x{virtual['height']} from {virtual['left']},{virtual['top']}; "
                "give X,Y,W,H inside it"
            )
        return {"left": x, "top": y, "width": width, "height": height}
    return virtual


def capture(request: ScreenshotRequest) -> Screenshot:
    """Capture what `request` asks for with mss; AssistantError (never a traceback) when it cannot."""
    problem = display_problem()
    if problem:
        raise AssistantError(problem)
    import mss
    from PIL import Image

    display = os.environ.get("DISPLAY", "")
    where = f" on display {display}" if display and not sys.platform.startswith(("win", "darwin")) else ""
    try:
        with mss.MSS() as grabber:
            found = grabber.monitors
            virtual = _area(found[0])
            monitors = [_area(monitor) for monitor in found[1:]] or [dict(virtual)]
            area = choose_area(request, virtual, monitors)
            shot = grabber.grab(area)
    except mss.ScreenShotError as error:
        raise AssistantError(
            f"cannot capture the screen{where} ({_short(error)}); check that the display is running and "
            f"reachable (or {XVFB_HINT})"
        ) from None
    image = Image.frombytes("RGB", (shot.size.width, shot.size.height), bytes(shot.raw), "raw", "BGRX")
    return Screenshot(
        image=image,
        left=area["left"],
        top=area["top"],
        width=area["width"],
        height=area["height"],
        monitor=request.monitor,
        scale=shot.size.width / area["width"],
        monitors=monitors,
    )


def _short(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


# --- hooks ------------------------------------------------------------------------------------

@hookimpl
def capture_screenshot(request: ScreenshotRequest) -> Screenshot:
    """Capture with mss (X11, macOS, Windows)."""
    return capture(request)


def capture_through_plugins(manager: Any, request: ScreenshotRequest) -> Screenshot:
    """Capture through the `capture_screenshot` hook, so that a third-party capture plugin wins."""
    shot = manager.call_first("capture_screenshot", request=request)
    if shot is None:
        raise AssistantError("no screenshot plugin is active; enable the built-in `screenshot` plugin")
    from assistant.screenmap import remember_capture

    remember_capture(shot)  # desktop actions map pixels of this image back to the screen
    return shot


@hookimpl
def register_commands(cli: click.Group) -> None:
    @cli.command(name="screenshot")
    @click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), required=True, help="PNG file to write.")
    @click.option("--monitor", type=int, default=None, help="Capture this monitor (1-based) instead of the whole screen.")
    @click.option("--region", default=None, metavar="X,Y,W,H", help="Capture this rectangle of the virtual screen.")
    @click.option("--force", is_flag=True, help="Replace an existing file.")
    def screenshot(output: Path, monitor: int | None, region: str | None, force: bool) -> None:
        """Capture the screen, a monitor or a region to a PNG file."""
        from assistant.outputs import check_output, save_image_output
        from assistant.plugins import get_plugin_manager

        if monitor is not None and region:
            raise AssistantError("give --monitor or --region, not both")
        request = ScreenshotRequest(monitor=monitor, region=parse_region(region) if region else None)
        output = check_output(output, force)
        shot = capture_through_plugins(get_plugin_manager(), request)
        save_image_output(shot.image, output, force, image_format="PNG")
        click.echo(f"wrote {output} ({shot.image.width}x{shot.image.height}, {shot.source})")


def _slash_screenshot(context: Any, argument: str) -> None:
    try:
        request = parse_target(argument)
    except AssistantError as error:
        context.notify(str(error), severity="error")
        return

    def done(shot: Screenshot) -> None:
        context.attach_image(shot.image, shot.source)

    context.run_in_background(lambda: capture_through_plugins(context.plugin_manager, request), done)


@hookimpl
def register_slash_commands(register: Any) -> None:
    register(
        SlashCommand(
            name="screenshot",
            help="/screenshot [N|X,Y,W,H]: attach the screen, monitor N or a region (you confirm before sending)",
            run=_slash_screenshot,
        )
    )
