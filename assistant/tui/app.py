"""The Textual app: starts up, composes the screen from parts that own their behaviour, and routes between them.

Start-up paints first and loads later: nothing here imports torch or transformers; the model loads in a thread
worker after the first frame, while the user can already type (a message sent early waits and is answered once
the model is ready). Worker threads reach the UI only through messages (messages.py) or call_from_thread.

Where things live: the conversation's rules in the ChatController (controller.py, no Textual); the routing between
the screen's parts in MainView (widgets/mainview.py); sending, streaming, stop/regenerate/edit in the ChatView;
rate/correct/copy in the ChatLog; attachments in the Composer; the chat list and its actions in the Sidebar; model
loading and the adapter in the StatusBar; the /commands in SlashCommands (slash.py, built-ins in builtins.py); what
plugins see in AppSlashContext (context.py). The app implements the narrow Protocols those take
(builtins.CommandHost, context.ContextHost, palette.PaletteHost); nothing imports this module but the CLI.
"""

from __future__ import annotations

import gc
import inspect
import logging
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import events
from textual.actions import SkipAction
from textual.app import App, ComposeResult
from textual.widgets import Footer

from ..api import Assistant
from ..errors import AssistantError
from ..paths import user_paths
from .attachments import Attachments
from .config import GLOBAL, TuiConfig, load_tui_config
from .context import AppSlashContext
from .controller import ChatController
from .guard import guarded, report
from .keys import bindings
from .palette import AssistantCommands, PaletteEntry, palette_entries
from .screens.dialogs import ErrorDialog
from .screens.help import HelpScreen
from .slash import SlashCommands
from .startup import HEAVY_MODULES, home_relative, record_first_paint, setup_logging, startup_notices
from .terminal import take_typeahead
from .widgets.chatlog import Notice
from .widgets.mainview import MainView
from .widgets.prompt import ChipBar, PromptArea
from .widgets.sidebar import Sidebar

if TYPE_CHECKING:
    from ..plugins import PluginManager
    from ..store import Store

log = logging.getLogger(__name__)


def _part_attribute(part: str, name: str, doc: str) -> Any:
    """An app attribute that is one of its parts' (the Protocols and the tests read and set it on the app)."""
    return property(
        lambda self: getattr(getattr(self, part), name),
        lambda self, value: setattr(getattr(self, part), name, value),
        doc=doc,
    )


def _controller_attribute(name: str, doc: str) -> Any:
    return _part_attribute("controller", name, doc)


def _routed(part: str, method: str) -> Any:
    """A key action of the app (so its binding works wherever the focus is) that runs the owning part's method."""

    async def action(self: Any, *args: Any) -> None:
        result = getattr(getattr(self, part), method)(*args)
        if inspect.isawaitable(result):
            await result

    action.__name__ = action.__qualname__ = method
    return guarded(action)


