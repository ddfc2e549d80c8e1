"""Tool calls in model replies: parse them (Hermes/Qwen `<tool_call>` and a plain JSON fallback), describe tools.

Pure Python. Parsing never raises: a call the model wrote badly comes back with `error` set, so the agent can
hand the model an error result and let it try again. The same module renders calls and tool results as text
for chat templates that have no tool support, so what a model is prompted with, what it is trained on and
what the parser reads are one format.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
_HERMES = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")

FALLBACK_EXAMPLE = '{"tool": "NAME", "arguments": {...}}'
RESULT_LABEL = "Tool result:"
"""The first line of a tool result shown to a model whose chat template has no tool role (as a user turn)."""

FORMAT_HINT = (
    'write exactly one JSON object per call, e.g. <tool_call>{"name": "screenshot", "arguments": {}}</tool_call> '
    'or {"tool": "screenshot", "arguments": {}}'
)


@dataclass
class ParsedCall:
    """One tool call found in a reply. `error` is set (and name/arguments may be empty) when it was malformed."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    raw: str = ""
    """The text of the call as the model wrote it."""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class ParsedReply:
    """A reply split into what it says to the user (`text`, calls removed) and the calls it makes."""

    text: str
    calls: list[ParsedCall] = field(default_factory=list)


def valid_tool_name(name: str) -> bool:
    """Letters, digits, `_`, `.` and `-`, starting with a letter or `_`, at most 64 characters."""
    return bool(_NAME.match(name))


def _as_call(value: Any, raw: str) -> ParsedCall | None:
    """A call from a decoded JSON value, None when the value is not shaped like a call at all."""
    if not isinstance(value, dict):
        return None
    function = value.get("function")
    if isinstance(function, dict) and ("name" in function or "arguments" in function):
        value = function
    if "tool" in value and isinstance(value["tool"], str):
        name = value["tool"]
    elif "name" in value and isinstance(value["name"], str):
        name = value["name"]
    elif "tool" in value or "name" in value:
        return ParsedCall(name="", raw=raw, error=f"the tool name must be a string; {FORMAT_HINT}")
    else:
        return None
    arguments: Any = value.get("arguments", value.get("parameters", {}))
    if arguments is None:
        arguments = {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError as error:
            return ParsedCall(name=name, raw=raw, error=f"the arguments of {name} are not valid JSON ({error})")
    if not isinstance(arguments, dict):
        return ParsedCall(name=name, raw=raw, error=f"the arguments of {name} must be a JSON object, not {_kind(arguments)}")
    if not _NAME.match(name):
        return ParsedCall(name=name, arguments=arguments, raw=raw, error=f"{name!r} is not a tool name")
    return ParsedCall(name=name, arguments=arguments, raw=raw)


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false"}.get(
        type(value), type(value).__name__
    )


def _decode_block(body: str, raw: str) -> ParsedCall:
    text = _FENCE.sub("", body.strip()).strip()
    if not text:
        return ParsedCall(name="", raw=raw, error=f"the tool call is empty; {FORMAT_HINT}")
    try:
        value, end = json.JSONDecoder().raw_decode(text)
    except ValueError as error:
        return ParsedCall(name="", raw=raw, error=f"the tool call is not valid JSON ({error}); {FORMAT_HINT}")
    call = _as_call(value, raw)
    if call is None:
        return ParsedCall(name="", raw=raw, error=f"the tool call has no tool name; {FORMAT_HINT}")
    if text[end:].strip():
        call.error = call.error or f"unexpected text after the tool call's JSON; {FORMAT_HINT}"
    return call


def _hermes(text: str) -> ParsedReply | None:
    matches = list(_HERMES.finditer(text))
    if not matches:
        return None
    calls = [_decode_block(match.group(1), match.group(0)) for match in matches]
    outside = _HERMES.sub("", text).replace(TOOL_CALL_CLOSE, "")
    return ParsedReply(text=outside.strip(), calls=calls)


def _json_objects(text: str) -> list[tuple[int, int, Any]]:
    """(start, end, value) of every top-level JSON object in free text, left to right."""
    decoder = json.JSONDecoder()
    found: list[tuple[int, int, Any]] = []
    index = text.find("{")
    while index != -1:
        try:
            value, end = decoder.raw_decode(text, index)
        except ValueError:
            index = text.find("{", index + 1)
            continue
        found.append((index, end, value))
        index = text.find("{", end)
    return found


def _plain_json(text: str) -> ParsedReply | None:
    calls: list[ParsedCall] = []
    spans: list[tuple[int, int]] = []
    for start, end, value in _json_objects(text):
        call = _as_call(value, text[start:end])
        if call is not None and ("tool" in value or "arguments" in value or "function" in value):
            calls.append(call)
            spans.append((start, end))
    if not calls:
        stripped = _FENCE.sub("", text.strip()).strip()
        if stripped.startswith("{") and re.search(r'"(tool|name)"\s*:', stripped):
            return ParsedReply(text="", calls=[_decode_block(stripped, text.strip())])
        return None
    outside = text
    for start, end in reversed(spans):
        outside = outside[:start] + outside[end:]
    outside = re.sub(r"```[a-zA-Z]*\s*```", "", outside)
    return ParsedReply(text=outside.strip(), calls=calls)


