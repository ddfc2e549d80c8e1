"""The main view: the chat list, the chat pane and the status line, and the routing between them.

Each part owns its behaviour (widgets/sidebar.py, widgets/chatview.py, widgets/statusbar.py); the view only
connects their messages: a chat chosen in the list opens in the pane, a new chat saved by the pane is marked in the
list, a question waiting for the model starts the loading in the status bar, the model being ready sends it. It
gets the conversation state (the ChatController) and the /commands (anything with `submit(text)`) from the app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical

from ...api import Chat
from ..format import context_used
from ..guard import guarded, report
from ..messages import AdapterChanged, ModelFailed, ModelReady
from ..screens.dialogs import ErrorDialog
from .chatview import ChatView
from .prompt import PromptArea
from .sidebar import Sidebar
from .statusbar import StatusBar

if TYPE_CHECKING:
    from ..config import TuiConfig
    from ..controller import ChatController


class Commands(Protocol):
    async def submit(self, text: str) -> bool:
        """Run `text` when it is a /command (True); False when it is a message to send."""
        ...


class MainView(Vertical):
    """Everything on the app's screen but the footer."""

    def __init__(self, controller: "ChatController", config: "TuiConfig", image_renderer: str, commands: Commands,
                 **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.controller = controller
        self.commands = commands
        self.loads_at_start = False
        """The model is about to load by itself (until the first paint): the status line says so."""
        self.sidebar = Sidebar(id="sidebar")
        self.sidebar.display = False
        self.chat_view = ChatView(controller, config, image_renderer, id="main")
        self.status = StatusBar(controller, id="status")

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            yield self.sidebar
            yield self.chat_view
        yield self.status

    @property
    def alive(self) -> bool:
        return self.status.text.is_attached

    def report_error(self, error: BaseException, what: str) -> None:
        if self.alive:
            report(self.notify, error, what)

    def update_status(self) -> None:
        chat = self.controller.chat
        used = context_used(chat.conversation.messages) if chat is not None else 0
        controller = self.controller
        self.status.show_session(controller.assistant, controller.load_state, controller.load_error, used,
                                 self.chat_view.agent_mode, self.loads_at_start)

    # --- which chat is open ----------------------------------------------------------------------------------------------

    async def new_chat(self, title: str = "") -> None:
        """Leave the open chat (it stays saved) for an empty one, saved as `title` with its first question."""
        await self.chat_view.show(None, title)
        self.controller.chat = None
        self.sidebar.current_chat_id = None
        self.update_status()
        self.sidebar.refresh_chats()
        self.chat_view.composer.prompt.focus()

    async def open_chat(self, chat_id: int) -> None:
        """Show a saved chat and continue it."""
        controller = self.controller
        assert controller.store is not None
        conversation = controller.store.get_conversation(chat_id)
        await self.chat_view.show(conversation)
        controller.chat = Chat(controller.assistant, conversation) if controller.assistant is not None else None
        self.sidebar.current_chat_id = chat_id
        self.update_status()
        self.sidebar.refresh_chats()

    @guarded
    async def on_sidebar_chat_selected(self, event: Sidebar.ChatSelected) -> None:
        if event.chat_id != self.sidebar.current_chat_id:
            await self.open_chat(event.chat_id)
        self.chat_view.composer.prompt.focus()

    def on_sidebar_chat_renamed(self, event: Sidebar.ChatRenamed) -> None:
        chat = self.controller.chat
        if chat is not None and chat.id == event.chat_id:
            chat.conversation.title = event.title

    @guarded
    async def on_sidebar_open_chat_delete_requested(self, event: Sidebar.OpenChatDeleteRequested) -> None:
        if self.controller.job is not None:
            self.notify("stop the reply (Esc) before deleting this chat", severity="warning")
            return
        await self.new_chat()
        self.sidebar.remove_chat(event.chat_id)

    def toggle_sidebar(self) -> None:
        if not self.sidebar.toggle():
            self.chat_view.composer.prompt.focus()

    async def stop(self) -> bool:
        """Esc: the chat pane stops what runs; else, from the chat list, back to the prompt. False: nothing to do."""
        if await self.chat_view.stop():
            return True
        focused = self.screen.focused
        if focused is not None and self.sidebar in focused.ancestors_with_self:
            self.chat_view.composer.prompt.focus()
            return True
        return False

    # --- the prompt and the chat pane's news -------------------------------------------------------------------------------

    @guarded
    async def on_prompt_area_submitted(self, event: PromptArea.Submitted) -> None:
        event.stop()
        if not await self.commands.submit(event.text):  # the prompt has already cleared itself
            await self.chat_view.submit(event.text)

    def on_chat_view_chat_started(self, event: ChatView.ChatStarted) -> None:
        self.sidebar.current_chat_id = event.chat_id
        self.sidebar.refresh_chats()

    def on_chat_view_model_wanted(self, event: ChatView.ModelWanted) -> None:
        self.status.start_loading()

    def on_chat_view_changed(self, event: ChatView.Changed) -> None:
        if self.alive:
            self.update_status()
            self.sidebar.refresh_chats()

    # --- the model (loaded by the status bar) --------------------------------------------------------------------------------

    @guarded
    async def on_model_ready(self, event: ModelReady) -> None:
        if not self.alive or not self.controller.loaded(event.owner, None):
            return
        self.update_status()
        self.chat_view.send_pending()

    @guarded
    async def on_model_failed(self, event: ModelFailed) -> None:
        if not self.alive or not self.controller.loaded(event.owner, event.error):
            return
        self.update_status()
        await self.chat_view.cancel_pending()
        self.app.push_screen(
            ErrorDialog(
                "The model could not be loaded",
                event.error,
                "The app keeps running: switch with /profile NAME, or restart with --profile NAME or --model PATH.",
            )
        )

    def on_adapter_changed(self, event: AdapterChanged) -> None:
        if self.alive:
            self.update_status()  # the status bar has said what happened
