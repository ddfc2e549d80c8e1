"""Text the TUI shows: reply footers, the status line, chat-list dates, error cause/fix splits."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from ..conversation import Message, ReplyMeta

USER_TEXT_LIMIT = 1500
"""User messages longer than this (a document's text plus the question) show only their end."""


def format_when(timestamp: float, now: float | None = None) -> str:
    """A chat-list date: `14:32` today, `Mon 14:32` this week, `2025-03-02` before."""
    now = time.time() if now is None else now
    then = datetime.fromtimestamp(timestamp)
    today = datetime.fromtimestamp(now)
    if then.date() == today.date():
        return then.strftime("%H:%M")
    if 0 <= (today.date() - then.date()).days < 7:
        return then.strftime("%a %H:%M")
    return then.strftime("%Y-%m-%d")


def reply_footer(message: Message, timings: bool = True) -> str:
    """One line under a reply: `TTFT 0.42 s · 31.5 tok/s · 24 tokens · stopped · rated +1 · corrected`."""
    meta = message.meta or ReplyMeta()
    parts: list[str] = []
    if timings:
        if meta.ttft_s is not None:
            parts.append(f"TTFT {meta.ttft_s:.2f} s")
        if meta.tokens_per_s is not None:
            parts.append(f"{meta.tokens_per_s:.1f} tok/s")
        if meta.completion_tokens:
            parts.append(f"{meta.completion_tokens} tokens")
    if message.status == "stopped":
        parts.append("stopped")
    elif message.status == "failed":
        parts.append("failed")
    elif message.status in ("streaming", "interrupted"):
        parts.append("interrupted")
    if meta.adapter:
        parts.append(f"adapter {meta.adapter}")
    for note in meta.extra.get("notes", []) or []:
        parts.append(str(note))
    if message.rating:
        parts.append("rated +1" if message.rating > 0 else "rated -1")
    if message.correction is not None:
        parts.append("corrected")
    return " · ".join(parts)


def user_display_text(text: str, limit: int = USER_TEXT_LIMIT) -> str:
    """A user message for the log: long ones (document text + question) keep their end, where the question is."""
    if len(text) <= limit:
        return text
    hidden = len(text) - limit // 2
    return f"[… {hidden:,} characters of attached text]\n" + text[-(limit // 2) :]


def split_cause_fix(message: str) -> tuple[str, str]:
    """`cause; what to do` -> (cause, what to do); an AssistantError line says both, separated by `; `."""
    cause, separator, fix = message.partition("; ")
    return (cause, fix) if separator else (message, "")


def context_used(messages: list[Message]) -> int:
    """Tokens the last reply's context held: its prompt plus what it generated (0 before any reply)."""
    for message in reversed(messages):
        if message.role == "assistant" and message.meta is not None and message.meta.prompt_tokens:
            return message.meta.prompt_tokens + message.meta.completion_tokens
    return 0


def status_line(
    profile: str,
    model: str,
    device: str,
    adapter: str | None,
    used: int,
    limit: int,
    random_weights: bool = False,
    agent: bool = False,
) -> str:
    """The status bar: `profile │ model │ device │ adapter │ ctx used/limit` (`│ agent` when tools are on)."""
    noise = " (random weights)" if random_weights else ""
    parts = [
        profile,
        f"{model}{noise}",
        device,
        f"adapter {adapter or 'none'}",
        f"ctx {used:,}/{limit:,}" if limit else f"ctx {used:,}/?",
    ]
    if agent:
        parts.append("agent (tools on)")
    return " │ ".join(parts)


def grounding_caption(grounding: Any) -> str:
    """`2 boxes, 1 point (json1000)` for a Grounding."""
    counts: dict[str, int] = {}
    for shape in grounding.shapes:
        counts[shape.kind] = counts.get(shape.kind, 0) + 1
    plural = {"box": "boxes", "point": "points", "polygon": "polygons"}
    parts = [f"{count} {plural.get(kind, kind) if count != 1 else kind}" for kind, count in counts.items()]
    return f"{', '.join(parts)} ({grounding.format})"
