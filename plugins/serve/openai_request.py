"""Reading an OpenAI chat-completions request into the assistant's own values (messages, images, sampling).

Pure Python plus Pillow for the images: every wrong shape or type is an ApiError (400) naming the field, so a
client learns what to fix; images stay in memory for this request only (nothing is written to the chat store).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from assistant.conversation import ImagePart, Message, Part, TextPart, ToolCallPart, ToolResultPart
from assistant.toolcalls import tool_spec, valid_tool_name

from .errors import ApiError

if TYPE_CHECKING:
    from PIL.Image import Image

MAX_STOPS = 4
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
"""What Pillow may decode from a request: common formats only (never EPS, which runs Ghostscript, or exotic ones)."""


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; above them the server answers 4xx instead of running out of memory."""

    max_body_bytes: int = 32 * 1024 * 1024
    max_images: int = 8
    """Images in the whole conversation of one request."""
    max_image_pixels: int = 4096 * 4096
    """Width x height of each image, checked from its header before it is decoded."""
    max_tokens: int = 4096
    """The largest max_tokens / max_completion_tokens a request may ask for."""


@dataclass
class ChatRequest:
    """One chat-completions request, converted: what the model worker needs to write the reply."""

    model: str
    messages: list[Message]
    images: dict[str, "Image"] = field(default_factory=dict)
    """sha256 of the image bytes -> decoded image (this request's images only)."""
    system_prompt: str | None = None
    """The request's system/developer messages joined; None when it has none (the profile's prompt is used)."""
    tools: list[dict[str, Any]] | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    image_count: int = 0

    def open_image(self, part: ImagePart) -> "Image":
        return self.images[part.sha256]


def bad(message: str, param: str | None = None, code: str | None = None, status: int = 400) -> ApiError:
    return ApiError(status, message, code=code or "invalid_value", param=param)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array",
            dict: "an object"}.get(type(value), type(value).__name__)


def _number(data: dict[str, Any], key: str, low: float, high: float, integer: bool = False) -> Any:
    value = data.get(key)
    if value is None:
        return None
    wanted = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, wanted):
        raise bad(f"{key} must be {'an integer' if integer else 'a number'}, not {_kind(value)}", key, "invalid_type")
    if not low <= value <= high:
        raise bad(f"{key} = {value} must be between {low:g} and {high:g}", key)
    return value


