"""`assistant eval`: standard benchmark formats (MMBench, MMMU, DocVQA, ScreenSpot, preference pairs) and our own
JSONL, asked through the batch engine, scored, compared base vs adapter with a significance test, and kept with
the adapter. One module per format; `metrics` holds the scores and tests, `cli` the command."""

from __future__ import annotations

from typing import Any

from ..errors import AssistantError

FORMAT_NAMES = ("mmbench", "mmmu", "docvqa", "screenspot", "preference", "jsonl")


def get_format(name: str) -> Any:
    """A fresh reader/scorer for format `name`; an unknown name is a one-line error listing the known ones."""
    if name == "mmbench":
        from .mmbench import MMBench

        return MMBench()
    if name == "mmmu":
        from .mmmu import MMMU

        return MMMU()
    if name == "docvqa":
        from .docvqa import DocVQA

        return DocVQA()
    if name == "screenspot":
        from .screenspot import ScreenSpot

        return ScreenSpot()
    if name == "jsonl":
        from .jsonl import JsonlFormat

        return JsonlFormat()
    if name == "preference":
        from .preference import PreferenceFormat

        return PreferenceFormat()
    raise AssistantError(f"unknown --format {name!r}; use one of {', '.join(FORMAT_NAMES)}")
