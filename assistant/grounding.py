"""Core glue for grounding: run the profile's registered parser over a reply, against the chat's last image."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .conversation import ImagePart, Message
from .errors import AssistantError

if TYPE_CHECKING:
    from .api import Chat
    from .geometry import Grounding
    from .hooktypes import GroundingFormat
    from .plugins import PluginManager


def grounding_formats(plugins: "PluginManager") -> dict[str, "GroundingFormat"]:
    """Every format registered through `register_grounding_formats`, by name.

    `collect` resolves name clashes (the built-in wins unless the plugin's format says override=True) and hands
    back third-party parsers guarded: they never raise, and an invalid result comes back empty with
    `raw["error"]` naming the plugin.
    """
    formats: dict[str, "GroundingFormat"] = {}
    for fmt in plugins.collect("register_grounding_formats"):
        formats.setdefault(fmt.name, fmt)
    return formats


def last_image(messages: list[Message]) -> ImagePart | None:
    for message in reversed(messages):
        if message.images:
            return message.images[-1]
    return None


def parse_with_fallback(
    formats: dict[str, "GroundingFormat"],
    name: str,
    coordinates: str,
    text: str,
    image_size: tuple[int, int],
    input_size: tuple[int, int] | None,
) -> "Grounding | None":
    """The named format first; the generic list parser (in the profile's coordinates) only if it found nothing."""
    if name not in formats:
        raise AssistantError(
            f"grounding format {name!r} is not registered; `assistant ground --list-formats` lists the formats"
        )
    grounding = formats[name].parse(text, image_size, input_size)
    if grounding.shapes:
        return grounding
    generic = formats.get(f"generic-{coordinates}") or formats.get("generic")
    if generic is not None and generic.name != name:
        fallback = generic.parse(text, image_size, input_size)
        if fallback.shapes:
            if "error" in grounding.raw:  # the profile's parser failed: say so even though the fallback found shapes
                fallback.raw["error"] = grounding.raw["error"]
            fallback.raw["fallback_from"] = name
            return fallback
    return grounding


def ground_reply(
    chat: "Chat", text: str, input_sizes: dict[str, tuple[int, int]] | None = None
) -> "Grounding | None":
    """Geometry in the reply, in pixels of the chat's most recent image; None when there is no image.

    `input_sizes` (from the prompt the reply answered) saves running the image processor again.
    """
    image = last_image(chat.conversation.messages)
    if image is None:
        return None
    assistant = chat.assistant
    formats = grounding_formats(assistant.plugins)
    if not formats:
        return None
    settings = assistant.profile.grounding
    known = input_sizes or {}
    input_size = known[image.sha256] if image.sha256 in known else model_input_size(assistant, image)
    grounding = parse_with_fallback(
        formats, settings.format, settings.coordinates, text, (image.width, image.height), input_size
    )
    if grounding is not None:
        grounding.raw["image_sha256"] = image.sha256
    return grounding


def model_input_size(assistant: Any, image: ImagePart) -> tuple[int, int] | None:
    """The size the model saw the image at, for formats in absolute input pixels (Qwen2.5-VL)."""
    if not assistant.loaded:
        return None
    engine = getattr(assistant.backend, "engine", None)
    if engine is None:
        return None  # a remote server resizes with its own processor: only the reply's own sizes are known
    from .engine import executor
    from .engine.inputs import model_input_size as engine_input_size

    return executor.run(engine_input_size, engine.loaded, assistant.store.open_image(image))
