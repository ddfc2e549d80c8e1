"""The Textual app: a multi-turn chat with the local VLM, thin over the Assistant API (which owns model, store, plugins).

Start-up paints first and loads later: nothing here imports torch or transformers; the model loads in a thread
worker after the first frame, while the user can already type (a message sent early waits and is answered once
the model is ready). Worker threads reach the UI only through the messages in messages.py or call_from_thread.

This module holds start-up, model loading, sending and the reply actions; the conversation's rules are the
ChatController's (controller.py, no Textual), the attachments the Composer's (widgets/composer.py), the /commands
the SlashCommands registry's (slash.py, built-ins in builtins.py), the plugins' window the AppSlashContext
(context.py), the chat list and its actions the Sidebar's (widgets/sidebar.py).
"""

from __future__ import annotations

import functools
import gc
import json
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from textual import work
from textual.actions import SkipAction
from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer

from ..api import Assistant, Chat
from ..errors import AssistantError
from ..paths import user_paths
from .attachments import Attachment, Attachments, Outgoing
from .config import GLOBAL, TuiConfig, load_tui_config
from .context import AppSlashContext
from .controller import ChatController, Refusal
from .format import context_used, status_line
from .guard import guard_callback, guarded, report
from .keys import bindings
from .messages import (
    AdapterChanged,
    GenerationJob,
    LoadProgress,
    ModelFailed,
    ModelReady,
    ReplyChunk,
    ReplyDone,
    ReplyStarted,
)
from .palette import AssistantCommands, PaletteEntry, palette_entries
from .screens.dialogs import EditorDialog, ErrorDialog
from .screens.help import HelpScreen
from .slash import SlashCommands
from .terminal import take_typeahead
from .widgets.chatlog import AssistantMessage, ChatLog, Notice, UserMessage
from .widgets.composer import Composer
from .widgets.history import show_conversation, show_grounding
from .widgets.prompt import ChipBar, PromptArea
from .widgets.sidebar import Sidebar
from .widgets.statusbar import StatusBar

if TYPE_CHECKING:
    from ..plugins import PluginManager
    from ..store import Store

log = logging.getLogger(__name__)

HEAVY_MODULES = ("torch", "transformers")
BENCH_FILE = "tui_first_paint.json"


@dataclass
class PendingSend:
    """A message sent before the model was ready: shown at once, sent when the model has loaded."""

    chat: Chat
    text: str
    outgoing: Outgoing
    attachments: list[Attachment]
    user: UserMessage
    reply: AssistantMessage
    extra: dict[str, Any] | None = None
    agent: bool = False


def record_first_paint(seconds: float, heavy: list[str]) -> None:
    """Write the start-to-first-paint time for the benchmark when ASSISTANT_BENCH_OUT names a folder or .json file."""
    target = os.environ.get("ASSISTANT_BENCH_OUT")
    if not target:
        return
    path = Path(target)
    try:
        if path.suffix != ".json":
            path.mkdir(parents=True, exist_ok=True)
            path = path / BENCH_FILE
        path.write_text(
            json.dumps({"metric": "tui_first_paint_s", "value": seconds, "heavy_modules_imported": heavy}) + "\n",
            encoding="utf-8",
        )
    except OSError as error:
        log.warning("cannot write the first-paint benchmark to %s: %s", path, error)


def _controller_attribute(name: str, doc: str) -> Any:
    """An app attribute that is the chat controller's (the mixins and tests read and set it on the app)."""
    return property(
        lambda self: getattr(self.controller, name),
        lambda self, value: setattr(self.controller, name, value),
        doc=doc,
    )


