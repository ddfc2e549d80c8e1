"""The command palette's provider: every app action and every /command (plugins' included)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from textual.command import DiscoveryHit, Hit, Hits, Provider


@dataclass(frozen=True)
class PaletteEntry:
    title: str
    help: str
    run: Callable[[], object]


class AssistantCommands(Provider):
    """Lists `app.palette_entries()`; typing filters them with Textual's fuzzy matcher."""

    def _entries(self) -> list[PaletteEntry]:
        entries = getattr(self.app, "palette_entries", None)
        return list(entries()) if entries is not None else []

    async def discover(self) -> Hits:
        for entry in self._entries():
            yield DiscoveryHit(entry.title, entry.run, help=entry.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for entry in self._entries():
            score = matcher.match(entry.title)
            if score > 0:
                yield Hit(score, matcher.highlight(entry.title), entry.run, help=entry.help)
