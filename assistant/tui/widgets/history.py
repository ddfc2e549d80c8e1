"""Drawing a saved chat into the chat log: questions with thumbnails, replies, tool steps, and grounding boxes.

Plain functions over the widgets, given the store and the display settings they need (no app).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...conversation import Conversation, Message
from ...errors import AssistantError
from ..format import grounding_caption
from .chatlog import AssistantMessage, ChatLog, Notice, UserMessage

if TYPE_CHECKING:
    from ...geometry import Grounding
    from ...store import Store

log = logging.getLogger(__name__)


async def show_conversation(
    chat_log: ChatLog, conversation: Conversation, store: "Store", timings: bool, renderer: str
) -> None:
    """Draw a saved chat: questions with thumbnails, replies, each tool call with its result, drawn boxes."""
    from ...agent import stored_steps
    from .toolstep import ToolStep

    await chat_log.reset(welcome=not conversation.messages)
    steps = stored_steps(conversation.messages)
    shown_results = {step.result_index for step in steps if step.result_index is not None}
    widgets: list[Any] = []
    grounded: list[tuple[AssistantMessage, Message]] = []
    results: list[tuple[Any, Any]] = []
    for index, message in enumerate(conversation.messages):
        if message.role == "user":
            images = thumbs(store, message.images) + video_thumbs(store, message.videos)
            widgets.append(UserMessage(message.text, images, renderer=renderer, message_id=message.id))
        elif message.role == "assistant":
            reply = AssistantMessage(message, timings=timings, renderer=renderer)
            widgets.append(reply)
            if message.meta is not None and message.meta.extra.get("grounding"):
                grounded.append((reply, message))
            for step in steps:
                if step.message_index == index:
                    widget = ToolStep(step.call, renderer=renderer, status="no result")
                    widgets.append(widget)
                    if step.result is not None:
                        results.append((widget, step))
        elif message.role == "tool" and index not in shown_results:
            widgets.append(Notice(f"tool result: {message.text[:500]}"))
    if widgets:
        await chat_log.mount_all(widgets)
    for widget, step in results:
        await widget.set_result(step.result, thumbs(store, step.images))
    for reply, message in grounded:
        show_stored_grounding(reply, message, store)
    chat_log.scroll_end(animate=False)


def video_thumbs(store: "Store", videos: list[Any]) -> list[tuple[Path, str]]:
    """A stored video as its first frame, captioned with what was sampled (`clip.mp4, 8 frames at 0.0-7.0 s ...`)."""
    from ...video import describe

    shown = []
    for video in videos:
        try:
            if video.frames:
                shown.append((store.image_path(video.frames[0]), describe(video)))
        except AssistantError:
            continue
    return shown


def thumbs(store: "Store", parts: list[Any]) -> list[tuple[Path, str]]:
    """Stored images as (file, caption) for thumbnails."""
    images = []
    for part in parts:
        try:
            images.append((store.image_path(part.sha256), f"{part.source} {part.width}x{part.height}"))
        except AssistantError:
            continue
    return images


def _draw_function() -> Any:
    """The grounding plugin's drawing helper, when installed."""
    try:
        from assistant_plugins.grounding.draw import draw_grounding
    except ImportError:
        return None
    return draw_grounding


def show_grounding(widget: AssistantMessage, grounding: "Grounding", image_sha: str, store: "Store | None") -> None:
    """The reply's boxes drawn on the image they are about, with a caption."""
    caption = grounding_caption(grounding)
    draw = _draw_function()
    image = None
    if draw is not None and image_sha and store is not None:
        try:
            from PIL import Image as PILImage

            with PILImage.open(store.image_path(image_sha)) as opened:
                image = draw(opened.convert("RGB"), grounding)
        except Exception as error:  # noqa: BLE001 - drawing is a nicety; the reply text is what matters
            log.warning("drawing the grounding failed: %s", error)
            image = None
    widget.show_grounding(image, caption)


def show_stored_grounding(widget: AssistantMessage, message: Message, store: "Store") -> None:
    """The grounding kept with a saved reply, drawn again."""
    from ...geometry import Grounding, shape_from_dict

    data = message.meta.extra.get("grounding") if message.meta is not None else None
    if not isinstance(data, dict):
        return
    try:
        shapes = [shape_from_dict(shape) for shape in data.get("shapes", [])]
        size = data.get("image_size") or (0, 0)
        grounding = Grounding(format=str(data.get("format", "")), shapes=shapes, image_size=(int(size[0]), int(size[1])))
    except (ValueError, KeyError, TypeError, IndexError):
        return
    if grounding.shapes:
        show_grounding(widget, grounding, str(data.get("image", "")), store)
