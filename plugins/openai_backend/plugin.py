"""Registers the `openai` backend (`[model] backend = "openai"`, or `--base-url URL --model NAME`)."""

from __future__ import annotations

from typing import Callable

from assistant import hookimpl
from assistant.hooktypes import Backend


@hookimpl
def register_backends(register: Callable[[Backend], None]) -> None:
    from .backend import NAME, OpenAIBackend

    register(
        Backend(
            name=NAME,
            load=OpenAIBackend.load,
            description="an OpenAI-compatible server (vLLM, SGLang, ollama, llama.cpp's llama-server, assistant serve)",
        )
    )
