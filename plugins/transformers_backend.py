"""Built-in plugin: the `transformers` backend (the model runs in this process)."""

from __future__ import annotations

from typing import Callable

from assistant import hookimpl
from assistant.hooktypes import Backend


@hookimpl
def register_backends(register: Callable[[Backend], None]) -> None:
    from assistant.engine.backend import NAME, TransformersBackend

    register(
        Backend(
            name=NAME,
            load=TransformersBackend.load,
            description="transformers in this process (CPU, CUDA or Apple MPS); LoRA adapters, KV reuse",
        )
    )
