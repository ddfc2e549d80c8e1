"""The sidebar: saved chats newest first, a search box over titles and messages, and the chat actions.

It owns the chat list's behaviour: filling it from the store, search, and rename, delete (asking first) and export,
each with its dialog. It knows the app only through messages: `ChatSelected` (open it), `ChatRenamed` (the open
chat's title changed), `OpenChatDeleteRequested` (the app leaves the open chat, then calls `remove_chat`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from ...errors import AssistantError
from ...store import ChatSummary, SearchHit
from .. import format as tui_format
from ..config import CHAT_LIST, KEY_SPECS, TuiConfig, key_label
from ..guard import guard_callback, report
from ..keys import bindings
from ..screens.dialogs import ConfirmDialog, TextPrompt

if TYPE_CHECKING:
    from ...store import Store

log = logging.getLogger(__name__)


def slug(title: str) -> str:
    """A file-name-safe form of a chat title (the default export file's name)."""
    text = re.sub(r"[^\w-]+", "-", title.lower()).strip("-")
    return text[:40].rstrip("-") or "chat"


def chat_option(chat_id: int, title: str, detail: str, current: bool) -> Option:
    prompt = Text(no_wrap=True, overflow="ellipsis")
    prompt.append(("● " if current else "  ") + (title or "Untitled chat"), style="bold" if current else "")
    prompt.append("\n  " + detail, style="dim")
    return Option(prompt, id=f"chat-{chat_id}")


class ChatList(OptionList):
    """Enter opens the highlighted chat; Ctrl+E renames, Delete deletes (asking first), Ctrl+S exports it.

    The list has no letter keys: a letter typed here goes to the search box, so typing a word can never act on a
    chat (typing "day" once deleted the top chat: d opened the dialog and y answered it).
    """

    BINDINGS = bindings(CHAT_LIST)

    bound_keys: frozenset[str] = frozenset(
        key for spec in KEY_SPECS if spec.scope == CHAT_LIST for key in spec.keys.split(",")
    )
    """Keys bound to the list's actions (the user's [keys] may bind a letter on purpose: that letter acts)."""

    def on_key(self, event: events.Key) -> None:
        if event.key in self.bound_keys:
            return
        if event.is_printable and event.character and event.character.isprintable():
            event.stop()
            event.prevent_default()
            search = self.screen.query_one("#chat-search", Input)
            search.focus()
            search.insert_text_at_cursor(event.character)

    def _chosen(self) -> int | None:
        if self.highlighted is None or self.highlighted >= self.option_count:
            return None
        option = self.get_option_at_index(self.highlighted)
        return int(option.id.removeprefix("chat-")) if option.id else None

    def _post(self, action: str) -> None:
        chat_id = self._chosen()
        if chat_id is not None:
            self.post_message(Sidebar.ChatAction(action, chat_id))

    def action_rename(self) -> None:
        self._post("rename")

    def action_delete(self) -> None:
        self._post("delete")

    def action_export(self) -> None:
        self._post("export")


class Sidebar(Vertical):
    """Shown and hidden with Ctrl+B; lists the store's chats, the open one (`current_chat_id`) marked."""

    store: "Store | None" = None
    """Set by the app once the store is open."""
    current_chat_id: int | None = None
    """The chat open in the app (None: a new one); the app sets it, `refresh_chats` marks it."""

    class ChatSelected(Message):
        def __init__(self, chat_id: int) -> None:
            super().__init__()
            self.chat_id = chat_id

    class ChatRenamed(Message):
        """A chat got a new title (saved already)."""

        def __init__(self, chat_id: int, title: str) -> None:
            super().__init__()
            self.chat_id = chat_id
            self.title = title

    class OpenChatDeleteRequested(Message):
        """The user confirmed deleting the open chat: the app leaves it, then calls `remove_chat`."""

        def __init__(self, chat_id: int) -> None:
            super().__init__()
            self.chat_id = chat_id

    class ChatAction(Message):
        """rename, delete or export a chat."""

        def __init__(self, action: str, chat_id: int) -> None:
            super().__init__()
            self.action = action
            self.chat_id = chat_id

    def compose(self) -> ComposeResult:
        yield Static("Chats", classes="sidebar-title")
        yield Input(placeholder="Search chats…", id="chat-search", select_on_focus=False)
        yield ChatList(id="chat-list")
        yield Static("Enter open · Ctrl+E rename · Delete delete · Ctrl+S export", id="sidebar-hint", markup=False)

    @property
    def query_text(self) -> str:
        return self.query_one("#chat-search", Input).value

    def show_chats(self, chats: Sequence[ChatSummary], current_id: int | None) -> None:
        options = []
        for chat in chats:
            count = f"{chat.message_count} message{'s' if chat.message_count != 1 else ''}"
            detail = f"{tui_format.format_when(chat.updated_at)} · {count}"
            options.append(chat_option(chat.id, chat.title, detail, chat.id == current_id))
        self._fill(options, "No saved chats yet", current_id)

    def show_hits(self, hits: Sequence[SearchHit], current_id: int | None) -> None:
        seen: set[int] = set()
        options = []
        for hit in hits:
            if hit.conversation_id in seen:
                continue
            seen.add(hit.conversation_id)
            snippet = " ".join(hit.snippet.split()) if hit.message_id else "title matches"
            options.append(chat_option(hit.conversation_id, hit.title, snippet, hit.conversation_id == current_id))
        self._fill(options, "No chat matches", current_id)

    def use_keys(self, config: TuiConfig) -> None:
        """The list's keys as configured (its actions keep their keys; any other letter types into the search)."""
        self.query_one(ChatList).bound_keys = frozenset(
            key for spec in KEY_SPECS if spec.scope == CHAT_LIST for key in config.keys_for(spec.id).split(",")
        )

        def first(binding_id: str) -> str:
            return key_label(config.keys_for(binding_id).split(",")[0])

        self.set_hint(
            f"Enter open · {first('rename_chat')} rename · {first('delete_chat')} delete · {first('export_chat')} export"
        )

    def set_hint(self, text: str) -> None:
        self.query_one("#sidebar-hint", Static).update(text)

    def _fill(self, options: list[Option], empty: str, current_id: int | None) -> None:
        """Replace the list; the highlight stays on the same chat, else goes to the open one, else the top."""
        chat_list = self.query_one(ChatList)
        previous = chat_list._chosen()
        chat_list.clear_options()
        if not options:
            chat_list.add_option(Option(Text(empty, style="dim"), disabled=True))
            return
        chat_list.add_options(options)
        ids = [option.id for option in options]
        for wanted in (previous, current_id):
            if wanted is not None and f"chat-{wanted}" in ids:
                chat_list.highlighted = ids.index(f"chat-{wanted}")
                return
        chat_list.highlighted = 0

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.refresh_chats()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one(ChatList).focus()

    def on_key(self, event: events.Key) -> None:
        """↓ in the search box moves to the list (↑ from the list's top comes back)."""
        chat_list = self.query_one(ChatList)
        if event.key == "down" and self.screen.focused is self.query_one("#chat-search"):
            event.stop()
            chat_list.focus()
        elif event.key == "up" and self.screen.focused is chat_list and not chat_list.highlighted:
            event.stop()
            self.query_one("#chat-search").focus()

    def focus_search(self) -> None:
        """Where Ctrl+B puts the focus: typing searches, it never acts on a chat."""
        self.query_one("#chat-search", Input).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.post_message(self.ChatSelected(int(event.option.id.removeprefix("chat-"))))

    # --- what it shows ---------------------------------------------------------------------------------------------

    def refresh_chats(self) -> None:
        """Fill the list again from the store (the search's hits while it has text); nothing while hidden."""
        if not self.display or self.store is None:
            return
        query = self.query_text.strip()
        try:
            if query:
                self.show_hits(self.store.search(query), self.current_chat_id)
            else:
                self.show_chats(self.store.list_conversations(limit=500), self.current_chat_id)
        except AssistantError as error:
            self.notify(str(error), severity="error", markup=False)

    def toggle(self) -> bool:
        """Show (focus in the search box) or hide the list; True when it is shown now."""
        self.display = not self.display
        if self.display:
            self.refresh_chats()
            self.focus_search()
        return bool(self.display)

    # --- the chat actions --------------------------------------------------------------------------------------------

    def on_sidebar_chat_action(self, event: "Sidebar.ChatAction") -> None:
        event.stop()
        action = {"rename": self.rename_chat, "delete": self.delete_chat, "export": self.export_chat}[event.action]
        try:
            action(event.chat_id)
        except Exception as error:  # noqa: BLE001 - e.g. the chat was deleted meanwhile: a notice, not a crash
            self._report(error, event.action)

    def rename_chat(self, chat_id: int, title: str | None = None) -> None:
        """Rename to `title`, or ask for the new title (the old one filled in)."""
        if title:
            self._rename(chat_id, title)
            return
        self.app.push_screen(
            TextPrompt("Rename the chat", self._title_of(chat_id)),
            self._guarded(lambda value: self._rename(chat_id, value) if value else None),
        )

    def delete_chat(self, chat_id: int) -> None:
        """Ask first (only Ctrl+Y or the button confirms), then delete."""
        title = self._title_of(chat_id)
        self.app.push_screen(
            ConfirmDialog(
                f"Delete the chat “{title}”?",
                "Its messages, ratings and corrections are removed from the store. This cannot be undone.",
                yes="Delete",
                yes_key="ctrl+y",
            ),
            self._guarded(lambda yes: self._confirmed_delete(chat_id) if yes else None),
        )

    def remove_chat(self, chat_id: int) -> None:
        """Delete the chat from the store now (the app has left it if it was open)."""
        assert self.store is not None
        self.store.delete_conversation(chat_id)
        self.refresh_chats()
        self.notify("chat deleted")

    def default_export_path(self, chat_id: int) -> Path:
        return Path.cwd() / f"{slug(self._title_of(chat_id))}-{chat_id}.md"

    def export_chat(self, chat_id: int, path: str | None = None) -> None:
        """Write the chat as Markdown to `path` (a folder: the default file name in it), or ask where."""
        if path:
            self._export(chat_id, path)
            return
        self.app.push_screen(
            TextPrompt("Export the chat to a Markdown file", str(self.default_export_path(chat_id))),
            self._guarded(lambda value: self._export(chat_id, value) if value else None),
        )

    def _title_of(self, chat_id: int) -> str:
        assert self.store is not None
        return self.store.get_conversation(chat_id).title or "Untitled chat"

    def _rename(self, chat_id: int, title: str) -> None:
        assert self.store is not None
        self.store.rename_conversation(chat_id, title)
        title = " ".join(title.split())
        self.post_message(self.ChatRenamed(chat_id, title))
        self.refresh_chats()
        self.notify(f"renamed to {title}", markup=False)

    def _confirmed_delete(self, chat_id: int) -> None:
        if chat_id == self.current_chat_id:
            self.post_message(self.OpenChatDeleteRequested(chat_id))
        else:
            self.remove_chat(chat_id)

    def _export(self, chat_id: int, path_text: str) -> Path:
        assert self.store is not None
        path = Path(path_text.strip()).expanduser()
        if path.is_dir():
            path = path / self.default_export_path(chat_id).name
        text = self.store.export_markdown(chat_id)
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as error:
            raise AssistantError(f"cannot write {path}: {error.strerror or error}; choose another file") from None
        self.notify(f"exported to {path}", markup=False)
        return path

    def _report(self, error: BaseException, what: str) -> None:
        report(self.notify, error, what)

    def _guarded(self, callback: Callable[[Any], Any]) -> Callable[[Any], Any]:
        return guard_callback(self._report, callback)
