"""Textual Binding objects built from the key table in config.py (one source for keys, footer and help)."""

from __future__ import annotations

from textual.binding import Binding

from .config import KEY_SPECS


def bindings(scope: str) -> list[Binding]:
    """The bindings of one scope, each with its id so the user's [keys] table can remap it."""
    return [
        Binding(
            spec.keys,
            spec.action,
            spec.label or spec.description,
            show=spec.footer,
            id=spec.id,
            priority=spec.priority,
            tooltip=spec.description,
        )
        for spec in KEY_SPECS
        if spec.scope == scope and spec.binding
    ]
