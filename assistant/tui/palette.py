"""The command palette's provider: every app action and every /command (plugins' included)."""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Protocol

from textual.actions import SkipAction
from textual.command import DiscoveryHit, Hit, Hits, Provider

from .config import key_label

if TYPE_CHECKING:
    from .config import TuiConfig
    from .slash import SlashCommands


@dataclass(frozen=True)
class PaletteEntry:
    title: str
    help: str
    run: Callable[[], object]


class PaletteHost(Protocol):
    """What the palette's entries need of the app."""

    config: "TuiConfig"
    slash: "SlashCommands"

    def run_action(self, action: str) -> Awaitable[bool]: ...

    def prefill(self, text: str) -> None: ...

    def report_error(self, error: BaseException, what: str) -> None: ...


ACTIONS = (  # title, help, action, key binding id ("" when none)
    ("New chat", "Start a new chat; the current one stays saved", "new_chat", "new_chat"),
    ("Show or hide the chat list", "Saved chats, newest first, with search", "toggle_sidebar", "toggle_sidebar"),
    ("Stop the reply", "The partial reply is kept, marked stopped", "stop", "stop"),
    ("Regenerate the last reply", "Answer the last question again", "regenerate", "regenerate"),
    ("Edit the last question", "Change it and send it again", "edit_last", "edit_last"),
    ("Rate the reply up", "The selected or last reply", "rate(1)", "rate_up"),
    ("Rate the reply down", "The selected or last reply", "rate(-1)", "rate_down"),
    ("Correct the reply", "Kept as training data for adapters", "correct", "correct"),
    ("Copy the reply", "To the clipboard", "copy_reply", ""),
    ("Agent mode on/off", "Let the model call tools", "toggle_agent", "toggle_agent"),
)
COMMANDS = (  # title, help, /command run with no argument
    ("Rename this chat", "/rename TITLE", "rename"),
    ("Delete this chat", "Asks first", "delete"),
    ("Export this chat to Markdown", "/export [PATH]", "export"),
)
PREFILLS = (  # title, help, text put in the prompt
    ("Attach an image…", "Fills in /image; Tab completes the path", "/image "),
    ("Switch profile…", "Fills in /profile; Tab lists the profiles", "/profile "),
    ("Switch adapter…", "Fills in /adapter; Tab lists the adapters", "/adapter "),
)


def palette_entries(host: PaletteHost) -> list[PaletteEntry]:
    """Every app action, the chat commands, the prefilling ones, help, then each plugin's /command."""

    def keys(binding_id: str) -> str:
        return f" ({key_label(host.config.keys_for(binding_id))})" if binding_id else ""

    entries = [PaletteEntry(title, help + keys(key), functools.partial(host.run_action, action))
               for title, help, action, key in ACTIONS]
    entries += [PaletteEntry(title, help, functools.partial(host.slash.run, name, "")) for title, help, name in COMMANDS]
    entries += [PaletteEntry(title, help, functools.partial(host.prefill, text)) for title, help, text in PREFILLS]
    entries.append(PaletteEntry("Help: keys and commands", "Every key and /command" + keys("help"),
                                functools.partial(host.run_action, "help")))
    for info in host.slash.table.all():
        if info.plugin is None:
            continue
        if info.complete:
            run: Callable[[], Any] = functools.partial(host.prefill, f"/{info.name} ")
        else:
            run = functools.partial(host.slash.run_plugin, info, "")
        entries.append(PaletteEntry(f"/{info.name}", f"{info.help} (plugin {info.source})", run))
    return [PaletteEntry(entry.title, entry.help, _reporting(host, entry.run)) for entry in entries]


def _reporting(host: PaletteHost, run: Callable[[], Any]) -> Callable[[], Any]:
    async def runner() -> None:
        try:
            result = run()
            if inspect.isawaitable(result):
                await result
        except SkipAction:
            pass
        except Exception as error:  # noqa: BLE001
            host.report_error(error, "the command")

    return runner


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
