"""The app's saved chats: open, new, rename, delete, export, and the sidebar (drawing one: widgets/history.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..api import Chat
from ..errors import AssistantError
from .guard import guarded
from .screens.dialogs import ConfirmDialog, TextPrompt
from .widgets.history import show_conversation
from .widgets.sidebar import ChatList, Sidebar

if TYPE_CHECKING:
    from .app import AssistantApp

    _App = AssistantApp
else:
    _App = object


def _slug(title: str) -> str:
    slug = re.sub(r"[^\w-]+", "-", title.lower()).strip("-")
    return slug[:40].rstrip("-") or "chat"


class ChatsMixin(_App):
    """Part of AssistantApp: which chat is shown, and the chat list."""

    async def _leave_chat(self) -> None:
        """Before showing another chat: stop a running reply (it finishes saving in the background)."""
        if self.job is not None:
            self.job.stop()
        if self.agent_run is not None:
            self.agent_run.stop()
            self.agent_view = None  # it finishes saving in the background; nothing more is drawn here
        if self.pending is not None:
            await self._cancel_pending()

    @guarded
    async def action_new_chat(self) -> None:
        await self.new_chat()

    async def new_chat(self, title: str = "") -> None:
        await self._leave_chat()
        self.chat = None
        self.current_chat_id = None
        self._new_chat_title = title
        await self.chat_log.reset()
        self.update_status()
        self.refresh_sidebar()
        self.prompt.focus()

    async def open_chat(self, chat_id: int) -> None:
        """Show a saved chat and continue it."""
        assert self.store is not None
        conversation = self.store.get_conversation(chat_id)
        await self._leave_chat()
        self.chat = Chat(self.assistant, conversation) if self.assistant is not None else None
        self.current_chat_id = chat_id
        assert self.store is not None
        await show_conversation(self.chat_log, conversation, self.store, self.config.timings, self.image_renderer)
        self.prompt.prompt_history = [m.text for m in conversation.messages if m.role == "user" and m.text.strip()][-100:]
        self.update_status()
        self.refresh_sidebar()

    def refresh_sidebar(self) -> None:
        sidebar = self.sidebar
        if not sidebar.display or self.store is None:
            return
        query = sidebar.query_text.strip()
        try:
            if query:
                sidebar.show_hits(self.store.search(query), self.current_chat_id)
            else:
                sidebar.show_chats(self.store.list_conversations(limit=500), self.current_chat_id)
        except AssistantError as error:
            self.notify(str(error), severity="error", markup=False)

    def action_toggle_sidebar(self) -> None:
        sidebar = self.sidebar
        sidebar.display = not sidebar.display
        if sidebar.display:
            self.refresh_sidebar()
            sidebar.focus_search()
        else:
            self.prompt.focus()

    def on_sidebar_search_changed(self, event: Sidebar.SearchChanged) -> None:
        self.refresh_sidebar()

    @guarded
    async def on_sidebar_chat_selected(self, event: Sidebar.ChatSelected) -> None:
        if event.chat_id != self.current_chat_id:
            await self.open_chat(event.chat_id)
        self.prompt.focus()

    @guarded
    def on_sidebar_chat_action(self, event: Sidebar.ChatAction) -> None:
        if event.action == "rename":
            self.rename_chat(event.chat_id)
        elif event.action == "delete":
            self.delete_chat(event.chat_id)
        elif event.action == "export":
            self.export_chat(event.chat_id)

    def _title_of(self, chat_id: int) -> str:
        assert self.store is not None
        return self.store.get_conversation(chat_id).title or "Untitled chat"

    def rename_chat(self, chat_id: int, title: str | None = None) -> None:
        if title:
            self._rename(chat_id, title)
            return
        self.push_screen(
            TextPrompt("Rename the chat", self._title_of(chat_id)),
            self._guard_callback(lambda value: self._rename(chat_id, value) if value else None),
        )

    def _rename(self, chat_id: int, title: str) -> None:
        assert self.store is not None
        self.store.rename_conversation(chat_id, title)
        if self.chat is not None and self.chat.id == chat_id:
            self.chat.conversation.title = " ".join(title.split())
        self.refresh_sidebar()
        self.notify(f"renamed to {' '.join(title.split())}", markup=False)

    def delete_chat(self, chat_id: int) -> None:
        title = self._title_of(chat_id)
        self.push_screen(
            ConfirmDialog(
                f"Delete the chat “{title}”?",
                "Its messages, ratings and corrections are removed from the store. This cannot be undone.",
                yes="Delete",
                yes_key="ctrl+y",
            ),
            self._guard_callback(lambda yes: self._delete(chat_id) if yes else None),
        )

    async def _delete(self, chat_id: int) -> None:
        assert self.store is not None
        if chat_id == self.current_chat_id:
            if self.job is not None:
                self.notify("stop the reply (Esc) before deleting this chat", severity="warning")
                return
            await self.new_chat()
        self.store.delete_conversation(chat_id)
        self.refresh_sidebar()
        self.notify("chat deleted")

    def default_export_path(self, chat_id: int) -> Path:
        return Path.cwd() / f"{_slug(self._title_of(chat_id))}-{chat_id}.md"

    def export_chat(self, chat_id: int, path: str | None = None) -> None:
        if path:
            self._export(chat_id, path)
            return
        self.push_screen(
            TextPrompt("Export the chat to a Markdown file", str(self.default_export_path(chat_id))),
            self._guard_callback(lambda value: self._export(chat_id, value) if value else None),
        )

    def _export(self, chat_id: int, path_text: str) -> Path | None:
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
