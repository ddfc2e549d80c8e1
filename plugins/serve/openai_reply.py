"""Writing the model's reply the way OpenAI clients read it: content deltas, tool calls, stop strings, usage.

The model writes tool calls as text (`<tool_call>{...}</tool_call>`, or the JSON fallback of models without
native tool support); `ReplyText` holds back text that may be a call, so a client never sees the raw tags, and
turns the calls into OpenAI `tool_calls` once the reply is complete.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from assistant.hooktypes import GenerationStats
from assistant.toolcalls import TOOL_CALL_OPEN, ParsedCall, parse_tool_calls

CALL_TRIGGERS = (TOOL_CALL_OPEN, "{", "```")
"""Where a tool call may begin: Hermes/Qwen tags, or the JSON fallback (bare or fenced)."""


def _partial_suffix(text: str, words: tuple[str, ...] | list[str]) -> int:
    """Length of the longest end of `text` that is the beginning of one of `words` (may still become one)."""
    longest = 0
    for word in words:
        for size in range(min(len(word) - 1, len(text)), longest, -1):
            if text.endswith(word[:size]):
                longest = size
                break
    return longest


@dataclass
class ReplyText:
    """Feed the model's pieces; get the content that may be shown now. `finish()` gives the rest and the calls."""

    watch_calls: bool
    stops: list[str] = field(default_factory=list)
    text: str = ""
    sent: int = 0
    held_from: int | None = None
    """Start of a possible tool call: everything from here waits for the end of the reply."""
    stopped: bool = False
    """A stop string was reached: the text ends before it and generation should be cancelled."""

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        self.text += piece
        if self.stops:
            hits = [index for index in (self.text.find(stop, max(0, self.sent - len(stop))) for stop in self.stops)
                    if index >= 0]
            if hits:
                self.text = self.text[: min(hits)]
                self.stopped = True
        limit = len(self.text)
        if self.watch_calls and self.held_from is None:
            starts = [index for index in (self.text.find(word, self.sent) for word in CALL_TRIGGERS) if index >= 0]
            if starts:
                self.held_from = min(starts)
        if self.held_from is not None:
            limit = self.held_from
        elif not self.stopped:
            words = list(self.stops) + (list(CALL_TRIGGERS) if self.watch_calls else [])
            limit -= _partial_suffix(self.text, words)
        if limit <= self.sent:
            return ""
        shown, self.sent = self.text[self.sent : limit], limit
        return shown

    def finish(self) -> tuple[str, list[ParsedCall]]:
        """The content not sent yet, and the well-formed tool calls of the reply (calls the model wrote badly stay
        in the content, as written)."""
        rest = self.text[self.sent :]
        self.sent = len(self.text)
        if self.held_from is None or not self.watch_calls:
            return rest, []
        parsed = parse_tool_calls(rest)
        calls = [call for call in parsed.calls if call.ok]
        if not calls:
            return rest, []
        bad = [call.raw for call in parsed.calls if not call.ok]
        return "\n".join(text for text in (parsed.text, *bad) if text), calls


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def tool_calls(calls: list[ParsedCall], streaming: bool = False) -> list[dict[str, Any]]:
    """Calls as OpenAI `tool_calls` (arguments as a JSON string; stream deltas also carry their index)."""
    entries = []
    for index, call in enumerate(calls):
        entry: dict[str, Any] = {
            "id": new_id("call_"),
            "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)},
        }
        if streaming:
            entry["index"] = index
        entries.append(entry)
    return entries


def usage(stats: GenerationStats) -> dict[str, int]:
    return {
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "total_tokens": stats.prompt_tokens + stats.completion_tokens,
    }


def finish_reason(stats: GenerationStats, reply: ReplyText, calls: list[ParsedCall]) -> str:
    if calls:
        return "tool_calls"
    if not reply.stopped and stats.finish_reason == "length":
        return "length"
    return "stop"


@dataclass
class Envelope:
    """What every object of one reply shares: its id, the model name the client asked for, when it began."""

    model: str
    id: str = field(default_factory=lambda: new_id("chatcmpl-"))
    created: int = field(default_factory=lambda: int(time.time()))

    def completion(self, content: str, calls: list[ParsedCall], reason: str, stats: GenerationStats) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": content or (None if calls else "")}
        if calls:
            message["tool_calls"] = tool_calls(calls)
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reason}],
            "usage": usage(stats),
        }

    def chunk(self, delta: dict[str, Any] | None = None, reason: str | None = None,
              stats: GenerationStats | None = None) -> dict[str, Any]:
        """A stream chunk; with `stats` (and no delta) the final usage chunk, whose choices are empty."""
        data: dict[str, Any] = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                                "model": self.model}
        if stats is not None:
            data["choices"] = []
            data["usage"] = usage(stats)
        else:
            data["choices"] = [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": reason}]
        return data


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event: `data: {...}` (or `data: [DONE]`) and a blank line."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"data: {text}\n\n".encode()
