"""The screenshot plugin: real captures from Xvfb (pixels, monitors, regions), errors without a display, CLI, /screenshot."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from PIL import Image

from assistant import hookimpl
from assistant.cli import main
from assistant.errors import AssistantError
from assistant.hooktypes import Screenshot, ScreenshotRequest
from assistant.plugins import create_plugin_manager, reset_plugin_manager
from assistant.testing import SlashRecorder
from assistant_plugins import screenshot as plugin
from xvfb import VirtualDisplay, requires_xvfb, xvfb_display, xvfb_server  # noqa: F401 - fixtures

RED = (255, 0, 0)
BLUE = (0, 0, 255)
GREEN = (0, 200, 0)

BLUE_SQUARE = (100, 100, 200, 200)
"""x0, y0, x1, y1 (exclusive) of a blue square on the red monitor 1."""
RED_SQUARE = (840, 50, 940, 150)
"""A red square on the blue monitor 2 (local x 200-299 on that monitor)."""

def _in(box: tuple[int, int, int, int], x: int, y: int) -> bool:
    return box[0] <= x < box[2] and box[1] <= y < box[3]


def _red_where(x: int, y: int) -> bool:
    if x < 640:
        return not _in(BLUE_SQUARE, x, y)
    return _in(RED_SQUARE, x, y)


@pytest.fixture
def painted(xvfb_display: VirtualDisplay) -> VirtualDisplay:
    """Monitor 1 red with a blue square, monitor 2 blue with a red square."""
    xvfb_display.paint_mask("two-monitors", _red_where, RED, BLUE)
    return xvfb_display


@pytest.fixture
def fresh_manager():
    reset_plugin_manager(None)
    yield
    reset_plugin_manager(None)


# --- real captures ----------------------------------------------------------------------------

@pytest.mark.xvfb
@requires_xvfb
def test_whole_virtual_screen_spans_both_monitors(painted: VirtualDisplay) -> None:
    shot = plugin.capture(ScreenshotRequest())
    assert shot.image.mode == "RGB"
    assert shot.image.size == (1280, 480)
    assert (shot.left, shot.top, shot.width, shot.height, shot.scale) == (0, 0, 1280, 480, 1.0)
    assert shot.monitors == [
        {"left": 0, "top": 0, "width": 640, "height": 480},
        {"left": 640, "top": 0, "width": 640, "height": 480},
    ]
    assert shot.image.getpixel((10, 10)) == RED
    assert shot.image.getpixel((150, 150)) == BLUE
    assert shot.image.getpixel((199, 199)) == BLUE
    assert shot.image.getpixel((200, 200)) == RED
    assert shot.image.getpixel((700, 10)) == BLUE
    assert shot.image.getpixel((890, 100)) == RED
    assert shot.monitor is None
    assert shot.source == "screenshot 1280x480+0+0"


@pytest.mark.xvfb
@requires_xvfb
def test_monitor_two_is_the_right_half(painted: VirtualDisplay) -> None:
    shot = plugin.capture(ScreenshotRequest(monitor=2))
    assert shot.image.size == (640, 480)
    assert (shot.left, shot.top, shot.monitor) == (640, 0, 2)
    assert shot.source == "screenshot monitor 2"
    assert shot.image.getpixel((10, 10)) == BLUE
    assert shot.image.getpixel((250, 100)) == RED  # global 890,100: the red square
    assert shot.image.getpixel((150, 150)) == BLUE  # global 790,150: the blue square of monitor 1 is not here


@pytest.mark.xvfb
@requires_xvfb
def test_monitor_one_is_the_left_half(painted: VirtualDisplay) -> None:
    shot = plugin.capture(ScreenshotRequest(monitor=1))
    assert shot.image.size == (640, 480)
    assert (shot.left, shot.top) == (0, 0)
    assert shot.image.getpixel((10, 10)) == RED
    assert shot.image.getpixel((150, 150)) == BLUE
    assert shot.image.getpixel((639, 479)) == RED


@pytest.mark.xvfb
@requires_xvfb
def test_region_is_cut_at_its_coordinates(painted: VirtualDisplay) -> None:
    shot = plugin.capture(ScreenshotRequest(region=(190, 190, 20, 20)))
    assert shot.image.size == (20, 20)
    assert (shot.left, shot.top, shot.width, shot.height) == (190, 190, 20, 20)
    assert shot.image.getpixel((0, 0)) == BLUE  # 190,190 is inside the blue square
    assert shot.image.getpixel((9, 9)) == BLUE
    assert shot.image.getpixel((10, 10)) == RED  # 200,200 is just outside it
    assert shot.image.getpixel((19, 0)) == RED


@pytest.mark.xvfb
@requires_xvfb
def test_region_across_the_monitor_border(painted: VirtualDisplay) -> None:
    shot = plugin.capture(ScreenshotRequest(region=(630, 0, 20, 10)))
    assert shot.image.size == (20, 10)
    assert shot.image.getpixel((9, 5)) == RED
    assert shot.image.getpixel((10, 5)) == BLUE


@pytest.mark.xvfb
@requires_xvfb
def test_solid_colour_fills_the_capture(xvfb_display: VirtualDisplay) -> None:
    xvfb_display.paint_solid(GREEN)
    shot = plugin.capture(ScreenshotRequest(region=(600, 200, 80, 40)))
    assert shot.image.getcolors() == [(80 * 40, GREEN)]


@pytest.mark.xvfb
@requires_xvfb
@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (ScreenshotRequest(monitor=3), "monitor 3 does not exist: this screen has 2 monitors (1-2)"),
        (ScreenshotRequest(monitor=0), "monitor 0 does not exist: this screen has 2 monitors (1-2)"),
        (ScreenshotRequest(region=(1270, 0, 20, 10)), "region 1270,0,20,10 is outside the screen, which spans 1280x480"),
        (ScreenshotRequest(region=(-5, 0, 20, 10)), "region -5,0,20,10 is outside the screen"),
        (ScreenshotRequest(region=(0, 0, 0, 10)), "region 0,0,0,10 has no area"),
        (ScreenshotRequest(monitor=1, region=(0, 0, 10, 10)), "give a monitor or a region, not both"),
    ],
)
def test_impossible_requests_say_what_exists(xvfb_display: VirtualDisplay, request_: ScreenshotRequest, message: str) -> None:
    with pytest.raises(AssistantError, match="^" + re.escape(message)):
        plugin.capture(request_)


# --- no display -------------------------------------------------------------------------------

def test_no_display_is_one_actionable_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if not sys.platform.startswith("linux"):
        pytest.skip("the $DISPLAY check is for X11")
    with pytest.raises(AssistantError) as caught:
        plugin.capture(ScreenshotRequest())
    message = str(caught.value)
    assert message.startswith("no display to capture: $DISPLAY is not set (headless session)")
    assert "Xvfb :99 & export DISPLAY=:99" in message
    assert "\n" not in message


def test_wayland_without_xwayland_is_named() -> None:
    message = plugin.display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert message is not None and "Wayland session without XWayland" in message
    assert plugin.display_problem({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert plugin.display_problem({}, "darwin") is None
    assert plugin.display_problem({}, "win32") is None
    assert "headless" in (plugin.display_problem({"DISPLAY": "  "}, "linux") or "")


def _unused_display() -> str:
    for number in range(4000, 4100):
        if not Path(f"/tmp/.X{number}-lock").exists() and not Path(f"/tmp/.X11-unix/X{number}").exists():
            return f":{number}"
    pytest.skip("no unused X display number found")


def test_unreachable_display_is_an_assistant_error(monkeypatch: pytest.MonkeyPatch) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("X11 only")
    display = _unused_display()
    monkeypatch.setenv("DISPLAY", display)
    with pytest.raises(AssistantError, match=f"^cannot capture the screen on display {display} "):
        plugin.capture(ScreenshotRequest())


def test_cli_without_display_prints_one_line_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, fresh_manager: None
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if not sys.platform.startswith("linux"):
        pytest.skip("the $DISPLAY check is for X11")
    assert main(["screenshot", "-o", str(tmp_path / "shot.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no display to capture: $DISPLAY is not set")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "shot.png").exists()


# --- parsing ----------------------------------------------------------------------------------

def test_parse_target() -> None:
    assert plugin.parse_target("") == ScreenshotRequest()
    assert plugin.parse_target(" 2 ") == ScreenshotRequest(monitor=2)
    assert plugin.parse_target("10, 20,300,400") == ScreenshotRequest(region=(10, 20, 300, 400))
    with pytest.raises(AssistantError, match="give nothing"):
        plugin.parse_target("left")
    with pytest.raises(AssistantError, match="is not X,Y,W,H"):
        plugin.parse_target("1,2,3")
    with pytest.raises(AssistantError, match="has no area"):
        plugin.parse_region("0,0,-4,10")


# --- through the hook: CLI and /screenshot -----------------------------------------------------

@pytest.mark.xvfb
@requires_xvfb
def test_cli_writes_the_png(painted: VirtualDisplay, tmp_path: Path, capsys: pytest.CaptureFixture[str], fresh_manager: None) -> None:
    out = tmp_path / "monitor2.png"
    assert main(["screenshot", "-o", str(out), "--monitor", "2"]) == 0
    assert f"wrote {out} (640x480, screenshot monitor 2)" in capsys.readouterr().out
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.size == (640, 480)
        assert image.convert("RGB").getpixel((250, 100)) == RED

    region = tmp_path / "region.png"
    assert main(["screenshot", "-o", str(region), "--region", "190,190,20,20"]) == 0
    with Image.open(region) as image:
        assert image.size == (20, 20)


@pytest.mark.xvfb
@requires_xvfb
def test_cli_bad_monitor_exits_2(xvfb_display: VirtualDisplay, tmp_path: Path, capsys: pytest.CaptureFixture[str], fresh_manager: None) -> None:
    assert main(["screenshot", "-o", str(tmp_path / "x.png"), "--monitor", "7"]) == 2
    assert "error: monitor 7 does not exist: this screen has 2 monitors (1-2)" in capsys.readouterr().err


class FixedCapture:
    """A third-party capture plugin (as a Wayland backend would be): returns a known image."""

    image = Image.new("RGB", (32, 16), (1, 2, 3))

    @hookimpl
    def capture_screenshot(self, request: ScreenshotRequest) -> Screenshot:
        return Screenshot(image=self.image, left=0, top=0, width=32, height=16, monitor=request.monitor)


def test_a_third_party_capture_plugin_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str], fresh_manager: None
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)  # the built-in would fail: proves it is not called
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    manager = create_plugin_manager(load_entry_points=False)
    manager.register(FixedCapture(), name="fixed-capture")
    reset_plugin_manager(manager)
    out = tmp_path / "fake.png"
    assert main(["screenshot", "-o", str(out)]) == 0, capsys.readouterr().err
    with Image.open(out) as image:
        assert image.size == (32, 16)
        assert image.convert("RGB").getpixel((0, 0)) == (1, 2, 3)


def test_slash_command_is_registered() -> None:
    manager = create_plugin_manager(load_entry_points=False, builtins=("assistant_plugins.screenshot",))
    commands = {command.name: command for command in manager.collect("register_slash_commands")}
    assert "screenshot" in commands
    assert commands["screenshot"].help.startswith("/screenshot [N|X,Y,W,H]")


@pytest.mark.xvfb
@requires_xvfb
def test_slash_screenshot_attaches_the_capture(painted: VirtualDisplay) -> None:
    manager = create_plugin_manager(load_entry_points=False, builtins=("assistant_plugins.screenshot",))
    (command,) = [c for c in manager.collect("register_slash_commands") if c.name == "screenshot"]
    context = SlashRecorder(manager)
    command.run(context, "2")
    assert context.notes == []
    ((image, source),) = context.images
    assert source == "screenshot monitor 2"
    assert image.size == (640, 480)
    assert image.getpixel((10, 10)) == BLUE

    command.run(context, "5")
    assert context.notes[-1] == ("monitor 5 does not exist: this screen has 2 monitors (1-2); "
                                 "leave the monitor out to capture the whole screen", "error")
    command.run(context, "top-left")
    assert context.notes[-1][1] == "error" and "give nothing" in context.notes[-1][0]
    assert len(context.images) == 1
