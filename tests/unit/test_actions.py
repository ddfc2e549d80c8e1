"""Desktop actions without a display: key combinations, the coordinate mapping, settings, the policy for actions."""

from __future__ import annotations

import pytest
from PIL import Image

from assistant.errors import AssistantError
from assistant.hooktypes import Screenshot
from assistant.permissions import Answer, Permissions, add_to_allow_list
from assistant.screenmap import ScreenMap, capture_of, model_to_image, remember_capture
from assistant_plugins.actions import safety
from assistant_plugins.actions.keys import parse_combination
from assistant_plugins.actions.xdotool import input_problem

TWO_MONITORS = ((0, 0, 640, 480), (640, 0, 640, 480))


@pytest.mark.parametrize(
    "text, keys",
    [
        ("ctrl+s", ["ctrl", "s"]),
        ("Alt+Tab", ["alt", "Tab"]),
        ("enter", ["Return"]),
        ("ctrl shift t", ["ctrl", "shift", "t"]),  # UI-TARS hotkey(key='ctrl shift t')
        ("s+ctrl", ["ctrl", "s"]),
        ("cmd+c", ["super", "c"]),
        ("ctrl++", ["ctrl", "plus"]),
        ("F5", ["F5"]),
        ("ctrl + -", ["ctrl", "minus"]),
    ],
)
def test_key_combinations(text, keys):
    assert parse_combination(text) == keys


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "give the keys"),
        ("ctrl+bogus", "unknown key 'bogus'"),
        ("a+b", "presses 2 ordinary keys"),
        ("ctrl+ctrl", "names a key twice"),
        ("ctrl+alt+shift+super+a+b", "at most 5 keys"),
        ("ctrl+\x1b", "unknown key"),
    ],
)
def test_bad_key_combinations_say_what_to_give(text, message):
    with pytest.raises(AssistantError, match=message.replace("+", r"\+")):
        parse_combination(text)


def test_screenshot_pixels_map_to_the_desktop_with_offset_and_scale():
    monitor_2 = ScreenMap(image_size=(640, 480), area=(640, 0, 640, 480), monitors=TWO_MONITORS, request_monitor=2)
    assert monitor_2.to_desktop(10, 20) == (650, 20)
    hidpi = ScreenMap(image_size=(2560, 960), area=(0, 0, 1280, 480), monitors=TWO_MONITORS)  # 2 pixels per point
    assert hidpi.to_desktop(1500, 100) == (750, 50)
    downscaled = ScreenMap(image_size=(320, 120), area=(0, 0, 1280, 480), monitors=TWO_MONITORS)
    assert downscaled.to_desktop(319.9, 119.9) == (1279, 479)


@pytest.mark.parametrize("x, y", [(-1, 5), (640, 5), (5, 480), (float("nan"), 1), (True, 1)])
def test_points_outside_the_screenshot_are_refused(x, y):
    screen = ScreenMap(image_size=(640, 480), area=(640, 0, 640, 480), monitors=TWO_MONITORS)
    with pytest.raises(AssistantError, match="outside the screenshot|not a number"):
        screen.to_desktop(x, y)


def test_a_pixel_no_monitor_shows_is_refused():
    l_shape = ScreenMap(image_size=(1280, 960), area=(0, 0, 1280, 960), monitors=((0, 0, 1280, 480), (0, 480, 640, 480)))
    assert l_shape.to_desktop(100, 700) == (100, 700)
    with pytest.raises(AssistantError, match=r"refused: desktop pixel \(1000, 700\) is on no screen"):
        l_shape.to_desktop(1000, 700)


def test_model_coordinate_systems():
    size = (1280, 480)
    assert model_to_image(500, 500, "norm1000", size) == (640, 240)
    assert model_to_image(1000, 1000, "norm1000", size) == (1279.5, 479.5)  # the far edge is the last pixel
    assert model_to_image(0.25, 0.5, "norm1", size) == (320, 240)
    assert model_to_image(50, 50, "percent", size) == (640, 240)
    # Qwen2.5-VL style: pixels of the processor's resized input (here 644x252 for 1280x480).
    assert model_to_image(322, 126, "pixel", size, (644, 252)) == (640, 240)
    assert model_to_image(322, 126, "pixel", size, None) == (322, 126)
    assert model_to_image(7, 8, "image", size) == (7, 8)
    with pytest.raises(AssistantError, match="unknown coordinate system"):
        model_to_image(1, 1, "furlongs", size)