def parse_tool_calls(text: str) -> ParsedReply:
    """The tool calls in a reply, in order: `<tool_call>...</tool_call>` blocks, else bare JSON objects with a
    "tool" (or "name" + "arguments") key. A reply without calls is a final answer: `calls` is empty.

    Never raises; a malformed call is returned with `error` set.
    """
    try:
        return _hermes(text) or _plain_json(text) or ParsedReply(text=text.strip())
    except Exception as error:  # noqa: BLE001 - parsing model output must never take the loop down
        return ParsedReply(text="", calls=[ParsedCall(name="", raw=text, error=f"unreadable tool call ({error})")])


# --- describing tools -----------------------------------------------------------------------------------------------


def tool_spec(name: str, description: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """A tool in the OpenAI/Hugging Face function format that chat templates accept as `tools=`."""
    return {"type": "function", "function": {"name": name, "description": description, "parameters": dict(parameters)}}


def _signature(parameters: Mapping[str, Any]) -> str:
    properties = parameters.get("properties") or {}
    required = set(parameters.get("required") or [])
    items = []
    for key, schema in properties.items():
        kind = schema.get("type", "any") if isinstance(schema, dict) else "any"
        if isinstance(schema, dict) and schema.get("enum"):
            kind = "|".join(json.dumps(choice) for choice in schema["enum"])
        items.append(f"{key}{'' if key in required else '?'}: {kind}")
    return ", ".join(items)


def fallback_instructions(tools: Sequence[Mapping[str, Any]]) -> str:
    """System-prompt text that teaches a model without native tool support to call `tools` (function specs)."""
    lines = [
        "You can use tools. To call one, reply with only this JSON and nothing else:",
        FALLBACK_EXAMPLE,
        "The tool's result comes back in the next message. Answer normally, without JSON, once you know enough.",
        "Tools:",
    ]
    for spec in tools:
        function = spec.get("function", spec)
        lines.append(f"- {function['name']}({_signature(function.get('parameters') or {})}): {function.get('description', '')}")
    return "\n".join(lines)


def call_text(name: str, arguments: Mapping[str, Any]) -> str:
    """A call as a model without native tool support writes it (the fallback format)."""
    return json.dumps({"tool": name, "arguments": dict(arguments)}, ensure_ascii=False)


def result_text(text: str) -> str:
    """A tool result as a model without a tool role reads it (inside a user turn)."""
    return f"{RESULT_LABEL}\n{text}" if text else RESULT_LABEL


# --- checking arguments ---------------------------------------------------------------------------------------------

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def _type_ok(value: Any, kind: Any) -> bool:
    kinds = kind if isinstance(kind, list) else [kind]
    for name in kinds:
        accepted = _TYPES.get(name)
        if accepted is None:
            return True
        if isinstance(value, bool) and name in ("integer", "number"):
            continue
        if isinstance(value, accepted):
            return True
    return False


def check_arguments(parameters: Mapping[str, Any], arguments: Mapping[str, Any]) -> str | None:
    """What is wrong with `arguments` for a tool's JSON schema (required, unknown keys, types, enums), else None.

    Deliberately small: the subset of JSON schema tools here use; a tool still checks its own values.
    """
    properties: Mapping[str, Any] = parameters.get("properties") or {}
    for key in parameters.get("required") or []:
        if key not in arguments:
            return f"missing required argument {key!r}"
    if parameters.get("additionalProperties") is False or properties:
        unknown = [key for key in arguments if key not in properties]
        if unknown:
            known = ", ".join(properties) or "none"
            return f"unknown argument {unknown[0]!r} (arguments: {known})"
    for key, value in arguments.items():
        schema = properties.get(key)
        if not isinstance(schema, dict):
            continue
        if "type" in schema and not _type_ok(value, schema["type"]):
            return f"argument {key!r} must be of type {schema['type']}, not {_kind(value)}"
        if "enum" in schema and value not in schema["enum"]:
            return f"argument {key!r} must be one of {', '.join(json.dumps(v) for v in schema['enum'])}"
        if schema.get("type") == "array" and isinstance(schema.get("items"), dict) and "type" in schema["items"]:
            for item in value:
                if not _type_ok(item, schema["items"]["type"]):
                    return f"argument {key!r} must hold items of type {schema['items']['type']}"
            if "minItems" in schema and len(value) < schema["minItems"]:
                return f"argument {key!r} needs at least {schema['minItems']} items"
            if "maxItems" in schema and len(value) > schema["maxItems"]:
                return f"argument {key!r} takes at most {schema['maxItems']} items"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                return f"argument {key!r} must be at least {schema['minimum']}"
            if "maximum" in schema and value > schema["maximum"]:
                return f"argument {key!r} must be at most {schema['maximum']}"
    return None
