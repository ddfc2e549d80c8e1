"""Parsing tool calls from replies (Hermes/Qwen tags and the plain JSON fallback), argument checks, descriptions."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.toolcalls import (
    call_text,
    check_arguments,
    fallback_instructions,
    parse_tool_calls,
    result_text,
    tool_spec,
)


def test_hermes_call_with_newlines_like_qwen_writes_it():
    reply = parse_tool_calls('<tool_call>\n{"name": "zoom", "arguments": {"box": [1, 2, 3, 4]}}\n</tool_call>')
    (call,) = reply.calls
    assert call.ok and call.name == "zoom" and call.arguments == {"box": [1, 2, 3, 4]}
    assert reply.text == ""


def test_text_around_calls_is_kept_and_several_calls_are_found_in_order():
    reply = parse_tool_calls(
        'First I look. <tool_call>{"name": "a", "arguments": {}}</tool_call> then '
        '<tool_call>{"name": "b", "arguments": {"x": 1}}</tool_call>'
    )
    assert [c.name for c in reply.calls] == ["a", "b"]
    assert reply.text == "First I look.  then"


def test_openai_style_function_objects_and_string_arguments_are_accepted():
    reply = parse_tool_calls('<tool_call>{"function": {"name": "f", "arguments": "{\\"k\\": 2}"}}</tool_call>')
    assert reply.calls[0].ok and reply.calls[0].arguments == {"k": 2}


def test_unclosed_tag_at_the_end_is_still_read():
    (call,) = parse_tool_calls('<tool_call>{"name": "screenshot", "arguments": {}}').calls
    assert call.ok and call.name == "screenshot"


def test_plain_json_fallback_and_code_fences():
    (call,) = parse_tool_calls('{"tool": "screenshot", "arguments": {"monitor": 2}}').calls
    assert call.ok and call.name == "screenshot" and call.arguments == {"monitor": 2}
    reply = parse_tool_calls('Sure.\n```json\n{"tool": "zoom", "arguments": {"box": [0, 0, 5, 5]}}\n```')
    assert reply.calls[0].name == "zoom" and reply.text == "Sure."


def test_answers_without_calls_are_answers():
    for text in ["The screen shows a terminal.", 'A dict: {"name": "Bob"} is just data.', "", "{ not json"]:
        reply = parse_tool_calls(text)
        assert reply.calls == [] and reply.text == text.strip()


def test_malformed_calls_come_back_with_an_error_not_an_exception():
    cases = {
        '<tool_call>{"name": "a", "arguments": </tool_call>': "not valid JSON",
        "<tool_call>   </tool_call>": "empty",
        '<tool_call>{"arguments": {}}</tool_call>': "no tool name",
        '<tool_call>{"name": 3}</tool_call>': "must be a string",
        '<tool_call>{"name": "a", "arguments": 7}</tool_call>': "must be a JSON object",
        '<tool_call>{"name": "a", "arguments": "{broken"}</tool_call>': "not valid JSON",
        '<tool_call>{"name": "a b", "arguments": {}}</tool_call>': "is not a tool name",
        '<tool_call>{"name": "a", "arguments": {}} trailing</tool_call>': "unexpected text",
        '{"tool": "a", "arguments": {': "not valid JSON",
    }
    for text, expected in cases.items():
        (call,) = parse_tool_calls(text).calls
        assert not call.ok and expected in call.error, text
        assert "screenshot" in call.error or "tool name" in call.error or "arguments" in call.error


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(list('<>/{}[]":, abtool_cnme\\\n') + ["<tool_call>", "</tool_call>", '"name"',
                                  '"tool"', '"arguments"'])).map("".join))
def test_parsing_never_raises(text):
    reply = parse_tool_calls(text)
    for call in reply.calls:
        assert isinstance(call.arguments, dict)
        assert call.ok or call.error


@given(
    st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True),
    st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=10), st.booleans()), max_size=4),
)
def test_fallback_call_text_parses_back_to_the_same_call(name, arguments):
    (call,) = parse_tool_calls(call_text(name, arguments)).calls
    assert call.ok and call.name == name and call.arguments == arguments


def test_fallback_instructions_list_each_tool_with_its_arguments():
    specs = [
        tool_spec("screenshot", "Capture the screen.", {"type": "object", "properties": {"monitor": {"type": "integer"}}}),
        tool_spec("pdf_page", "A page.", {"type": "object", "properties": {"path": {"type": "string"}, "page": {
            "type": "integer"}}, "required": ["path", "page"]}),
    ]
    text = fallback_instructions(specs)
    assert '{"tool": "NAME", "arguments": {...}}' in text
    assert "- screenshot(monitor?: integer): Capture the screen." in text
    assert "- pdf_page(path: string, page: integer): A page." in text
    assert result_text("x") == "Tool result:\nx"


def test_argument_checks_follow_the_schema():
    schema = {
        "type": "object",
        "properties": {
            "box": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
            "page": {"type": "integer", "minimum": 1},
            "mode": {"type": "string", "enum": ["a", "b"]},
            "flag": {"type": "boolean"},
        },
        "required": ["box"],
    }
    assert check_arguments(schema, {"box": [1, 2, 3, 4.5]}) is None
    assert "missing required argument 'box'" in check_arguments(schema, {})
    assert "unknown argument 'zz'" in check_arguments(schema, {"box": [1, 2, 3, 4], "zz": 1})
    assert "at least 4 items" in check_arguments(schema, {"box": [1, 2]})
    assert "items of type number" in check_arguments(schema, {"box": [1, 2, 3, "x"]})
    assert "at least 1" in check_arguments(schema, {"box": [1, 2, 3, 4], "page": 0})
    assert "must be of type integer" in check_arguments(schema, {"box": [1, 2, 3, 4], "page": True})
    assert "must be one of" in check_arguments(schema, {"box": [1, 2, 3, 4], "mode": "c"})
    assert check_arguments(schema, {"box": [1, 2, 3, 4], "flag": False}) is None
    json.dumps(schema)  # schemas stay plain JSON