def test_a_capture_is_found_again_by_its_pixels_after_storing():
    image = Image.new("RGB", (40, 30), (1, 2, 3))
    image.putpixel((5, 5), (9, 9, 9))
    shot = Screenshot(image=image, left=640, top=0, width=40, height=30, monitor=2,
                      monitors=[{"left": 640, "top": 0, "width": 640, "height": 480}])
    remember_capture(shot)
    from assistant.images import image_from_pil

    stored = image_from_pil(image, "screenshot").image  # what the chat keeps (a PNG copy)
    assert capture_of(stored) == ScreenMap((40, 30), (640, 0, 40, 30), ((640, 0, 640, 480),), 2)
    assert capture_of(Image.new("RGB", (40, 30), (1, 2, 3))) is None


def test_input_problem_says_one_line_per_platform():
    assert "need X11 or XWayland" in input_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert "$DISPLAY is not set" in input_problem({}, "linux")
    assert "this platform has no input driver yet" in input_problem({}, "darwin")


def test_failsafe_corners():
    assert safety.corner_of(0, 0, TWO_MONITORS) == "top-left corner of monitor 1"
    assert safety.corner_of(1278, 478, TWO_MONITORS) == "bottom-right corner of monitor 2"
    assert safety.corner_of(642, 2, TWO_MONITORS) == "top-left corner of monitor 2"
    assert safety.corner_of(320, 240, TWO_MONITORS) is None


def test_settings_are_checked(assistant_home):
    config = assistant_home / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    assert safety.load_settings() == safety.ActionSettings()
    config.write_text('[agent]\nmax_actions = 5\naction_delay_s = 0.2\naction_coordinates = "model"\n', "utf-8")
    assert safety.load_settings() == safety.ActionSettings(max_actions=5, delay_s=0.2, coordinates="model")
    for bad, message in (("max_actions = 0", "max_actions must be a whole number"),
                         ("action_delay_s = 99", "action_delay_s must be a number from 0 to 10"),
                         ('action_coordinates = "inches"', "action_coordinates must be one of"),
                         ("actions_dry_run = 1", "actions_dry_run must be true or false")):
        config.write_text(f"[agent]\n{bad}\n", "utf-8")
        with pytest.raises(AssistantError, match=message):
            safety.load_settings()


def test_actions_are_asked_every_time(tmp_path):
    config = tmp_path / "config.toml"
    add_to_allow_list(config, "click")  # written by hand, or by an older version: ignored for actions
    asked = []

    def approver(request):
        asked.append(request.tool)
        return Answer.ALWAYS

    permissions = Permissions(approver=approver, config_file=config)
    first = permissions.check("type_text", "", True, {"text": "hi"})
    assert first.approved and first.how == "approved" and "one call at a time" in first.note
    assert permissions.check("click", "", True, {"x": 1, "y": 2}).approved
    assert asked == ["type_text", "click"]
    assert permissions.check("zoom_like", "", True, {}).how == "approved-always"  # other tools: unchanged
    assert Permissions(config_file=config).check("type_text", "", True, {}).how == "no-approver"
    assert Permissions(pre_approved=True, config_file=config).check("click", "", True, {}).how == "pre-approved"


def test_ui_tars_actions_become_tool_calls_in_image_pixels():
    from assistant_plugins.grounding import uitars

    reply = "Thought: OK is there.\nAction: click(start_box='<|box_start|>(322,126)<|box_end|>')"
    grounding = uitars.parse(reply, (1280, 480), (644, 252))  # 1.5: pixels of the resized input
    assert grounding.raw["actions"] == [{"tool": "click", "arguments": {"x": 640, "y": 240}}]
    reply = (
        "Thought: type, then more. wait (for it)\nAction: type(content='hello\\nit\\'s me')\n\n"
        "hotkey(key='ctrl c')\nscroll(start_box='(500,500)', direction='up')\n"
        "left_double(start_box='[100,100,200,200]')\nright_single(start_box='(0,0)')\n"
        "drag(start_box='(0,0)', end_box='(1000,1000)')\nhover(start_box='(10,10)')\nwait()\nfinished(content='ok')"
    )
    actions = uitars.parse_v1(reply, (1280, 480)).raw["actions"]  # 1.0: 0-1000
    assert actions == [
        {"tool": "type_text", "arguments": {"text": "hello\nit's me"}},
        {"tool": "press_keys", "arguments": {"keys": "ctrl c"}},
        {"tool": "scroll", "arguments": {"x": 640, "y": 240, "dx": 0, "dy": -5}},
        {"tool": "click", "arguments": {"x": 192, "y": 72, "clicks": 2}},
        {"tool": "click", "arguments": {"x": 0, "y": 0, "button": "right"}},
        {"tool": "drag", "arguments": {"x1": 0, "y1": 0, "x2": 1279, "y2": 479}},
        {"tool": "move", "arguments": {"x": 13, "y": 5}},
        {"tool": "wait", "arguments": {"seconds": 5.0}},
    ]
    assert parse_combination(actions[1]["arguments"]["keys"]) == ["ctrl", "c"]
    assert "actions" not in uitars.parse_v1("Action: finished(content='done')", (1280, 480)).raw
