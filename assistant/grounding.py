"""Grounding's one home: the profile's registered parser over a reply, the generic fallback, the chat's last image.

Every caller (replies, the agent's tools, /ground, `assistant batch --ground`, the grounding plugin's own
`parse_reply`) goes through `parse_with_fallback`, so the fallback and its guard exist once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .conversation import Conversation, ImagePart, Message
from .errors import AssistantError
from .geometry import Grounding

if TYPE_CHECKING:
    from .hooktypes import GroundingFormat
    from .plugins import PluginManager

FALLBACK_SYSTEMS = ("norm1000", "norm1", "pixel")
"""Coordinate systems of the generic fallback parser (a profile's `[grounding] coordinates`)."""


class GroundedChat(Protocol):
    """What grounding needs of a chat (assistant.api.Chat is one): its messages and its assistant."""

    @property
    def conversation(self) -> Conversation: ...

    @property
    def assistant(self) -> Any: ...


def generic_name(system: str) -> str:
    """The name the generic parser in `system` is registered under: generic (0-1000), generic-norm1, generic-pixel."""
    return "generic" if system == "norm1000" else f"generic-{system}"


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
    formats: Mapping[str, "GroundingFormat"],
    name: str,
    coordinates: str,
    text: str,
    image_size: tuple[int, int],
    input_size: tuple[int, int] | None,
) -> Grounding:
    """The named format first; the generic parser in the profile's `coordinates` only if it found nothing.

    Never raises for any text: a parser that raises (a plugin's, called unguarded) gives an empty result with
    `raw["error"]`, which is kept even when the fallback finds shapes; then `raw["fallback_from"]` names the
    profile's format. An unknown format or coordinate system is a configuration mistake: one-line AssistantError.
    """
    if name not in formats:
        raise AssistantError(
            f"Unknown grounding format {name!r}. Use one of: {', '.join(sorted(formats))} "
            "(see `assistant ground --list-formats`)."
        )
    if coordinates not in FALLBACK_SYSTEMS:
        raise AssistantError(
            f"Unknown fallback coordinate system {coordinates!r}. Use one of: {', '.join(FALLBACK_SYSTEMS)}."
        )
    try:
        grounding = formats[name].parse(text, image_size, input_size)
    except Exception as error:  # noqa: BLE001 - a parser must never lose a reply
        grounding = Grounding(format=name, raw={"error": f"{type(error).__name__}: {error}"[:500]})
    if grounding.shapes:
        return grounding
    generic = formats.get(generic_name(coordinates))
    if generic is None or generic.name == name:
        return grounding
    fallback = generic.parse(text, image_size, input_size)
    if not fallback.shapes:
        return grounding
    if "error" in grounding.raw:  # the profile's parser failed: say so even though the fallback found shapes
        fallback.raw["error"] = grounding.raw["error"]
    fallback.raw["fallback_from"] = name
    return fallback


def ground_reply(
    chat: GroundedChat, text: str, input_sizes: dict[str, tuple[int, int]] | None = None
) -> Grounding | None:
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
