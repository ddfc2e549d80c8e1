"""The pieces every eval format shares: the scored item, the unit the headline number averages over, and the
`EvalFormat` interface (read a file into items, score one reply, group scores into units)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .items import EvalItem


@dataclass
class Scored:
    """One item after the model answered: its score (None when it is an error item) and what was parsed."""

    item: EvalItem
    reply: str = ""
    score: float | None = None
    parsed: Any = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.item.id,
            "unit": self.item.unit,
            "category": self.item.category,
            "expected": self.item.expected,
            "reply": self.reply,
            "parsed": self.parsed,
            "score": self.score,
            "error": self.error,
        }


@dataclass
class Unit:
    """What the headline number averages: an item, or MMBench's question over all its rotations."""

    id: str
    category: str
    score: float | None
    """None: an error unit (left out of the average, counted apart)."""
    items: list[str] = field(default_factory=list)


@dataclass
class LoadOptions:
    """What the command line passes to a format's reader."""

    metric: str = "exact"
    """jsonl: exact, contains or anls."""
    grounding_prompt: str = ""
    """screenspot: the profile's "locate {thing}" prompt template."""


class EvalFormat(Protocol):
    name: str
    metric: str
    """The headline metric's name: "accuracy", "circular accuracy", "ANLS", ..."""
    binary: bool
    """Unit scores are 0/1 (McNemar's test) rather than continuous (paired bootstrap)."""
    max_new_tokens: int
    ground: bool
    """Replies are parsed for boxes/points with the profile's grounding format."""

    def load(self, path: Path, options: LoadOptions) -> list[EvalItem]: ...

    def score(self, item: EvalItem, reply: str, grounding: dict[str, Any] | None) -> tuple[float, Any]: ...

    def units(self, scored: list[Scored]) -> list[Unit]: ...


def item_units(scored: list[Scored]) -> list[Unit]:
    """Each item its own unit (every format but MMBench)."""
    return [Unit(entry.item.unit, entry.item.category, entry.score, [entry.item.id]) for entry in scored]
