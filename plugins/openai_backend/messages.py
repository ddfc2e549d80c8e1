"""A saved conversation as OpenAI chat messages: images as base64 data URLs, tool calls and results as the API has them.

Pure conversion (PIL only): images are downscaled to the profile's pixel budget before they are encoded, so a
4K screenshot is not sent at full size, and the size sent is reported back for grounding.
"""

from __future__ import annotations

import base64
import io
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from assistant.conversation import ImagePart, Message, TextPart, ToolCallPart, ToolResultPart
from assistant.errors import AssistantError

if TYPE_CHECKING:
    from PIL.Image import Image

    from assistant.profiles import ImageSettings

DEFAULT_LONGEST_EDGE = 2048
"""Without a budget in the profile: the longest edge SmolVLM's and most servers' processors use at most."""


@dataclass
class OpenAIPrompt:
    messages: list[dict[str, Any]] = field(default_factory=list)
    input_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Image sha256 -> the (width, height) that was sent."""


def fit_size(width: int, height: int, settings: "ImageSettings") -> tuple[int, int]:
    """The size to send: within `max_pixels` (area) or `longest_edge`, never upscaled."""
    scale = 1.0
    if settings.max_pixels and width * height > settings.max_pixels:
        scale = math.sqrt(settings.max_pixels / (width * height))
    else:
        edge = settings.longest_edge or DEFAULT_LONGEST_EDGE
        if max(width, height) > edge:
            scale = edge / max(width, height)
    return max(1, int(width * scale)), max(1, int(height * scale))


def data_url(image: "Image", size: tuple[int, int]) -> str:
    """The image as a PNG data URL (lossless: text in screenshots stays readable)."""
    from PIL import Image as PILImage

    picture = image if image.size == size else image.resize(size, PILImage.Resampling.LANCZOS)
    if picture.mode not in ("RGB", "RGBA", "L"):
        picture = picture.convert("RGB")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def to_openai(
    messages: Sequence[Message],
    open_image: Callable[[ImagePart], "Image"],
    settings: "ImageSettings",
    system_prompt: str = "",
) -> OpenAIPrompt:
    prompt = OpenAIPrompt()
    if system_prompt.strip():
        prompt.messages.append({"role": "system", "content": system_prompt})
    encoded: dict[str, str] = {}

    def image_content(part: ImagePart) -> dict[str, Any]:
        if part.sha256 not in encoded:
            size = fit_size(part.width, part.height, settings)
            encoded[part.sha256] = data_url(open_image(part), size)
            prompt.input_sizes[part.sha256] = size
        return {"type": "image_url", "image_url": {"url": encoded[part.sha256]}}

    for message in messages:
        if message.role == "system":
            prompt.messages.append({"role": "system", "content": message.text})
        elif message.role == "user":
            if message.videos:  # e.g. a chat started on a local SmolVLM2 profile, continued on a server
                raise AssistantError(
                    f"this chat has a video ({message.videos[0].source}) and the openai backend does not send videos "
                    "(their frames are not sent as images); continue it with a local SmolVLM2 or Qwen2-VL profile"
                )
            content: list[dict[str, Any]] = [image_content(part) for part in message.images]
            if message.text:
                content.append({"type": "text", "text": message.text})
            prompt.messages.append({"role": "user", "content": content if message.images else message.text})
        elif message.role == "assistant":
            prompt.messages.append(_assistant(message))
        elif message.role == "tool":
            prompt.messages.extend(_tool(message, image_content))
    return prompt


def _assistant(message: Message) -> dict[str, Any]:
    calls = [part for part in message.parts if isinstance(part, ToolCallPart)]
    text = "".join(part.text for part in message.parts if isinstance(part, TextPart))
    entry: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        entry["tool_calls"] = [
            {
                "id": call.call_id or f"call_{index}",
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)},
            }
            for index, call in enumerate(calls)
        ]
    return entry


def _tool(message: Message, image_content: Callable[[ImagePart], dict[str, Any]]) -> list[dict[str, Any]]:
    """A tool message; its images (a screenshot tool's capture) follow as a user message: the API's tool role
    carries text only."""
    entries: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, ToolResultPart):
            text = ("error: " if part.is_error else "") + part.text
            entries.append({"role": "tool", "tool_call_id": part.call_id or "call_0", "content": text or "(no output)"})
    if message.images:
        names = ", ".join(sorted({part.name for part in message.parts if isinstance(part, ToolResultPart)})) or "the tool"
        content = [image_content(part) for part in message.images]
        content.append({"type": "text", "text": f"(images returned by {names})"})
        entries.append({"role": "user", "content": content})
    return entries
