"""The built-in grounding formats by name, their "locate {thing}" prompts, and `parse_reply` with its fallback."""

from __future__ import annotations

from collections.abc import Mapping

from assistant.errors import AssistantError
from assistant.geometry import Grounding
from assistant.grounding import generic_name, parse_with_fallback
from assistant.hooktypes import GroundingFormat

from . import cogvlm, florence, gemini, generic, internvl, kosmos, molmo, paligemma, qwen, uitars
from .common import Size

# Prompt templates are str.format templates with one field, {thing}; literal braces are doubled.
_JSON1000_PROMPT = (
    "Locate {thing} in the image. Answer only with JSON, one object per instance: "
    '[{{"bbox_2d": [x1, y1, x2, y2], "label": "{thing}"}}] where (x1, y1) is the top-left and (x2, y2) the '
    "bottom-right corner, as integers from 0 to 1000 relative to the image width and height."
)


def _generic(system: str) -> GroundingFormat:
    name = generic_name(system)

    def parse(text: str, image_size: Size, input_size: Size | None = None) -> Grounding:
        """Plain coordinate lists read in this format's coordinate system (see generic.parse)."""
        grounding = generic.parse(text, image_size, input_size, system=system)
        grounding.format = name
        return grounding

    scale = {"norm1000": "0-1000", "norm1": "0-1", "pixel": "pixels"}[system]
    return GroundingFormat(
        name=name,
        description=f"Plain [x1,y1,x2,y2] lists in {scale} (fallback for models without a grounding format)",
        parse=parse,
        prompt=("Locate {thing} in the image. Answer with its bounding box as [x1, y1, x2, y2]"
                + {"norm1000": ", coordinates from 0 to 1000 relative to the image size.",
                   "norm1": ", coordinates from 0 to 1 relative to the image size.",
                   "pixel": " in pixels."}[system]),
    )


_BUILTIN: tuple[GroundingFormat, ...] = (
    GroundingFormat(qwen.QWEN2, "Qwen2-VL <|box_start|>(x1,y1),(x2,y2)<|box_end|> (0-1000), tokens optional",
                    qwen.parse_qwen2, "Find <|object_ref_start|>{thing}<|object_ref_end|>"),
    GroundingFormat(qwen.QWEN25, 'Qwen2.5-VL JSON {"bbox_2d"|"point_2d"} in pixels of the resized input',
                    qwen.parse_qwen25, "Locate {thing} in the image and output its bbox coordinates in JSON format."),
    GroundingFormat(qwen.QWEN3, 'Qwen3-VL JSON {"bbox_2d"|"point_2d"} (0-1000)', qwen.parse_qwen3,
                    'Locate every instance that belongs to the following categories: "{thing}". '
                    "Report bbox coordinates in JSON format."),
    GroundingFormat(qwen.JSON1000, 'JSON {"bbox_2d": [x1,y1,x2,y2]} in 0-1000, for models without native grounding',
                    qwen.parse_json1000, _JSON1000_PROMPT),
    GroundingFormat(florence.FORMAT, florence.DESCRIPTION, florence.parse, "<CAPTION_TO_PHRASE_GROUNDING>{thing}"),
    GroundingFormat(paligemma.FORMAT, paligemma.DESCRIPTION, paligemma.parse, "detect {thing}"),
    GroundingFormat(kosmos.FORMAT, kosmos.DESCRIPTION, kosmos.parse, "<grounding><phrase> {thing}</phrase>"),
    GroundingFormat(internvl.FORMAT, internvl.DESCRIPTION, internvl.parse,
                    "Please provide the bounding box coordinate of the region this sentence describes: "
                    "<ref>{thing}</ref>"),
    GroundingFormat(cogvlm.FORMAT, cogvlm.DESCRIPTION, cogvlm.parse,
                    "Can you point out {thing} in the image and provide the bounding boxes of their location?"),
    GroundingFormat(molmo.FORMAT, molmo.DESCRIPTION, molmo.parse, "Point to {thing}."),
    GroundingFormat(gemini.FORMAT, gemini.DESCRIPTION, gemini.parse,
                    "Detect {thing} in the image. Output a JSON list where each entry contains the 2D bounding box "
                    'in "box_2d" and a text label in "label". The box_2d should be [ymin, xmin, ymax, xmax] '
                    "normalized to 0-1000."),
    GroundingFormat(uitars.FORMAT, uitars.DESCRIPTION, uitars.parse,
                    "Click on {thing}. Output the action as click(start_box='(x,y)')."),
    GroundingFormat(uitars.FORMAT_V1, uitars.DESCRIPTION_V1, uitars.parse_v1,
                    "Click on {thing}. Output the action as click(point='<point>x y</point>') with x and y "
                    "from 0 to 1000."),
    _generic("norm1000"),
    _generic("norm1"),
    _generic("pixel"),
)

FORMATS: dict[str, GroundingFormat] = {fmt.name: fmt for fmt in _BUILTIN}
"""Every built-in format by name (the name a profile writes in its grounding settings)."""

FALLBACK_SYSTEMS = generic.SYSTEMS


def get_format(name: str, formats: Mapping[str, GroundingFormat] | None = None) -> GroundingFormat:
    """The format called `name`; AssistantError (a profile/config mistake) when there is none."""
    known = FORMATS if formats is None else formats
    try:
        return known[name]
    except (KeyError, TypeError):
        names = ", ".join(sorted(known))
        raise AssistantError(
            f"Unknown grounding format {name!r}. Use one of: {names} (see `assistant ground --list-formats`)."
        ) from None


def prompt_for(name: str, thing: str, formats: Mapping[str, GroundingFormat] | None = None) -> str:
    """The prompt that asks the model behind format `name` to locate `thing` in its own output format."""
    template = get_format(name, formats).prompt or FORMATS["json1000"].prompt
    return template.format(thing=thing)


def parse_reply(text: str, format_name: str, image_size: Size, input_size: Size | None = None,
                fallback_system: str = "norm1000",
                formats: Mapping[str, GroundingFormat] | None = None) -> Grounding:
    """Parse a reply with its profile's format; when that finds nothing, try the generic parser.

    `formats` lets the core pass the formats registered by plugins (defaults to the built-ins). The work, the
    guard and the fallback are the core's `assistant.grounding.parse_with_fallback` (one home for all callers).
    """
    return parse_with_fallback(FORMATS if formats is None else formats, format_name, fallback_system, text,
                               image_size, input_size)
