"""TUI commands of the grounding plugin: /ground THING asks the model to locate it, /zoom N crops box N."""

from __future__ import annotations

from typing import Any, Callable

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


ReplyParser = Callable[[list[Message], Message], "dict[str, Any] | None"]


def last_grounded(messages: list[Message], parse: ReplyParser | None = None) -> dict[str, Any] | None:
    """The grounding of the newest reply that has boxes: stored with the reply, else (with `parse`) found in its text.

    Replies imported from a dataset file or written before grounding existed carry no stored grounding; `parse`
    gets the messages before such a reply and the reply, and returns the stored form or None.
    """
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message.role != "assistant":
            continue
        if message.meta and message.meta.extra.get("grounding"):
            return message.meta.extra["grounding"]
        if parse is not None:
            found = parse(messages[:index], message)
            if found:
                return found
    return None


def reply_parser(chat: Any) -> ReplyParser:
    """Parse a stored reply's text in the chat profile's grounding format, against the last image before it."""
    from assistant.geometry import shape_to_dict
    from assistant.grounding import grounding_formats, last_image, model_input_size, parse_with_fallback

    assistant = chat.assistant
    formats = grounding_formats(assistant.plugins)
    settings = assistant.profile.grounding

    def parse(before: list[Message], reply: Message) -> dict[str, Any] | None:
        image = last_image(before)
        if image is None or not reply.text.strip() or not formats:
            return None
        grounding = parse_with_fallback(formats, settings.format, settings.coordinates, reply.text,
                                        (image.width, image.height), model_input_size(assistant, image))
        if grounding is None or not grounding.shapes:
            return None
        return {"image": image.sha256, "format": grounding.format, "shapes": [shape_to_dict(s) for s in grounding.shapes]}

    return parse


def zoom_command(context: SlashContext, argument: str) -> None:
    """Crop box N of the latest grounded reply from the full-resolution original and attach the crop.

    A reply without stored boxes (imported, or saved before grounding) is parsed in the profile's format.
    """
    chat = context.chat
    grounding = last_grounded(chat.messages, reply_parser(chat)) if chat is not None else None
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
