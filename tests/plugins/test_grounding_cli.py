"""`assistant ground` through click's CliRunner on a bare group the plugin registers into."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner
from PIL import Image

from assistant.errors import AssistantError
from assistant_plugins.grounding.draw import colour_for
from assistant_plugins.grounding.plugin import register_commands
from assistant_plugins.grounding.registry import FORMATS

from test_grounding_published import CAKES_TOP_RIGHT, OD_CAR


@pytest.fixture
def cli():
    group = click.Group()
    register_commands(group)
    return group


def run(cli, args, stdin=""):
    return CliRunner().invoke(cli, ["ground", *args], input=stdin)


def test_list_formats_names_every_format_with_a_description(cli):
    result = run(cli, ["--list-formats"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(FORMATS)
    assert all(len(line.split(maxsplit=1)) == 2 for line in lines)


def test_reply_on_stdin_prints_original_pixels_as_json(cli):
    result = run(cli, ["--format", "florence2", "--image-size", "640x480"], OD_CAR)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["format"] == "florence2" and data["image_size"] == [640, 480]
    assert [s["label"] for s in data["shapes"]] == ["car", "door handle", "wheel", "wheel"]
    assert data["shapes"][0] == {"x1": 34.24, "y1": 160.08, "x2": 597.44, "y2": 371.76, "label": "car", "kind": "box"}


def test_input_size_maps_qwen25_pixels(cli):
    result = run(cli, ["--format", "qwen2.5vl", "--image-size", "1024x1024", "--input-size", "1036x1036"],
                 CAKES_TOP_RIGHT)
    box = json.loads(result.stdout)["shapes"][0]
    assert (box["x1"], box["y1"]) == (round(765 * 1024 / 1036, 2), round(394 * 1024 / 1036, 2))


def test_fallback_to_generic_with_its_coordinate_system(cli):
    result = run(cli, ["--format", "qwen3vl", "--image-size", "200x100", "--fallback-system", "norm1"],
                 "The cat: [0.1, 0.2, 0.5, 0.6]")
    data = json.loads(result.stdout)
    assert data["format"] == "generic-norm1"
    assert data["raw"]["fallback_from"] == "qwen3vl"
    assert data["shapes"][0]["x1"] == 20 and data["shapes"][0]["y2"] == 60


def test_garbage_says_no_boxes_found_and_succeeds(cli):
    result = run(cli, ["--format", "paligemma", "--image-size", "640x480"], "zq<<>> ;; [[ ( lorem ipsum")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["shapes"] == []
    assert "no boxes found" in result.stderr


@pytest.mark.parametrize("args", [
    ["--format", "qwen3vl", "--image-size", "640"],
    ["--format", "qwen3vl", "--image-size", "0x480"],
    ["--format", "qwen3vl", "--image-size", "640x480", "--input-size", "axb"],
    ["--format", "qwen3vl"],
    ["--image-size", "640x480"],
    ["--format", "qwen3vl", "--image-size", "640x480", "--draw", "x.png"],
    ["--format", "qwen3vl", "--image-size", "640x480", "-o", "out.png"],
])
def test_bad_usage_exits_2_with_a_message(cli, args):
    result = run(cli, args, "[]")
    assert result.exit_code == 2
    assert "Error:" in result.output


def test_unknown_format_is_an_assistant_error(cli):
    result = run(cli, ["--format", "qwen9", "--image-size", "640x480"], "[]")
    assert isinstance(result.exception, AssistantError)
    assert "qwen9" in str(result.exception) and "--list-formats" in str(result.exception)


def test_missing_or_broken_draw_image_is_an_assistant_error(cli, tmp_path):
    result = run(cli, ["--format", "qwen3vl", "--draw", str(tmp_path / "nope.png"), "-o", str(tmp_path / "o.png")])
    assert isinstance(result.exception, AssistantError) and "not found" in str(result.exception)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    result = run(cli, ["--format", "qwen3vl", "--draw", str(broken), "-o", str(tmp_path / "o.png")])
    assert isinstance(result.exception, AssistantError)


def test_draw_writes_the_image_with_the_boxes(cli, tmp_path):
    source = tmp_path / "in.png"
    Image.new("RGB", (640, 480), (128, 128, 128)).save(source)
    out = tmp_path / "out.png"
    result = run(cli, ["--format", "florence2", "--draw", str(source), "-o", str(out)], OD_CAR)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["image_size"] == [640, 480]  # taken from the image
    drawn = Image.open(out)
    assert drawn.size == (640, 480)
    assert drawn.getpixel((35, 260)) == colour_for(0)  # the car's left edge at x = 34.24


def test_draw_on_a_different_size_than_the_reply_scales(cli, tmp_path):
    source = tmp_path / "thumb.png"
    Image.new("RGB", (320, 240), (128, 128, 128)).save(source)
    out = tmp_path / "out.png"
    result = run(cli, ["--format", "florence2", "--image-size", "640x480", "--draw", str(source), "-o", str(out)],
                 OD_CAR)
    assert result.exit_code == 0
    assert Image.open(out).getpixel((17, 130)) == colour_for(0)
