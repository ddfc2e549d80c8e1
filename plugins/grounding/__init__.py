"""Built-in grounding plugin: parsers that turn VLM replies into boxes/points/polygons, drawing, zoom crops, CLI.

Register this package (or its `plugin` module) with the plugin manager: it provides the
`register_grounding_formats` and `register_commands` hooks. One module per format family; `registry` names them.
"""

from __future__ import annotations

from .draw import crop_shape, draw_grounding
from .plugin import register_commands, register_grounding_formats
from .registry import FORMATS, get_format, parse_reply, prompt_for

__all__ = [
    "FORMATS",
    "crop_shape",
    "draw_grounding",
    "get_format",
    "parse_reply",
    "prompt_for",
    "register_commands",
    "register_grounding_formats",
]