def _home_relative(path: Path) -> str:
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


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
        self.controller = ChatController()
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
        self.max_new_tokens = max_new_tokens
        self.autoload = autoload
        self.store = store
        self.plugins = plugins
        self.startup_error: str | None = None
        self.agent_mode = False
        """When on, a question runs the agent: the model may call tools (asking first for risky ones)."""
        self.agent_view: Any = None
        self.slash = SlashCommands(self, AppSlashContext(self), self.report_error)
        """The /commands: which exist, completion, running one (built-ins get this app as their CommandHost)."""
        self.config_file_display = _home_relative(user_paths().config_file)
        self.first_paint_s: float | None = None
        self.heavy_modules_at_first_paint: list[str] = []
        self._new_chat_title = ""
        self._make_widgets()
        self.ui_thread = threading.get_ident()
        """The thread the app runs on (set again when it mounts); plugin calls from others are carried over."""

    # --- layout and start-up -----------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            yield self.sidebar
            with Vertical(id="main"):
                yield self.chat_log
                yield self.composer
        yield self.status
        yield Footer()

    def _make_widgets(self) -> None:
        """The screen's parts, made once and kept (no DOM search each time one is needed)."""
        self.sidebar = Sidebar(id="sidebar")
        self.sidebar.display = False
        self.chat_log = ChatLog(id="chat-log")
        self.composer = Composer(id="composer")
        self.prompt: PromptArea = self.composer.prompt
        self.chips: ChipBar = self.composer.chips
        self.status = StatusBar(id="status")

    @property
    def attachments(self) -> Attachments:
        """The pending attachments (the composer owns them)."""
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
    def current_chat_id(self) -> int | None:
        """The open chat's id (None: a new chat, saved with its first message); the sidebar marks it."""
        return self.sidebar.current_chat_id

    @current_chat_id.setter
    def current_chat_id(self, chat_id: int | None) -> None:
        self.sidebar.current_chat_id = chat_id

    @property
    def ui_alive(self) -> bool:
        """False once the app is shutting down (workers may still post messages then: they are dropped)."""
        return self.status.text.is_attached

    async def on_mount(self) -> None:
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
        typed = take_typeahead()  # keys typed before Textual had the terminal
        if typed:
            self.prompt.insert(typed)
        self.call_after_refresh(self._after_first_paint)

    async def _open_core(self) -> None:
        """The store, the assistant (profile only: no model yet) and the chat asked for on the command line."""
        try:
            if self.store is None:
                from ..store import Store

                self.store = Store.open_default()
            self.sidebar.store = self.store
            self.assistant = Assistant.from_profile(
                self.profile_name,
                model=self.model_override,
                base_url=self.base_url_override,
                adapter=self.initial_adapter,
                store=self.store,
                plugins=self.plugins,
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
        if getattr(self, "_stop_plugin_notices", None) is None:
            from ..guard import add_notice_listener

            # A plugin skipped after failing (or a disable list naming no plugin): one warning naming it.
            self._stop_plugin_notices = add_notice_listener(
                lambda line: self.notify(line, severity="warning", markup=False, timeout=12)  # thread-safe
            )
            from ..paths import take_notices

            for line in take_notices():  # e.g. an older install's files made private
                self.notify(line, severity="warning", markup=False, timeout=12)
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
        stop = getattr(self, "_stop_plugin_notices", None)
        if stop is not None:
            stop()
            self._stop_plugin_notices = None

    def reload_commands(self) -> None:
        """Collect the plugins' /commands again (after registering a plugin at run time)."""
        self.slash.reload(self.plugins)

    def palette_entries(self) -> list[PaletteEntry]:
        return palette_entries(self)

    def prefill(self, text: str) -> None:
        """Put `text` in the prompt to be completed and sent (the palette's "Attach an image…")."""
        self.prompt.set_prompt(text)
        self.prompt.focus()

    def _guard_callback(self, callback: Callable[[Any], Any]) -> Callable[[Any], Any]:
        return guard_callback(self.report_error, callback)

    # --- model loading -------------------------------------------------------------------------------

    def start_loading(self) -> None:
        if self.assistant is None or self.load_state in ("loading", "ready"):
            return
        self.load_state = "loading"
        self.load_error = None
        self.status.loading(f"{self.assistant.profile.name} │ loading {self.assistant.profile.model_label}…", None)
        self._load_model(self.assistant)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load_model(self, assistant: Assistant) -> None:
        def progress(text: str, fraction: float | None) -> None:
            self.post_message(LoadProgress(assistant, text, fraction))

        try:
            assistant.load(progress)
        except AssistantError as error:
            self.post_message(ModelFailed(assistant, str(error)))
        except Exception as error:  # noqa: BLE001 - a bug in loading: logged, shown, the app stays up
            log.exception("model load failed")
            self.post_message(
                ModelFailed(
                    assistant,
                    f"loading the model failed ({type(error).__name__}: {error}); "
                    f"details are in {user_paths().log_file}",
                )
            )
        else:
            self.post_message(ModelReady(assistant))

    @guarded
    def on_load_progress(self, event: LoadProgress) -> None:
        if event.owner is self.assistant and self.load_state == "loading" and self.ui_alive:
            self.status.loading(f"{event.owner.profile.name} │ {event.text}", event.fraction)

    @guarded
    async def on_model_ready(self, event: ModelReady) -> None:
        if event.owner is not self.assistant or not self.ui_alive:
            return
        self.load_state = "ready"
        self.update_status()
        if self.pending is not None:
            self._send_pending()

    @guarded
    async def on_model_failed(self, event: ModelFailed) -> None:
        if event.owner is not self.assistant or not self.ui_alive:
            return
        self.load_state = "failed"
        self.load_error = event.error
        self.update_status()
        if self.pending is not None:
            await self._cancel_pending()
        self.push_screen(
            ErrorDialog(
                "The model could not be loaded",
                event.error,
                "The app keeps running: switch with /profile NAME, or restart with --profile NAME or --model PATH.",
            )
        )

    def update_status(self) -> None:
        assistant = self.assistant
        if assistant is None:
            self.status.show(f"no profile │ {self.load_error or ''}".rstrip(" │"))
            return
        profile = assistant.profile
        used = context_used(self.chat.conversation.messages) if self.chat is not None else 0
        if self.load_state == "ready":
            info = assistant.backend.info
            self.status.show(
                status_line(
                    profile.name,
                    info.model,
                    f"remote: {info.remote}" if info.remote else f"{info.device} · {info.dtype}",
                    assistant.adapter,
                    used,
                    info.context_limit,
                    info.random_weights,
                    agent=self.agent_mode,
                )
            )
        elif self.load_state == "failed":
            self.status.show(f"{profile.name} │ {profile.model_label} │ model not loaded (see the error; /profile NAME)")
        elif self.load_state == "idle" and self.autoload and self.first_paint_s is None:
            self.status.loading(f"{profile.name} │ loading {profile.model_label}…", None)
        elif self.load_state == "idle":
            self.status.show(f"{profile.name} │ {profile.model_label} │ model not loaded yet (it loads on the first message)")

    # --- sending -----------------------------------------------------------------------------------------

    @guarded
    async def on_prompt_area_submitted(self, event: PromptArea.Submitted) -> None:
        text = event.text  # the prompt has already cleared itself
        if await self.slash.submit(text):
            return
        question = text[1:] if text.startswith("//") else text
        if self.composer.reading and question.strip():
            self.composer.hold(question)  # an image is still being read: sent when it is a chip
            return
        if self.attachments.documents and question.strip():
            self.composer.choose_document_pages(question, self._document_fit())  # the question picks the pages
            return
        if not question.strip():
            if len(self.attachments):
                self.notify("type your question about the attachment, then press Enter", severity="warning")
            return
        if not await self.send(question) and not self.prompt.text:
            self.prompt.set_prompt(text)  # refused: the text comes back to be sent later

    def _document_fit(self) -> Any:
        """Fits a document's pages to the model's context (None until the model is loaded)."""
        assistant = self.assistant
        if assistant is None or self.load_state != "ready":
            return None
        from ..documents import fit_to_model

        return lambda context, question, others: fit_to_model(assistant, context, question, others)

    def on_composer_image_attached(self, event: Composer.ImageAttached) -> None:
        """Encode while typing: a backend that can (the transformers engine) encodes the image on its thread now,
        so the question sent later finds the features in its vision cache. Queued work: the UI never waits."""
        assistant = self.assistant
        if assistant is None or self.load_state != "ready":
            return
        encode = getattr(assistant.backend, "encode_ahead", None)
        if callable(encode):
            try:
                encode(event.image)
            except Exception:  # noqa: BLE001 - a head start, never a reason to fail the attachment
                log.exception("encoding an attached image ahead failed")

    @guarded
    async def on_composer_send_requested(self, event: Composer.SendRequested) -> None:
        """A question whose images were read or whose document pages were chosen: send it now."""
        if not self.ui_alive:
            return
        if not await self.send(event.question, event.extra) and not self.prompt.text:
            self.prompt.set_prompt(event.question)

    def _can_start_reply(self, waiting_allowed: bool = False) -> bool:
        """Whether a new reply may start now; says why not when it may not."""
        refused = self.controller.refusal(waiting_allowed)
        if refused is not None:
            self.notify(refused.text, severity=refused.severity, markup=False)  # type: ignore[arg-type]
        return refused is None

    def _ensure_chat(self) -> Chat:
        chat, created = self.controller.ensure_chat(self._new_chat_title)
        if created:
            self.current_chat_id = chat.id
            self._new_chat_title = ""
            self.refresh_sidebar()
        return chat

    def send_later(self, text: str, extra: dict[str, Any] | None = None) -> None:
        """Send from a plugin's /command (after the command returns), as if typed and submitted."""
        self.call_next(self._send_guarded, text, extra)

    @guarded
    async def _send_guarded(self, text: str, extra: dict[str, Any] | None) -> None:
        await self.send(text, extra)

    async def send(self, text: str, extra: dict[str, Any] | None = None) -> bool:
        """Send a question with the pending attachments (held until the model is ready, if it is loading).

        False when it cannot be sent now (a reply is still streaming, no model); the user was told why.
        """
        if not self._can_start_reply(waiting_allowed=True):
            return False
        chat = self._ensure_chat()
        items, outgoing = self.composer.take()
        user = UserMessage(
            text,
            images=[(image.image, f"{image.source} {image.width}x{image.height}") for image in outgoing.images],
            attached=[item.label for item in items if item.kind == "text"],
            renderer=self.image_renderer,
        )
        reply = AssistantMessage(None, timings=self.config.timings, renderer=self.image_renderer)
        await self.chat_log.add(user)
        await self.chat_log.add(reply)
        if self.load_state != "ready":
            self.pending = PendingSend(chat, text, outgoing, items, user, reply, extra, self.agent_mode)
            reply.waiting("waiting for the model to load… (Esc cancels)")
            self.start_loading()
            return True
        if self.agent_mode:
            self._start_agent(chat, reply, text, outgoing, extra)
        else:
            self._start_reply(chat, reply, self._asker(chat, text, outgoing, extra))
        return True

    def _asker(
        self, chat: Chat, text: str, outgoing: Outgoing, extra: dict[str, Any] | None = None
    ) -> Callable[[], Any]:
        return self.controller.asker(chat, text, outgoing, extra)

    def _send_pending(self) -> None:
        pending, self.pending = self.pending, None
        if pending is None or not pending.reply.is_attached:
            return
        if pending.agent:
            self._start_agent(pending.chat, pending.reply, pending.text, pending.outgoing, pending.extra)
            return
        asker = self._asker(pending.chat, pending.text, pending.outgoing, pending.extra)
        self._start_reply(pending.chat, pending.reply, asker)

    def _new_reply_widget(self) -> AssistantMessage:
        return AssistantMessage(None, timings=self.config.timings, renderer=self.image_renderer)

    def _start_agent(
        self, chat: Chat, reply: AssistantMessage, text: str, outgoing: Outgoing, extra: dict[str, Any] | None
    ) -> None:
        """Run the agent on the question: each step is drawn in the log as its events arrive."""
        from .agentrun import AgentView, start_agent_run

        assert self.store is not None
        reply.waiting("thinking…")
        extra = dict(extra or {})
        if outgoing.context_text:
            extra["attached"] = outgoing.sources
        self.agent_view = AgentView(self.chat_log, reply, self.store, self._new_reply_widget, self.image_renderer)
        self.agent_run = start_agent_run(
            self,
            chat,
            text,
            images=outgoing.images,
            context_text=outgoing.context_text,
            extra=extra or None,
            max_new_tokens=self.max_new_tokens,
        )
        self.update_status()

    @guarded
    async def on_agent_event_posted(self, message: Any) -> None:
        from ..agent import Finished

        if message.run is not self.agent_run:
            return
        if self.agent_view is not None and self.ui_alive:
            await self.agent_view.handle(message.event)
        if isinstance(message.event, Finished):
            self.agent_run = None
            self.agent_view = None
            if self.ui_alive:
                self.update_status()
                self.refresh_sidebar()

    async def _cancel_pending(self) -> None:
        """Take back a message that waited for the model: its text and attachments return to the prompt."""
        pending, self.pending = self.pending, None
        if pending is None:
            return
        await pending.user.remove()
        await pending.reply.remove()
        if not self.prompt.text.strip():
            self.prompt.set_prompt(pending.text)
        self.composer.give_back(pending.attachments)
        if not self.chat_log.children:
            await self.chat_log.reset()

    def _start_reply(self, chat: Chat, widget: AssistantMessage, start: Callable[[], Any]) -> GenerationJob:
        job = self.controller.begin(chat, widget, start)
        widget.begin()
        self._generate(job)
        return job

    @work(thread=True, group="generate", exit_on_error=False)
    def _generate(self, job: GenerationJob) -> None:
        self.controller.run(
            job,
            started=lambda: self.post_message(ReplyStarted(job)),
            chunk=lambda piece: self.post_message(ReplyChunk(job, piece)),
            done=lambda error: self.post_message(ReplyDone(job, error)),
        )

    @guarded
    def on_reply_started(self, event: ReplyStarted) -> None:
        if event.job.widget.is_attached:
            event.job.widget.waiting("thinking…")

    @guarded
    async def on_reply_chunk(self, event: ReplyChunk) -> None:
        if event.job.widget.is_attached:
            await event.job.widget.append(event.text)

    @guarded
    async def on_reply_done(self, event: ReplyDone) -> None:
        job = event.job
        self.controller.finished(job)
        if not self.ui_alive:
            return
        stream = job.stream
        message = stream.message if stream is not None else None
        if job.widget.is_attached:
            await job.widget.finish(message, event.error)
            reply = stream.reply if stream is not None else None
            if reply is not None and reply.grounding is not None and reply.grounding.shapes:
                show_grounding(job.widget, reply.grounding, str(reply.grounding.raw.get("image_sha256", "")), self.store)
        self.update_status()
        self.refresh_sidebar()

    # --- actions: stop, regenerate, edit, rate, correct, copy ------------------------------------------

    @guarded
    async def action_stop(self) -> None:
        if self.prompt.close_menu():
            return
        stopped = self.controller.stop()
        if stopped == "reply" and self.job is not None and self.job.widget.is_attached:
            self.job.widget.waiting("stopping…")
        if stopped == "pending":
            await self._cancel_pending()
        if stopped is not None:
            return
        if self.focused is not None and self.sidebar in self.focused.ancestors_with_self:
            self.prompt.focus()
            return
        raise SkipAction()

    async def _remove_after_last_question(self) -> None:
        children = list(self.chat_log.children)
        last = max((index for index, child in enumerate(children) if isinstance(child, UserMessage)), default=None)
        if last is None:
            return
        for child in children[last + 1 :]:
            await child.remove()

    @guarded
    async def action_regenerate(self) -> None:
        start = self.controller.regenerator()
        if isinstance(start, Refusal):
            self.notify(start.text, severity=start.severity, markup=False)  # type: ignore[arg-type]
            return
        assert self.chat is not None
        await self._remove_after_last_question()
        reply = await self.chat_log.add(self._new_reply_widget())
        self._start_reply(self.chat, reply, start)

    @guarded
    async def action_edit_last(self) -> None:
        if not self._can_start_reply():
            return
        last = self.chat.conversation.last("user") if self.chat is not None else None
        if last is None:
            self.notify("nothing to edit yet: ask a question first", severity="warning")
            return
        self.push_screen(
            EditorDialog(
                "Edit the last question",
                last.text,
                "Ctrl+S sends it again (its images stay); the reply after it is replaced. Esc cancels.",
            ),
            self._guard_callback(self.resend_edited),
        )

    async def resend_edited(self, text: str | None) -> None:
        if text is None:
            return
        start = self.controller.editor(text)
        if isinstance(start, Refusal):
            self.notify(start.text, severity=start.severity, markup=False)  # type: ignore[arg-type]
            return
        assert self.chat is not None
        questions = self.chat_log.questions
        if questions:
            questions[-1].set_text(text)
        await self._remove_after_last_question()
        reply = await self.chat_log.add(self._new_reply_widget())
        self._start_reply(self.chat, reply, start)

    def target_reply(self) -> AssistantMessage | None:
        """The focused reply, else the newest finished one."""
        node = self.focused
        while node is not None:
            if isinstance(node, AssistantMessage):
                return node
            node = node.parent  # type: ignore[assignment]
        finished = [reply for reply in self.chat_log.replies if reply.message_id is not None and not reply.streaming]
        return finished[-1] if finished else None

    def _finished_target(self, what: str) -> AssistantMessage | None:
        reply = self.target_reply()
        if reply is None or reply.message is None or reply.message_id is None:
            self.notify(f"no reply to {what} yet", severity="warning")
            return None
        if reply.streaming or (self.job is not None and self.job.widget is reply):
            self.notify(f"wait until the reply is finished to {what} it", severity="warning")
            return None
        return reply

    @guarded
    def action_rate(self, value: int) -> None:
        reply = self._finished_target("rate")
        if reply is None or reply.message is None or self.store is None:
            return
        rating = self.controller.rate(reply.message, value)
        reply.refresh_marks()
        self.notify({1: "rated +1 (good)", -1: "rated -1 (bad)", 0: "rating cleared"}[rating])

    @guarded
    def action_set_rating(self, value: int) -> None:
        """Give the target reply this rating (0 clears it); unlike the keys, the same rating again keeps it."""
        reply = self.target_reply()
        current = reply.message.rating if reply is not None and reply.message is not None else None
        if value == 0:
            if current:
                self.action_rate(current)  # rating again clears it
        elif current != value:
            self.action_rate(value)

    @guarded
    def action_correct(self) -> None:
        reply = self._finished_target("correct")
        if reply is None or reply.message is None:
            return
        message = reply.message
        self.push_screen(
            EditorDialog(
                "Correct the reply",
                message.correction if message.correction is not None else message.text,
                "Write the reply you wanted; it is kept as training data for your adapters and the original stays "
                "in the chat. Ctrl+S saves · Esc cancels · empty text removes the correction.",
            ),
            self._guard_callback(functools.partial(self._save_correction, reply)),
        )

    def _save_correction(self, reply: AssistantMessage, text: str | None) -> None:
        if text is None or reply.message is None or reply.message_id is None or self.store is None:
            return
        outcome = self.controller.correct(reply.message, text)
        if outcome == "unchanged":
            self.notify("the text is unchanged; no correction stored", severity="warning")
            return
        reply.refresh_marks()
        self.notify(f"correction {outcome}")

    @guarded
    def action_copy_reply(self) -> None:
        reply = self._finished_target("copy")
        if reply is not None:
            self.copy_to_clipboard(reply.text)
            self.notify("reply copied to the clipboard")

    @guarded
    async def on_assistant_message_action_requested(self, event: AssistantMessage.ActionRequested) -> None:
        event.stop()
        if event.action == "up":
            self.action_rate(1)
        elif event.action == "down":
            self.action_rate(-1)
        elif event.action == "correct":
            self.action_correct()
        elif event.action == "copy":
            self.action_copy_reply()


    # --- what the built-in /commands ask for (builtins.CommandHost) --------------------------------------------------

    def attach_image_files(self, paths: list[Path]) -> None:
        self.composer.attach_image_files(paths)

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
        if self.pending is not None:
            await self._cancel_pending()
        self.controller.use_assistant(assistant, self.current_chat_id)
        self.startup_error = None
        gc.collect()  # let the previous model go before the next one loads
        await self.chat_log.add(Notice(f"switched to profile {assistant.profile.name}"))
        if self.plugins is None:
            self._setup_plugins()
        self.start_loading()

    def switch_adapter(self, argument: str) -> None:
        if self.assistant is None:
            self.notify("no profile is active; switch with /profile NAME", severity="error")
            return
        if not argument:
            self.notify(f"usage: /adapter NAME|none (now {self.assistant.adapter or 'none'})", markup=False)
            return
        if self.job is not None:
            self.notify("stop the reply (Esc) before switching adapter", severity="warning")
            return
        self._set_adapter(self.assistant, None if argument.lower() in ("none", "off", "base") else argument)

    @work(thread=True, group="adapter", exclusive=True, exit_on_error=False)
    def _set_adapter(self, assistant: Assistant, name: str | None) -> None:
        try:
            assistant.set_adapter(name)
        except AssistantError as error:
            self.post_message(AdapterChanged(assistant, name, str(error)))
        except Exception as error:  # noqa: BLE001
            log.exception("switching adapter failed")
            self.post_message(AdapterChanged(assistant, name, f"switching adapter failed: {type(error).__name__}: {error}"))
        else:
            self.post_message(AdapterChanged(assistant, name))

    def on_adapter_changed(self, event: AdapterChanged) -> None:
        if not self.ui_alive:
            return
        if event.error:
            self.notify(event.error, severity="error", markup=False)
        else:
            self.notify(f"adapter: {event.adapter or 'none (base model)'}", markup=False)
        self.update_status()

    def action_toggle_agent(self) -> None:
        self.set_agent_mode(not self.agent_mode)

    def set_agent_mode(self, on: bool) -> None:
        self.agent_mode = on
        if on:
            self.notify(
                "agent mode on: the model may call tools (screenshots, PDF pages, …); tools with side effects ask first",
                markup=False,
            )
        else:
            self.notify("agent mode off: plain replies")
        self.update_status()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.config, self.commands.all(), self.config_file_display))

    # --- which chat is open ------------------------------------------------------------------------------------------

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
        await show_conversation(self.chat_log, conversation, self.store, self.config.timings, self.image_renderer)
        self.prompt.prompt_history = [m.text for m in conversation.messages if m.role == "user" and m.text.strip()][-100:]
        self.update_status()
        self.refresh_sidebar()

    def refresh_sidebar(self) -> None:
        self.sidebar.refresh_chats()

    def action_toggle_sidebar(self) -> None:
        if not self.sidebar.toggle():
            self.prompt.focus()

    @guarded
    async def on_sidebar_chat_selected(self, event: Sidebar.ChatSelected) -> None:
        if event.chat_id != self.current_chat_id:
            await self.open_chat(event.chat_id)
        self.prompt.focus()

    def on_sidebar_chat_renamed(self, event: Sidebar.ChatRenamed) -> None:
        if self.chat is not None and self.chat.id == event.chat_id:
            self.chat.conversation.title = event.title

    @guarded
    async def on_sidebar_open_chat_delete_requested(self, event: Sidebar.OpenChatDeleteRequested) -> None:
        if self.job is not None:
            self.notify("stop the reply (Esc) before deleting this chat", severity="warning")
            return
        await self.new_chat()
        self.sidebar.remove_chat(event.chat_id)

    def report_error(self, error: BaseException, what: str) -> None:
        """AssistantError: its line as a notification. Anything else is a bug: logged with its traceback."""
        if not self.ui_alive:  # shutting down: a worker's late report found its widgets gone
            log.debug("ignored while closing: %s: %s", what, error)
            return
        report(self.notify, error, what)


def _setup_logging() -> None:
    """Log to the user data dir (Textual owns the terminal; tracebacks go to the file)."""
    from ..paths import touch_private

    try:
        paths = user_paths().ensure()
        handler = logging.FileHandler(touch_private(paths.log_file), encoding="utf-8")
    except (OSError, AssistantError):
        return
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    if not any(isinstance(h, logging.FileHandler) for h in root.handlers):
        root.addHandler(handler)
    root.setLevel(logging.INFO)


def run_app(
    profile: str | None = None,
    model: str | None = None,
    chat_id: int | None = None,
    adapter: str | None = None,
    base_url: str | None = None,
) -> None:
    """Run the terminal UI (what plain `assistant` does)."""
    started = time.perf_counter()
    _setup_logging()
    AssistantApp(profile, model=model, chat_id=chat_id, adapter=adapter, started_at=started, base_url=base_url).run()
