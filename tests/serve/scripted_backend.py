"""A third-party backend plugin for the server tests: replies are scripted from what the backend was given.

The tests install it as a real entry point (a dist-info folder on the server process's PYTHONPATH), so
`assistant serve` loads it exactly as it would a pip-installed plugin. It lets the tests check what the
server hands a backend (messages, images, tools, sampling, adapter) and drive paths a tiny random model
cannot: a tool call, a reply that waits until released, a reply that never ends until cancelled.

What the last user message says picks the reply:
- tools offered: `Let me check. <tool_call>{"name": FIRST TOOL, "arguments": {"city": "Paris"}}</tool_call>`;
- after a tool message: `The tool said: RESULT`;
- `wait:PATH`: nothing until the file PATH exists (or the reply is cancelled), then `released`;
- `endless`: `tick ` until cancelled;
- anything else: a JSON description of the request (the server's conversion, as the backend saw it).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from assistant import hookimpl
from assistant.conversation import ImagePart, TextPart, ToolCallPart, ToolResultPart
from assistant.hooktypes import Backend, BackendCapabilities, BackendInfo, GenerationRequest, GenerationStats


class ScriptedReply:
    def __init__(self, pieces: Iterator[str], stop: threading.Event, release: Callable[[], None]) -> None:
        self.stats = GenerationStats(prompt_tokens=7)
        self.input_sizes: dict[str, tuple[int, int]] = {}
        self.dropped = 0
        self.finished = False
        self._pieces = pieces
        self._stop = stop
        self._release = release

    def cancel(self) -> None:
        self._stop.set()

    def __iter__(self) -> Iterator[str]:
        try:
            for piece in self._pieces:
                if self._stop.is_set():
                    break
                self.stats.completion_tokens += 1
                yield piece
            self.stats.stopped = self._stop.is_set()
            self.stats.finish_reason = "stopped" if self.stats.stopped else "eos"
        finally:
            self.finished = True
            self._release()


def _describe(request: GenerationRequest, adapter: str | None) -> str:
    messages = []
    for message in request.messages:
        parts: list[dict[str, Any]] = []
        for part in message.parts:
            if isinstance(part, TextPart):
                parts.append({"text": part.text})
            elif isinstance(part, ImagePart):
                image = request.open_image(part)
                parts.append({"image": [part.width, part.height], "opened": list(image.size), "mode": image.mode})
            elif isinstance(part, ToolCallPart):
                parts.append({"call": part.name, "arguments": part.arguments, "id": part.call_id})
            elif isinstance(part, ToolResultPart):
                parts.append({"result": part.text, "name": part.name, "id": part.call_id})
        messages.append({"role": message.role, "parts": parts})
    settings = request.settings
    return json.dumps({
        "adapter": adapter,
        "system": request.system_prompt,
        "messages": messages,
        "tools": [tool["function"]["name"] for tool in request.tools or []],
        "max_new_tokens": request.max_new_tokens,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "seed": settings.seed,
    })


class ScriptedServeBackend:
    name = "scripted-serve"
    capabilities = BackendCapabilities(adapters=True, tools=True, max_context=4096)

    def __init__(self) -> None:
        self.adapter: str | None = None
        self._busy = threading.Lock()

    @property
    def info(self) -> BackendInfo:
        return BackendInfo(profile="scripted", model="scripted", adapter=self.adapter, context_limit=4096)

    def set_adapter(self, name: str | None) -> None:
        self.adapter = name

    def close(self) -> None:
        pass

    def stream(self, request: GenerationRequest) -> ScriptedReply:
        from assistant.errors import AssistantError

        if not self._busy.acquire(blocking=False):  # the protocol: one reply at a time per backend
            raise AssistantError("a reply is still being generated (the server overlapped two generations)")
        stop = threading.Event()
        last = request.messages[-1]
        text = last.text.strip()
        if last.role == "tool":
            pieces = _words("The tool said: " + " ".join(p.text for p in last.parts if isinstance(p, ToolResultPart)))
        elif request.tools:
            name = request.tools[0]["function"]["name"]
            call = json.dumps({"name": name, "arguments": {"city": "Paris"}})
            pieces = _chunks(f"Let me check. <tool_call>{call}</tool_call>", 3)
        elif text.startswith("wait:"):
            pieces = _wait(Path(text[5:]), stop)
        elif text == "endless":
            pieces = _endless(stop)
        else:
            pieces = _chunks(_describe(request, self.adapter), 16)
        return ScriptedReply(pieces, stop, self._busy.release)


def _words(text: str) -> Iterator[str]:
    for index, word in enumerate(text.split(" ")):
        yield word if index == 0 else " " + word


def _chunks(text: str, size: int) -> Iterator[str]:
    for start in range(0, len(text), size):
        yield text[start : start + size]


def _wait(path: Path, stop: threading.Event) -> Iterator[str]:
    while not path.exists() and not stop.is_set():
        time.sleep(0.02)
    yield "released"


def _endless(stop: threading.Event) -> Iterator[str]:
    while not stop.is_set():
        time.sleep(0.005)
        yield "tick "


def _load(profile: Any, progress: Callable[[str, float | None], None] | None = None) -> ScriptedServeBackend:
    return ScriptedServeBackend()


@hookimpl
def register_backends(register: Callable[[Backend], None]) -> None:
    register(Backend(name="scripted-serve", load=_load, description="scripted replies for the server tests"))
