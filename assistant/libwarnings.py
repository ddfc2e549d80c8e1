"""Route warnings raised inside the ML libraries (transformers, torch, peft, trl, ...) to the log file.

Their FutureWarnings and deprecation notices are for the assistant's developers, not for the person
reading a reply or a training run: printed on stderr they break CLI output and scripts. Warnings from
any other code (the user's own, the assistant's) are still shown as Python shows them.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger("assistant.libraries")

LIBRARIES = frozenset(
    {"transformers", "torch", "torchvision", "peft", "trl", "accelerate", "huggingface_hub", "tokenizers",
     "bitsandbytes", "datasets", "safetensors"}
)
"""Top-level packages whose warnings go to the log."""

_shown_by_python: Any = None


def from_library(filename: str) -> bool:
    """True when a warning was raised from a file inside one of LIBRARIES."""
    parts = Path(filename).parts
    return any(part in LIBRARIES for part in parts[-6:-1])


def route_library_warnings() -> None:
    """Install the routing once (idempotent; later calls do nothing)."""
    global _shown_by_python
    if _shown_by_python is not None:
        return
    _shown_by_python = warnings.showwarning

    def showwarning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if from_library(filename):
            log.info("%s: %s (%s:%s)", category.__name__, message, filename, lineno)
            return
        _shown_by_python(message, category, filename, lineno, file, line)

    warnings.showwarning = showwarning
