"""A scripted backend for agent tests: an engine whose replies are given in advance, and tools to call."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, Union

from PIL import Image

from assistant import Assistant
from assistant.conversation import Message
from assistant.hooktypes import BackendCapabilities, BackendInfo, GenerationRequest, GenerationStats, Tool, ToolResult
from assistant.profiles import load_profile

Script = Union[str, Callable[[Sequence[Message]], str]]


class ScriptedTextStream:
    """Yields a reply in pieces; `cancel()` ends it early like the real TextStream (stats.stopped)."""

    def __init__(self, text: str, piece_delay_s: float = 0.0, wait_for_cancel: bool = False) -> None:
        self.text = text
        self.stats = GenerationStats(prompt_tokens=10)
        self._cancel = threading.Event()
        self._delay = piece_delay_s
        self._wait = wait_for_cancel
        self.input_sizes: dict[str, tuple[int, int]] = {}
        self.dropped = 0
        self.finished = False

    def cancel(self) -> None:
        self._cancel.set()

    def __iter__(self):
        produced = ""
        for word in self.text.split(" "):
            if self._cancel.is_set():
                break
            piece = word if not produced else " " + word
            produced += piece
            yield piece
            if self._delay:
                time.sleep(self._delay)
        if self._wait:
            self._cancel.wait(10)
        stats = self.stats
        stats.completion_tokens = len(produced.split())
        stats.ttft_s = 0.001
        stats.stopped = self._cancel.is_set()
        stats.finish_reason = "stopped" if stats.stopped else "eos"
        stats.raw_text = produced
        self.finished = True


@dataclass
class PromptRecord:
    """What one generation was asked with."""

    messages: list[Message]
    system_prompt: str
    tools: list[dict] | None


@dataclass
class ScriptedEngine:
    """A ModelBackend whose replies are given in advance: each `stream` call takes the next scripted reply."""

    script: list[Script]
    prompts: list[PromptRecord] = field(default_factory=list)
    wait_for_cancel_at: int | None = None
    """1-based generation that blocks until cancelled (to test stopping)."""
    name: str = "scripted"
    capabilities: BackendCapabilities = field(default_factory=lambda: BackendCapabilities(max_context=8192))

    @property
    def info(self) -> BackendInfo:
        return BackendInfo(profile="tiny-smolvlm", model="scripted", device="cpu", dtype="float32", context_limit=8192)

    def stream(self, request: GenerationRequest) -> ScriptedTextStream:
        messages = request.messages
        tools = request.tools
        self.prompts.append(PromptRecord(list(messages), request.system_prompt, list(tools) if tools else None))
        if not self.script:
            raise AssertionError("the scripted engine ran out of replies")
        item = self.script.pop(0)
        text = item(messages) if callable(item) else item
        wait = self.wait_for_cancel_at == len(self.prompts)
        return ScriptedTextStream(text, wait_for_cancel=wait)

    def set_adapter(self, name: str | None) -> None:
        raise AssertionError("the scripted backend has no adapters")

    def close(self) -> None:
        pass


def scripted_assistant(script: Sequence[Script], tools: Sequence[Tool] = (), **engine_options: Any) -> tuple[Assistant, ScriptedEngine]:
    """An assistant on the tiny profile whose engine is scripted; `tools` are registered as a test plugin."""
    assistant = Assistant(load_profile("tiny-smolvlm"))
    engine = ScriptedEngine(list(script), **engine_options)
    assistant._backend = engine
    if tools:

        class TestTools:
            from assistant import hookimpl

            @hookimpl
            def register_tools(self, register):
                for tool in tools:
                    register(tool)

        assistant.plugins.register(TestTools(), name="test-tools")
    return assistant, engine


def echo_tool(name: str = "echo", side_effects: bool = False, timeout_s: float = 5.0) -> Tool:
    def run(text: str = "") -> ToolResult:
        return ToolResult(text=f"echo: {text}")

    return Tool(
        name=name,
        description="Repeat the text.",
        parameters={"type": "object", "properties": {"text": {"type": "string"}}, "additionalProperties": False},
        run=run,
        side_effects=side_effects,
        timeout_s=timeout_s,
    )


def image_tool(name: str = "paint", colour: str = "blue") -> Tool:
    def run() -> ToolResult:
        return ToolResult(text=f"a {colour} picture", images=[Image.new("RGB", (64, 48), colour)])

    return Tool(name=name, description="Paint a picture.", parameters={"type": "object", "properties": {}}, run=run)
