"""The app's saved chats: open, new, rename, delete, export, the sidebar, and drawing a saved chat (boxes too)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api import Chat
from ..conversation import Conversation, Message
from ..errors import AssistantError
from .format import grounding_caption
from .guard import guarded
from .screens.dialogs import ConfirmDialog, TextPrompt
from .widgets.chatlog import AssistantMessage, Notice, UserMessage
from .widgets.sidebar import ChatList, Sidebar

if TYPE_CHECKING:
    from ..geometry import Grounding
    from .app import AssistantApp

    _App = AssistantApp
else:
    _App = object

log = logging.getLogger(__name__)


def _slug(title: str) -> str:
    slug = re.sub(r"[^\w-]+", "-", title.lower()).strip("-")
    return slug[:40].rstrip("-") or "chat"


def _draw_function() -> Any:
    """The grounding plugin's drawing helper, when installed."""
    try:
        from assistant_plugins.grounding.draw import draw_grounding
    except ImportError:
        return None
    return draw_grounding


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
        await self._show_conversation(conversation)
        self.prompt.prompt_history = [m.text for m in conversation.messages if m.role == "user" and m.text.strip()][-100:]
        self.update_status()
        self.refresh_sidebar()

    async def _show_conversation(self, conversation: Conversation) -> None:
        """Draw a saved chat: questions with thumbnails, replies, each tool call with its result, drawn boxes."""
        from ..agent import stored_steps
        from .widgets.toolstep import ToolStep

        assert self.store is not None
        await self.chat_log.reset(welcome=not conversation.messages)
        steps = stored_steps(conversation.messages)
        shown_results = {step.result_index for step in steps if step.result_index is not None}
        widgets: list[Any] = []
        grounded: list[tuple[AssistantMessage, Message]] = []
        results: list[tuple[Any, Any]] = []
        for index, message in enumerate(conversation.messages):
            if message.role == "user":
                images = self._thumbs(message.images)
                widgets.append(UserMessage(message.text, images, renderer=self.image_renderer, message_id=message.id))
            elif message.role == "assistant":
                reply = AssistantMessage(message, timings=self.config.timings, renderer=self.image_renderer)
                widgets.append(reply)
                if message.meta is not None and message.meta.extra.get("grounding"):
                    grounded.append((reply, message))
                for step in steps:
                    if step.message_index == index:
                        widget = ToolStep(step.call, renderer=self.image_renderer, status="no result")
                        widgets.append(widget)
                        if step.result is not None:
                            results.append((widget, step))
            elif message.role == "tool" and index not in shown_results:
                widgets.append(Notice(f"tool result: {message.text[:500]}"))
        if widgets:
            await self.chat_log.mount_all(widgets)
        for widget, step in results:
            await widget.set_result(step.result, self._thumbs(step.images))
        for reply, message in grounded:
            self._show_stored_grounding(reply, message)
        self.chat_log.scroll_end(animate=False)

    def _thumbs(self, parts: list[Any]) -> list[tuple[Path, str]]:
        """Stored images as (file, caption) for thumbnails."""
        assert self.store is not None
        images = []
        for part in parts:
            try:
                images.append((self.store.image_path(part.sha256), f"{part.source} {part.width}x{part.height}"))
            except AssistantError:
                continue
        return images

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

    # --- grounding ----------------------------------------------------------------------------------------

    def _show_grounding(self, widget: AssistantMessage, grounding: "Grounding", image_sha: str) -> None:
        caption = grounding_caption(grounding)
        draw = _draw_function()
        image = None
        if draw is not None and image_sha and self.store is not None:
            try:
                from PIL import Image as PILImage

                with PILImage.open(self.store.image_path(image_sha)) as opened:
                    image = draw(opened.convert("RGB"), grounding)
            except Exception as error:  # noqa: BLE001 - drawing is a nicety; the reply text is what matters
                log.warning("drawing the grounding failed: %s", error)
                image = None
        widget.show_grounding(image, caption)

    def _show_stored_grounding(self, widget: AssistantMessage, message: Message) -> None:
        from ..geometry import Grounding, shape_from_dict

        data = message.meta.extra.get("grounding") if message.meta is not None else None
        if not isinstance(data, dict):
            return
        try:
            shapes = [shape_from_dict(shape) for shape in data.get("shapes", [])]
            size = data.get("image_size") or (0, 0)
            grounding = Grounding(format=str(data.get("format", "")), shapes=shapes, image_size=(int(size[0]), int(size[1])))
        except (ValueError, KeyError, TypeError, IndexError):
            return
        if grounding.shapes:
            self._show_grounding(widget, grounding, str(data.get("image", "")))

