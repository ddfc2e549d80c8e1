"""A local-first vision-language assistant: chat with a local VLM about images, screenshots and documents.

Public API: Assistant, Chat, Reply (imported lazily so that `import assistant` stays light), hookimpl, AssistantError.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

from .errors import AssistantError
from .openmp import prefer_passive_wait

prefer_passive_wait()  # before torch starts OpenMP: graceful decoding on a busy machine (assistant/openmp.py)

hookimpl = pluggy.HookimplMarker("assistant")

__all__ = ["Assistant", "Chat", "Reply", "AssistantError", "hookimpl"]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from .api import Assistant, Chat, Reply


def __getattr__(name: str) -> Any:
    if name in ("Assistant", "Chat", "Reply"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'assistant' has no attribute {name!r}")