class AssistantApp(App[None]):
    """Chat with a local vision-language model about images, screenshots and documents."""

    CSS_PATH = "app.tcss"
    TITLE = "assistant"
    COMMANDS = App.COMMANDS | {AssistantCommands}
    BINDINGS = bindings(GLOBAL)
    AUTO_FOCUS = "#prompt"
    """Keys typed while the app starts go to the prompt (never the hidden chat search)."""

    store = _controller_attribute("store", "The chat store.")
    assistant = _controller_attribute("assistant", "The Assistant of the current profile (None until set up).")
    chat = _controller_attribute("chat", "The open chat (None: a new one starts with the next question).")
    job = _controller_attribute("job", "The reply being written.")
    pending = _controller_attribute("pending", "A question waiting for the model to load (a PendingSend).")
    agent_run = _controller_attribute("agent_run", "The agent run in progress.")
    load_state = _controller_attribute("load_state", "idle, loading, ready or failed.")
    load_error = _controller_attribute("load_error", "Why the model could not load.")
    max_new_tokens = _controller_attribute("max_new_tokens", "--max-tokens for every reply.")
    current_chat_id = _part_attribute("sidebar", "current_chat_id", "The open chat's id (None: a new chat, saved with "
                                      "its first message); the sidebar marks it.")
    agent_mode = _part_attribute("chat_view", "agent_mode", "A question runs the agent (the model may call tools).")

    def __init__(
        self,
        profile: str | Path | None = None,
        model: str | None = None,
        chat_id: int | None = None,
        adapter: str | None = None,
        *,
        config: TuiConfig | None = None,
        store: "Store | None" = None,
        plugins: "PluginManager | None" = None,
        max_new_tokens: int | None = None,
        autoload: bool = True,
        image_renderer: str | None = None,
        started_at: float | None = None,
        base_url: str | None = None,
    ) -> None:
        super().__init__()
        self.controller = ChatController(max_new_tokens=max_new_tokens, store=store)
        """The conversation flow (send, stream, stop, regenerate, rate, correct) without Textual."""
        self.started_at = started_at if started_at is not None else time.perf_counter()
        self.profile_name = profile
        self.model_override = model
        self.base_url_override = base_url
        """`--base-url`: chat with a model on an OpenAI-compatible server (`model` is then its served name)."""
        self.initial_chat_id = chat_id
        self.initial_adapter = adapter
        self.config = config if config is not None else load_tui_config()
        self.image_renderer = image_renderer or self.config.images
        self.autoload = autoload
        self.plugins = plugins
        self.startup_error: str | None = None
        self.slash = SlashCommands(self, AppSlashContext(self), self.report_error)
        """The /commands: which exist, completion, running one (built-ins get this app as their CommandHost)."""
        self.config_file_display = home_relative(user_paths().config_file)
        self.first_paint_s: float | None = None
        self.heavy_modules_at_first_paint: list[str] = []
        self._stop_plugin_notices: Any = None
        self._early_keys: list[str] | None = []
        """Printable keys that reached no widget before start-up was done (they follow the typeahead)."""
        self.main = MainView(self.controller, self.config, self.image_renderer, self.slash, id="main-view")
        self.main.loads_at_start = autoload
        # The parts, by the names the Protocols and the tests use (made once: no DOM search each time).
        self.sidebar = self.main.sidebar
        self.chat_view = self.main.chat_view
        self.status = self.main.status
        self.chat_log = self.chat_view.chat_log
        self.composer = self.chat_view.composer
        self.prompt: PromptArea = self.composer.prompt
        self.chips: ChipBar = self.composer.chips
        # What the Protocols (builtins.CommandHost, context.ContextHost) ask for, answered by the part that owns it.
        self.new_chat = self.main.new_chat
        self.open_chat = self.main.open_chat
        self.update_status = self.main.update_status
        self.refresh_sidebar = self.sidebar.refresh_chats
        self.start_loading = self.status.start_loading
        self.switch_adapter = self.status.switch_adapter
        self.send_later = self.chat_view.send_later
        self.resend_edited = self.chat_view.resend_edited
        self.set_agent_mode = self.chat_view.set_agent_mode
        self.attach_image_files = self.composer.attach_image_files
        self.attach_video_files = self.composer.attach_video_files
        self.composer.load_video = lambda path: self.controller.assistant.load_video(path)  # type: ignore[union-attr]
        self.ui_thread = threading.get_ident()
        """The thread the app runs on (set again when it mounts); plugin calls from others are carried over."""

    def compose(self) -> ComposeResult:
        yield self.main
        yield Footer()

    @property
    def attachments(self) -> Attachments:
        return self.composer.attachments

    @property
    def commands(self) -> Any:
        """The /commands that exist now (a CommandTable: built-ins, then plugins')."""
        return self.slash.table

    @property
    def slash_context(self) -> AppSlashContext:
        return self.slash.context  # type: ignore[return-value]

    @property
    def chats(self) -> Sidebar:
        """Rename, delete, export a saved chat (the sidebar does them)."""
        return self.sidebar

    @property
    def ui_alive(self) -> bool:
        """False once the app is shutting down (workers may still post messages then: they are dropped)."""
        return self.status.text.is_attached

    # --- start-up --------------------------------------------------------------------------------------------------------

    async def on_mount(self) -> None:
        """The keys, the theme, what is wrong in the config; the store, the profile, the chat asked for; then the
        first paint (keys typed meanwhile wait for this and then go to the prompt)."""
        self.ui_thread = threading.get_ident()
        self.prompt.focus()
        self.set_keymap(self.config.keys)
        if self.config.theme:
            if self.config.theme in self.available_themes:
                self.theme = self.config.theme
            else:
                self.config.problems.append(
                    f"unknown theme {self.config.theme!r} in [tui] of the config; known: {', '.join(sorted(self.available_themes))}"
                )
        for problem in self.config.problems:
            self.notify(problem, severity="warning", markup=False, timeout=12)
        self.prompt.completer = self.slash.complete
        self.prompt.use_keys(self.config)
        self.sidebar.use_keys(self.config)
        await self.chat_log.reset()
        await self._open_core()
        self.prompt.focus()
        typed = take_typeahead() + "".join(self._early_keys or [])  # before Textual had the terminal, then early
        self._early_keys = None
        if typed:
            self.prompt.insert(typed)
        self.call_after_refresh(self._after_first_paint)

    def on_key(self, event: events.Key) -> None:
        """A printable key typed while the screen was being built reached no widget: it goes to the prompt, in order."""
        if self.first_paint_s is not None or not (event.is_printable and event.character):
            return
        event.stop()
        if self._early_keys is not None:
            self._early_keys.append(event.character)
        else:
            self.prompt.insert(event.character)

    async def _open_core(self) -> None:
        """The store, the assistant (profile only: no model yet) and the chat asked for on the command line."""
        try:
            if self.store is None:
                from ..store import Store

                self.store = Store.open_default()
            self.sidebar.store = self.store
            self.assistant = Assistant.from_profile(
                self.profile_name, model=self.model_override, base_url=self.base_url_override,
                adapter=self.initial_adapter, store=self.store, plugins=self.plugins,
            )
        except AssistantError as error:
            self.startup_error = str(error)
            self.load_state = "failed"
            self.load_error = str(error)
            self.update_status()
            return
        self.update_status()
        if self.initial_chat_id is not None:
            try:
                await self.open_chat(self.initial_chat_id)
            except AssistantError as error:
                self.notify(f"{error}; a new chat is open instead", severity="error", markup=False, timeout=12)

    def _after_first_paint(self) -> None:
        if self.first_paint_s is None:
            self.first_paint_s = time.perf_counter() - self.started_at
            self.heavy_modules_at_first_paint = [name for name in HEAVY_MODULES if name in sys.modules]
            log.info("first paint after %.3f s", self.first_paint_s)
            record_first_paint(self.first_paint_s, self.heavy_modules_at_first_paint)
            self.main.loads_at_start = False
            for line in startup_notices():  # untested dependency versions, files made private
                self.notify(line, severity="warning", markup=False, timeout=12)
        self._setup_plugins()
        if self.startup_error is not None:
            self.push_screen(
                ErrorDialog(
                    "The assistant could not start its profile",
                    self.startup_error,
                    "Saved chats still open from the chat list (Ctrl+B). Switch with /profile NAME.",
                )
            )
        elif self.autoload:
            self.start_loading()

    def _setup_plugins(self) -> None:
        if self._stop_plugin_notices is None:
            from ..guard import add_notice_listener

            # A plugin skipped after failing (or a disable list naming no plugin): one warning naming it.
            self._stop_plugin_notices = add_notice_listener(
                lambda line: self.notify(line, severity="warning", markup=False, timeout=12)  # thread-safe
            )
        if self.plugins is None:
            try:
                if self.assistant is not None:
                    self.plugins = self.assistant.plugins
                else:
                    from ..plugins import create_plugin_manager

                    self.plugins = create_plugin_manager()
            except Exception as error:  # noqa: BLE001 - a broken plugin set must not keep the chat from working
                self.report_error(error, "loading plugins")
                return
        self.reload_commands()

    def on_unmount(self) -> None:
        if self._stop_plugin_notices is not None:
            self._stop_plugin_notices()
            self._stop_plugin_notices = None

    def reload_commands(self) -> None:
        """Collect the plugins' /commands again (after registering a plugin at run time)."""
        self.slash.reload(self.plugins)

    # --- what the built-in /commands and the palette ask for that no part owns ---------------------------------------

    async def switch_profile(self, name: str) -> None:
        if not name:
            from ..profiles import available_profiles

            current = self.assistant.profile.name if self.assistant is not None else "none"
            self.notify(f"usage: /profile NAME (now {current}); known: {', '.join(available_profiles())}", markup=False)
            return
        if self.job is not None:
            self.notify("stop the reply (Esc) before switching profile", severity="warning")
            return
        assistant = Assistant.from_profile(name, store=self.store, plugins=self.plugins)
        await self.chat_view.cancel_pending()
        self.controller.use_assistant(assistant, self.current_chat_id)
        self.startup_error = None
        gc.collect()  # let the previous model go before the next one loads
        await self.chat_log.add(Notice(f"switched to profile {assistant.profile.name}"))
        if self.plugins is None:
            self._setup_plugins()
        self.start_loading()

    def palette_entries(self) -> list[PaletteEntry]:
        return palette_entries(self)

    def prefill(self, text: str) -> None:
        """Put `text` in the prompt to be completed and sent (the palette's "Attach an image…")."""
        self.prompt.set_prompt(text)
        self.prompt.focus()

    @guarded
    async def on_agent_event_posted(self, message: Any) -> None:
        """A step of the agent run (its worker posts to the app): the chat pane draws it."""
        await self.chat_view.agent_event(message)

    # --- key actions (bindings are the app's, so they work wherever the focus is) ----------------------------------------

    @guarded
    async def action_stop(self) -> None:
        if not await self.main.stop():
            raise SkipAction()

    action_new_chat = _routed("main", "new_chat")
    action_toggle_sidebar = _routed("main", "toggle_sidebar")
    action_regenerate = _routed("chat_view", "regenerate")
    action_edit_last = _routed("chat_view", "edit_last")
    action_rate = _routed("chat_log", "rate")
    """(+1 or -1) the focused or newest finished reply; the same rating again clears it."""
    action_set_rating = _routed("chat_log", "set_rating")
    action_correct = _routed("chat_log", "correct")
    action_copy_reply = _routed("chat_log", "copy_reply")

    def action_toggle_agent(self) -> None:
        self.set_agent_mode(not self.agent_mode)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.config, self.commands.all(), self.config_file_display))

    def report_error(self, error: BaseException, what: str) -> None:
        """AssistantError: its line as a notification. Anything else is a bug: logged with its traceback."""
        if not self.ui_alive:  # shutting down: a worker's late report found its widgets gone
            log.debug("ignored while closing: %s: %s", what, error)
            return
        report(self.notify, error, what)


def run_app(
    profile: str | None = None,
    model: str | None = None,
    chat_id: int | None = None,
    adapter: str | None = None,
    base_url: str | None = None,
) -> None:
    """Run the terminal UI (what plain `assistant` does)."""
    started = time.perf_counter()
    setup_logging()
    AssistantApp(profile, model=model, chat_id=chat_id, adapter=adapter, started_at=started, base_url=base_url).run()
