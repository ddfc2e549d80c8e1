"""The grounding plugin's hooks: the built-in formats, and the `assistant ground` command."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from assistant import hookimpl
from assistant.errors import AssistantError
from assistant.geometry import rounded_shape_dict
from assistant.hooktypes import GroundingFormat, SlashCommand

from .registry import FALLBACK_SYSTEMS, FORMATS, get_format, parse_reply

if TYPE_CHECKING:
    from PIL import Image

_SIZE_RE = re.compile(r"^\s*(\d{1,6})\s*[xX×*,]\s*(\d{1,6})\s*$")


@hookimpl
def register_grounding_formats(register: Callable[[GroundingFormat], None]) -> None:
    for fmt in FORMATS.values():
        register(fmt)


@hookimpl
def register_slash_commands(register: Callable[[SlashCommand], None]) -> None:
    from .slash import COMMANDS

    for command in COMMANDS:
        register(command)


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(ground)


def _all_formats() -> dict[str, GroundingFormat]:
    """Built-in formats plus those of third-party plugins (which win on a name clash)."""
    from assistant.grounding import grounding_formats
    from assistant.plugins import get_plugin_manager

    try:
        return grounding_formats(get_plugin_manager())
    except Exception:  # noqa: BLE001 - the command still works with the built-in formats
        return dict(FORMATS)


def parse_size(value: str | None, option: str) -> tuple[int, int] | None:
    """'1920x1080' -> (1920, 1080); click.UsageError naming the option for anything else."""
    if value is None:
        return None
    match = _SIZE_RE.match(value)
    if not match or int(match.group(1)) == 0 or int(match.group(2)) == 0:
        raise click.UsageError(f"{option} must be WIDTHxHEIGHT in pixels, like 1920x1080 (got {value!r}).")
    return int(match.group(1)), int(match.group(2))


def _open_image(path: str) -> "Image.Image":
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise AssistantError(f"Image not found: {path}. Check the --draw path.") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as exc:
        raise AssistantError(f"Cannot read {path} as an image ({exc}). Give a PNG or JPEG to --draw.") from None
    return image


@click.command("ground")
@click.option("--format", "format_name", metavar="NAME", help="Reply format (see --list-formats).")
@click.option("--image-size", metavar="WxH", help="Size of the ORIGINAL image, e.g. 1920x1080.")
@click.option("--input-size", metavar="WxH", help="Size of the resized model input (Qwen2.5-VL, UI-TARS-1.5).")
@click.option("--fallback-system", type=click.Choice(FALLBACK_SYSTEMS), default="norm1000", show_default=True,
              help="Coordinate system of plain [x1,y1,x2,y2] lists when the format finds nothing.")
@click.option("--draw", "draw_path", metavar="IMAGE", type=click.Path(dir_okay=False),
              help="Draw the parsed shapes on this image (needs -o).")
@click.option("-o", "--output", "output_path", metavar="OUT.png", type=click.Path(dir_okay=False),
              help="Where to save the drawn image.")
@click.option("--list-formats", is_flag=True, help="List the format names and what they parse.")
def ground(format_name: str | None, image_size: str | None, input_size: str | None, fallback_system: str,
           draw_path: str | None, output_path: str | None, list_formats: bool) -> None:
    """Parse boxes and points from a model reply read on stdin; print them as JSON in original-image pixels."""
    formats = _all_formats()
    if list_formats:
        width = max(len(name) for name in formats)
        for name, fmt in formats.items():
            click.echo(f"{name:<{width}}  {fmt.description}")
        return
    if not format_name:
        raise click.UsageError("Give --format NAME (see --list-formats).")
    fmt = get_format(format_name, formats)
    if draw_path and not output_path:
        raise click.UsageError("--draw needs -o OUT.png to know where to save the drawing.")
    if output_path and not draw_path:
        raise click.UsageError("-o is the output of --draw IMAGE; give the image to draw on.")
    size = parse_size(image_size, "--image-size")
    source = parse_size(input_size, "--input-size")
    image = _open_image(draw_path) if draw_path else None
    if size is None:
        if image is None:
            raise click.UsageError("Give --image-size WxH (the original image's size) or --draw IMAGE.")
        size = image.size
    text = sys.stdin.read()
    grounding = parse_reply(text, fmt.name, size, source, fallback_system=fallback_system, formats=formats)
    result = {
        "format": grounding.format,
        "image_size": list(grounding.image_size),
        "shapes": [rounded_shape_dict(shape) for shape in grounding.shapes],
        "raw": grounding.raw,
    }
    click.echo(json.dumps(result, indent=2, ensure_ascii=False))
    if not grounding.shapes:
        click.echo("no boxes found", err=True)
    if image is not None and output_path:
        from .draw import draw_grounding

        try:
            draw_grounding(image, grounding).save(output_path)
        except (OSError, ValueError) as exc:
            raise AssistantError(f"Cannot save the drawing to {output_path} ({exc}). Use a .png or .jpg path "
                                 "in a writable folder.") from None
        click.echo(f"drawing saved to {output_path}", err=True)
