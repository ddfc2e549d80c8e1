"""The sidebar: saved chats newest first, a search box over titles and messages, and chat actions."""

from __future__ import annotations

from typing import Sequence

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from ...store import ChatSummary, SearchHit
from .. import format as tui_format
from ..config import CHAT_LIST, KEY_SPECS, TuiConfig
from ..keys import bindings


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
    """Shown and hidden with Ctrl+B; the app fills it from the store."""

    class ChatSelected(Message):
        def __init__(self, chat_id: int) -> None:
            super().__init__()
            self.chat_id = chat_id

    class ChatAction(Message):
        """rename, delete or export a chat."""

        def __init__(self, action: str, chat_id: int) -> None:
            super().__init__()
            self.action = action
            self.chat_id = chat_id

    class SearchChanged(Message):
        def __init__(self, query: str) -> None:
            super().__init__()
            self.query = query

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
        self.post_message(self.SearchChanged(event.value))

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
