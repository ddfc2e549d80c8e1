"""The format registry, prompts, parse_reply's fallback, and the plugin's hooks through a real pluggy manager."""

from __future__ import annotations

import subprocess
import sys

import click
import pluggy
import pytest

from assistant import hookspecs
from assistant.errors import AssistantError
from assistant.geometry import Box, Grounding
from assistant.hooktypes import GroundingFormat
from assistant_plugins import grounding as grounding_plugin
from assistant_plugins.grounding.registry import FORMATS, get_format, parse_reply, prompt_for

REQUIRED = {"qwen2vl", "qwen2.5vl", "qwen3vl", "json1000", "florence2", "paligemma", "kosmos2", "internvl", "cogvlm",
            "molmo", "gemini", "uitars", "uitars1", "generic"}


def test_every_required_format_is_registered_with_a_description_and_prompt():
    assert REQUIRED <= set(FORMATS)
    for name, fmt in FORMATS.items():
        assert fmt.name == name and fmt.description
        assert "{thing}" in fmt.prompt
        rendered = prompt_for(name, "the red car")
        assert "the red car" in rendered and "{" not in rendered.replace('{"', "")


def test_prompts_named_in_the_issue():
    assert prompt_for("qwen2.5vl", "the cat") == \
        "Locate the cat in the image and output its bbox coordinates in JSON format."
    assert prompt_for("florence2", "the cat") == "<CAPTION_TO_PHRASE_GROUNDING>the cat"
    assert prompt_for("paligemma", "the cat") == "detect the cat"
    json1000 = prompt_for("json1000", "the cat")
    assert '{"bbox_2d": [x1, y1, x2, y2], "label": "the cat"}' in json1000 and "1000" in json1000


def test_json1000_prompt_answer_parses():
    answer = '[{"bbox_2d": [100, 250, 500, 750], "label": "the cat"}]'
    assert parse_reply(answer, "json1000", (2000, 1000)).shapes == [Box(200, 250, 1000, 750, "the cat")]


def test_parse_reply_uses_the_format_then_falls_back_to_generic():
    direct = parse_reply('{"bbox_2d": [10, 20, 30, 40]}', "qwen2.5vl", (100, 100))
    assert direct.format == "qwen2.5vl" and direct.shapes == [Box(10, 20, 30, 40, "")]
    fallback = parse_reply("The box: [100, 200, 300, 400]", "florence2", (1000, 500))
    assert fallback.format == "generic" and fallback.raw["fallback_from"] == "florence2"
    assert fallback.shapes == [Box(100, 100, 300, 200, "")]


@pytest.mark.parametrize(("system", "expected"), [("norm1000", Box(100, 100, 300, 200, "")),
                                                   ("norm1", None), ("pixel", Box(100, 200, 300, 400, ""))])
def test_fallback_system(system, expected):
    grounding = parse_reply("[100, 200, 300, 400]", "molmo", (1000, 500), fallback_system=system)
    assert grounding.shapes == ([expected] if expected else [])


def test_fallback_pixels_are_of_the_input_size():
    grounding = parse_reply("[100, 200, 300, 400]", "molmo", (1000, 1000), (500, 500), fallback_system="pixel")
    assert grounding.shapes == [Box(200, 400, 600, 800, "")]


def test_garbage_gives_an_empty_grounding_of_the_profile_format():
    for name in FORMATS:
        grounding = parse_reply("∅ lorem <<ipsum>> {{ ((", name, (640, 480))
        assert grounding.shapes == [] and "error" not in grounding.raw
        assert grounding.format == name and "fallback_from" not in grounding.raw


def test_config_mistakes_are_assistant_errors():
    with pytest.raises(AssistantError, match="Unknown grounding format 'qwen9'"):
        parse_reply("[]", "qwen9", (10, 10))
    with pytest.raises(AssistantError, match="fallback coordinate system"):
        parse_reply("[]", "qwen3vl", (10, 10), fallback_system="inches")
    with pytest.raises(AssistantError):
        get_format("nope")


def test_third_party_formats_and_a_broken_parser():
    def broken(text, image_size, input_size=None):
        raise RuntimeError("bug in a plugin")

    formats = dict(FORMATS, mine=GroundingFormat("mine", "test", broken, "find {thing}"))
    grounding = parse_reply("[100, 200, 300, 400]", "mine", (1000, 1000), formats=formats)
    assert grounding.shapes == [Box(100, 200, 300, 400, "")]
    assert prompt_for("mine", "x", formats) == "find x"
    with pytest.raises(AssistantError):
        parse_reply("[]", "qwen3vl", (10, 10), formats={"mine": formats["mine"]})


def _manager():
    pm = pluggy.PluginManager("assistant")
    pm.add_hookspecs(hookspecs)
    pm.register(grounding_plugin)
    pm.check_pending()
    return pm


def test_hooks_register_every_format_and_the_ground_command():
    pm = _manager()
    registered: list[GroundingFormat] = []
    pm.hook.register_grounding_formats(register=registered.append)
    assert [fmt.name for fmt in registered] == list(FORMATS)
    assert all(isinstance(fmt.parse("", (10, 10), None), Grounding) for fmt in registered)
    group = click.Group()
    pm.hook.register_commands(cli=group)
    assert "ground" in group.commands


def test_parsers_stay_pure_python():
    """Importing the plugin (parsers, registry, drawing, CLI) must not pull in torch, transformers or textual."""
    code = ("import sys, assistant_plugins.grounding; "
            "print(sorted(m for m in ('torch', 'transformers', 'textual') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_one_fallback_for_every_caller():
    """The core's parse_with_fallback is the fallback: the registry's parse_reply is it, with the built-ins."""
    import assistant.grounding as core
    from assistant_plugins.grounding import generic

    assert set(core.FALLBACK_SYSTEMS) == set(generic.SYSTEMS)
    assert {core.generic_name(system) for system in core.FALLBACK_SYSTEMS} <= set(FORMATS)

    def broken(text, image_size, input_size=None):
        raise RuntimeError("bug in a plugin")

    formats = dict(FORMATS, mine=GroundingFormat("mine", "test", broken, "find {thing}"))
    for parse in (lambda text, system: core.parse_with_fallback(formats, "mine", system, text, (1000, 500), None),
                  lambda text, system: parse_reply(text, "mine", (1000, 500), fallback_system=system, formats=formats)):
        found = parse("[100, 200, 300, 400]", "norm1")
        assert found.shapes == []  # 200 and 400 are not 0-1 coordinates: the norm1 parser, not the 0-1000 one
        assert found.raw["error"] == "RuntimeError: bug in a plugin"
        found = parse("[100, 200, 300, 400]", "pixel")
        assert found.shapes == [Box(100, 200, 300, 400, "")] and found.format == "generic-pixel"
        assert (found.raw["fallback_from"], found.raw["error"]) == ("mine", "RuntimeError: bug in a plugin")
        with pytest.raises(AssistantError, match=r"^Unknown grounding format 'qwen9'\. Use one of: .*generic"):
            core.parse_with_fallback(formats, "qwen9", "norm1000", "", (10, 10), None)