def _flag(data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad(f"{key} must be true or false, not {_kind(value)}", key, "invalid_type")
    return value


def parse_body(body: bytes) -> dict[str, Any]:
    """The JSON object of a request body; anything else is a 400 saying so."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise bad(f"the request body is not valid JSON ({error})", code="invalid_json") from None
    if not isinstance(data, dict):
        raise bad(f"the request body must be a JSON object, not {_kind(data)}", code="invalid_type")
    return data


def parse_chat_request(data: dict[str, Any], limits: Limits) -> ChatRequest:
    """Convert and check a chat-completions request; unknown fields are ignored, as OpenAI's own server does
    for fields a model does not use."""
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise bad("model must be the name of a served model (GET /v1/models lists them)", "model",
                  "invalid_type" if "model" in data else "missing_model")
    raw_messages = data.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise bad("messages must be a non-empty array of {role, content} objects", "messages", "invalid_type")
    n = data.get("n")
    if n is not None and n != 1:
        raise bad(f"n = {json.dumps(n)}: this server writes one choice per request (n = 1)", "n")
    request = ChatRequest(model=model, messages=[])
    request.stream = _flag(data, "stream")
    options = data.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise bad(f"stream_options must be an object, not {_kind(options)}", "stream_options", "invalid_type")
        request.include_usage = _flag(options, "include_usage")
    request.temperature = _number(data, "temperature", 0, 2)
    request.top_p = _number(data, "top_p", 0, 1)
    request.seed = _number(data, "seed", 0, 2**63 - 1, integer=True)
    max_tokens = data.get("max_completion_tokens")
    key = "max_completion_tokens"
    if max_tokens is None:
        max_tokens, key = data.get("max_tokens"), "max_tokens"
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            raise bad(f"{key} must be an integer, not {_kind(max_tokens)}", key, "invalid_type")
        if max_tokens < 1:
            raise bad(f"{key} = {max_tokens} must be at least 1", key)
        if max_tokens > limits.max_tokens:
            raise bad(f"{key} = {max_tokens} is above this server's limit of {limits.max_tokens} "
                      "(assistant serve --max-tokens)", key, "max_tokens_too_large")
        request.max_tokens = max_tokens
    request.stop = _stops(data.get("stop"))
    request.tools = _tools(data)
    system: list[str] = []
    call_names: dict[str, str] = {}
    for index, raw in enumerate(raw_messages):
        message = _message(raw, index, request, limits, call_names, system)
        if message is not None:
            request.messages.append(message)
    if system:
        request.system_prompt = "\n\n".join(system)
    if not request.messages:
        raise bad("messages has no user message to answer (only system messages)", "messages")
    return request


def _stops(value: Any) -> list[str]:
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(stop, str) and stop for stop in stops):
        raise bad("stop must be a string or an array of non-empty strings", "stop", "invalid_type")
    if len(stops) > MAX_STOPS:
        raise bad(f"stop takes at most {MAX_STOPS} strings", "stop")
    return list(stops)


def _tools(data: dict[str, Any]) -> list[dict[str, Any]] | None:
    raw = data.get("tools")
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise bad(f"tools must be an array of function tools, not {_kind(raw)}", "tools", "invalid_type")
    tools = []
    for index, tool in enumerate(raw):
        where = f"tools[{index}]"
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type", "function") != "function" or not isinstance(function, dict):
            raise bad(f"{where} must be {{\"type\": \"function\", \"function\": {{name, parameters}}}}", where, "invalid_type")
        name = function.get("name")
        if not isinstance(name, str) or not valid_tool_name(name):
            raise bad(f"{where}.function.name must be letters, digits, _ . or - (at most 64)", f"{where}.function.name")
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(parameters, dict):
            raise bad(f"{where}.function.parameters must be a JSON schema object", f"{where}.function.parameters",
                      "invalid_type")
        description = function.get("description") or ""
        if not isinstance(description, str):
            raise bad(f"{where}.function.description must be a string", f"{where}.function.description", "invalid_type")
        tools.append(tool_spec(name, description, parameters))
    choice = data.get("tool_choice")
    if choice is not None and not isinstance(choice, (str, dict)):
        raise bad(f"tool_choice must be a string or an object, not {_kind(choice)}", "tool_choice", "invalid_type")
    if choice == "none" or not tools:
        return None
    return tools


def _message(
    raw: Any, index: int, request: ChatRequest, limits: Limits, call_names: dict[str, str], system: list[str]
) -> Message | None:
    where = f"messages[{index}]"
    if not isinstance(raw, dict):
        raise bad(f"{where} must be an object with role and content, not {_kind(raw)}", where, "invalid_type")
    role = raw.get("role")
    content = raw.get("content")
    if role in ("system", "developer"):
        system.append(_plain_text(content, f"{where}.content"))
        return None
    if role == "user":
        return Message(role="user", parts=_user_parts(content, f"{where}.content", request, limits))
    if role == "assistant":
        parts: list[Part] = []
        text = _plain_text(content, f"{where}.content", allow_null=True)
        if text:
            parts.append(TextPart(text))
        parts.extend(_calls(raw.get("tool_calls"), f"{where}.tool_calls", call_names))
        return Message(role="assistant", parts=parts)
    if role == "tool":
        call_id = raw.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise bad(f"{where}.tool_call_id must be the id of the assistant's tool call it answers",
                      f"{where}.tool_call_id", "invalid_type")
        name = call_names.get(call_id) or (raw.get("name") if isinstance(raw.get("name"), str) else "")
        text = _plain_text(content, f"{where}.content")
        return Message(role="tool", parts=[ToolResultPart(call_id=call_id, name=name, text=text)])
    raise bad(f"{where}.role must be system, developer, user, assistant or tool, not {role!r}", f"{where}.role")


def _plain_text(content: Any, where: str, allow_null: bool = False) -> str:
    """Text content: a string or an array of text parts."""
    if content is None and allow_null:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for index, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") not in ("text", "refusal") \
                    or not isinstance(part.get(part.get("type")), str):
                raise bad(f"{where}[{index}] must be a text part {{\"type\": \"text\", \"text\": ...}} here",
                          f"{where}[{index}]", "invalid_type")
            texts.append(part[part["type"]])
        return "".join(texts)
    raise bad(f"{where} must be a string or an array of text parts, not {_kind(content)}", where, "invalid_type")


def _user_parts(content: Any, where: str, request: ChatRequest, limits: Limits) -> list[Part]:
    if isinstance(content, str):
        return [TextPart(content)]
    if not isinstance(content, list):
        raise bad(f"{where} must be a string or an array of content parts, not {_kind(content)}", where, "invalid_type")
    parts: list[Part] = []
    for index, part in enumerate(content):
        at = f"{where}[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append(TextPart(part["text"]))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise bad(f"{at}.image_url.url must be a string (a data: URL)", f"{at}.image_url", "invalid_type")
            parts.append(_image(url, at, request, limits))
        elif isinstance(part, dict) and isinstance(kind, str):
            raise bad(f"{at} has type {kind!r}; this server takes text and image_url parts", at, "unsupported_content")
        else:
            raise bad(f"{at} must be {{\"type\": \"text\", ...}} or {{\"type\": \"image_url\", ...}}", at, "invalid_type")
    return parts


def _image(url: str, where: str, request: ChatRequest, limits: Limits) -> ImagePart:
    """A data:image/...;base64 URL decoded into this request's images (the server never fetches a URL)."""
    from PIL import Image, UnidentifiedImageError

    if not url.startswith("data:"):
        raise bad(f"{where}: only base64 data: URLs are accepted (this server fetches nothing); "
                  "send data:image/png;base64,...", f"{where}.image_url", "unsupported_image_url")
    header, _, payload = url.partition(",")
    if not header.endswith(";base64") or not payload:
        raise bad(f"{where}: the data: URL must be base64 (data:image/png;base64,...)", f"{where}.image_url")
    request.image_count += 1
    if request.image_count > limits.max_images:
        raise bad(f"too many images: this server takes at most {limits.max_images} per request "
                  "(assistant serve --max-images)", f"{where}.image_url", "too_many_images")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise bad(f"{where}: the image's base64 data is not valid", f"{where}.image_url") from None
    def too_large(size: str) -> ApiError:
        return bad(f"{where}: the image is {size} pixels, above this server's limit of {limits.max_image_pixels} "
                   "pixels (assistant serve --max-image-pixels); send it smaller", f"{where}.image_url",
                   "image_too_large")

    try:
        image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
        width, height = image.size
        if width * height > limits.max_image_pixels:  # known from the header: nothing decoded yet
            raise too_large(f"{width}x{height}")
        image.load()
    except ApiError:
        raise
    except Image.DecompressionBombError:  # Pillow's own guard, should the header lie
        raise too_large("too many") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise bad(f"{where}: the image cannot be read ({message}); send PNG, JPEG, WebP, GIF or BMP",
                  f"{where}.image_url", "invalid_image") from None
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    sha = hashlib.sha256(data).hexdigest()
    part = ImagePart(sha256=sha, width=width, height=height, source="request")
    request.images[sha] = image
    return part


def _calls(raw: Any, where: str, call_names: dict[str, str]) -> list[ToolCallPart]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise bad(f"{where} must be an array, not {_kind(raw)}", where, "invalid_type")
    calls = []
    for index, call in enumerate(raw):
        at = f"{where}[{index}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise bad(f"{at} must be {{\"id\", \"type\": \"function\", \"function\": {{name, arguments}}}}", at,
                      "invalid_type")
        arguments: Any = function.get("arguments") or "{}"
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError as error:
                raise bad(f"{at}.function.arguments is not valid JSON ({error})", f"{at}.function.arguments") from None
        if not isinstance(arguments, dict):
            raise bad(f"{at}.function.arguments must be a JSON object", f"{at}.function.arguments", "invalid_type")
        call_id = call.get("id") if isinstance(call.get("id"), str) else ""
        if call_id:
            call_names[call_id] = function["name"]
        calls.append(ToolCallPart(name=function["name"], arguments=arguments, call_id=call_id))
    return calls
