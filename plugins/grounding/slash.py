"""TUI commands of the grounding plugin: /ground THING asks the model to locate it, /zoom N crops box N."""

from __future__ import annotations

from typing import Any

from assistant.conversation import Message
from assistant.errors import AssistantError
from assistant.geometry import shape_from_dict
from assistant.hooktypes import SlashCommand, SlashContext

from .draw import crop_shape
from .registry import prompt_for


def ground_command(context: SlashContext, argument: str) -> None:
    """Ask the model to locate THING in the chat's latest image, in the profile's own grounding format."""
    thing = argument.strip()
    if not thing:
        raise AssistantError("usage: /ground THING, e.g. /ground the Save button")
    context.send(prompt_for(context.profile.grounding.format, thing), extra={"grounding_request": thing})


def last_grounded(messages: list[Message]) -> dict[str, Any] | None:
    for message in reversed(messages):
        if message.role == "assistant" and message.meta and message.meta.extra.get("grounding"):
            return message.meta.extra["grounding"]
    return None


def zoom_command(context: SlashContext, argument: str) -> None:
    """Crop box N of the latest grounded reply from the full-resolution original and attach the crop."""
    chat = context.chat
    grounding = last_grounded(chat.messages) if chat is not None else None
    if grounding is None:
        raise AssistantError("no boxes to zoom into yet; ask where something is first (/ground THING)")
    shapes = grounding["shapes"]
    try:
        index = int(argument.strip() or "1")
    except ValueError:
        raise AssistantError(f"usage: /zoom N, where N is a box number from 1 to {len(shapes)}") from None
    if not 1 <= index <= len(shapes):
        raise AssistantError(f"there is no box {index}: the last reply has boxes 1 to {len(shapes)}")
    store = chat.assistant.store
    part = next((image for image in chat.conversation.images if image.sha256 == grounding["image"]), None)
    if part is None:
        raise AssistantError("the image those boxes belong to is no longer in this chat")
    crop = crop_shape(store.open_image(part), shape_from_dict(shapes[index - 1]))
    context.attach_image(crop, f"zoom of box {index} in {part.source or 'image'}")


COMMANDS = (
    SlashCommand("ground", "locate THING in the latest image: /ground the Save button", ground_command),
    SlashCommand("zoom", "crop box N of the last grounded reply and attach it: /zoom 2", zoom_command),
)
