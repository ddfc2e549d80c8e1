"""Helpers for the TUI tests: run a scenario, wait for the app, send text, read notifications, fill the store."""

from __future__ import annotations

import asyncio
import functools
import time
from pathlib import Path
from typing import Any, Callable

from assistant.conversation import ImagePart, Message, ReplyMeta, TextPart
from assistant.images import load_image_file
from assistant.store import Store
from assistant.tui.app import AssistantApp

SIZE = (120, 40)


def async_test(function: Callable[..., Any]) -> Callable[..., None]:
    """Run an async test function in a fresh event loop (pytest sees the original signature for fixtures)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(function(*args, **kwargs))

    return wrapper


async def wait_for(pilot: Any, condition: Callable[[], Any], what: str, timeout: float = 60.0) -> None:
    """Let the app run until `condition()` holds (workers and messages keep going while we wait)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if not pilot.app.is_running:
            raise AssertionError(f"the app stopped while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


async def wait_dialog(pilot: Any, selector: str) -> Any:
    """The widget `selector` of the screen on top, once that screen has been composed."""
    await wait_for(pilot, lambda: pilot.app.screen.query(selector), f"a dialog with {selector}")
    return pilot.app.screen.query_one(selector)


async def wait_ready(pilot: Any) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app.load_state in ("ready", "failed"), "the model to load")
    assert app.load_state == "ready", app.load_error


async def wait_reply(pilot: Any) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app.job is None and app.pending is None, "the reply to finish")
    await pilot.pause()


async def type_and_send(pilot: Any, text: str) -> None:
    pilot.app.prompt.insert(text)
    await pilot.pause()
    await pilot.press("enter")
    await pilot.pause()


def notes(app: AssistantApp, severity: str | None = None) -> list[str]:
    return [message for message, level in app.notes if severity is None or level == severity]  # type: ignore[attr-defined]


def saved_chat(
    store: Store,
    title: str,
    question: str,
    answer: str,
    image: Path | None = None,
    rating: int = 0,
) -> int:
    """A chat written straight into the store (no model), with fixed timings so screens are reproducible."""
    conversation = store.create_conversation(title=title, profile="tiny-smolvlm")
    parts: list[Any] = []
    if image is not None:
        part: ImagePart = store.put_image(load_image_file(image))
        parts.append(part)
    parts.append(TextPart(question))
    store.add_message(conversation.id, Message(role="user", parts=parts))
    meta = ReplyMeta(
        profile="tiny-smolvlm", model="tiny-smolvlm", ttft_s=0.42, tokens_per_s=31.5, prompt_tokens=96, completion_tokens=24
    )
    reply = store.add_message(conversation.id, Message(role="assistant", parts=[TextPart(answer)], meta=meta))
    if rating:
        store.set_rating(reply.id, rating)
    return int(conversation.id)


