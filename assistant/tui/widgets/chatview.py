"""The chat pane: the open chat's log and the composer, and the flow of a question — send (or hold it while the model
loads), stream the reply, run the agent, stop, regenerate, edit.

It owns that behaviour and the widgets it needs; the rules come from the ChatController (controller.py, no Textual)
it is given. It tells the app only through messages: `ChatStarted` (a new chat was saved), `ModelWanted` (a question
waits for the model) and `Changed` (the status line and the chat list may need redrawing).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message

from ..controller import PendingSend, Refusal
from ..guard import guard_callback, guarded, report
from ..messages import ReplyChunk, ReplyDone, ReplyStarted
from ..screens.dialogs import EditorDialog
from .chatlog import AssistantMessage, ChatLog, UserMessage
from .composer import Composer
from .history import show_conversation, show_grounding

if TYPE_CHECKING:
    from ...api import Chat
    from ...conversation import Conversation
    from ..attachments import Outgoing
    from ..config import TuiConfig
    from ..controller import ChatController, GenerationJob

log = logging.getLogger(__name__)


class ChatView(Vertical):
    """The chat log above the composer; sends questions and shows their replies as they stream."""

    class ChatStarted(Message):
        """The first question of a new chat saved it: `chat_id` is its id in the store."""

        def __init__(self, chat_id: int) -> None:
            super().__init__()
            self.chat_id = chat_id

    class ModelWanted(Message):
        """A question waits for the model: start loading it."""

    class Changed(Message):
        """A reply or an agent run started or ended, or the mode changed: the status and the chat list may differ."""

    def __init__(self, controller: "ChatController", config: "TuiConfig", image_renderer: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.controller = controller
        self.config = config
        self.image_renderer = image_renderer
        self.agent_mode = False
        """When on, a question runs the agent: the model may call tools (asking first for risky ones)."""
        self.agent_view: Any = None
        self.new_chat_title = ""
        """The title the next new chat gets (/new TITLE)."""
        self.chat_log = ChatLog(id="chat-log")
        self.chat_log.marks = controller
        self.composer = Composer(id="composer")

    def compose(self) -> ComposeResult:
        yield self.chat_log
        yield self.composer

    @property
    def alive(self) -> bool:
        """False once the app is shutting down (workers may still post messages then: they are dropped)."""
        return self.chat_log.is_attached

    def report_error(self, error: BaseException, what: str) -> None:
        if self.alive:
            report(self.notify, error, what)

    # --- which chat is shown -------------------------------------------------------------------------------------------

    async def leave(self) -> None:
        """Before showing another chat: stop a running reply or agent (it finishes saving in the background)."""
        controller = self.controller
        if controller.job is not None:
            controller.job.stop()
        if controller.agent_run is not None:
            controller.agent_run.stop()
            self.agent_view = None  # it finishes saving in the background; nothing more is drawn here
        if controller.pending is not None:
            await self.cancel_pending()

    async def show(self, conversation: "Conversation | None", title: str = "") -> None:
        """Show a saved conversation, or an empty log for a new chat (saved as `title` with its first question)."""
        await self.leave()
        self.new_chat_title = title
        if conversation is None:
            await self.chat_log.reset()
            return
        assert self.controller.store is not None
        await show_conversation(self.chat_log, conversation, self.controller.store, self.config.timings, self.image_renderer)
        questions = [m.text for m in conversation.messages if m.role == "user" and m.text.strip()]
        self.composer.prompt.prompt_history = questions[-100:]

    # --- sending ---------------------------------------------------------------------------------------------------------

    async def submit(self, text: str) -> None:
        """A message typed and submitted (not a /command): send it, or wait for its attachments first."""
        composer = self.composer
        question = text[1:] if text.startswith("//") else text
        if composer.reading and question.strip():
            composer.hold(question)  # an image is still being read: sent when it is a chip
            return
        if composer.attachments.documents and question.strip():
            composer.choose_document_pages(question, self._document_fit())  # the question picks the pages
            return
        if not question.strip():
            if len(composer.attachments):
                self.notify("type your question about the attachment, then press Enter", severity="warning")
            return
        if not await self.send(question) and not composer.prompt.text:
            composer.prompt.set_prompt(text)  # refused: the text comes back to be sent later

    def _document_fit(self) -> Any:
        """Fits a document's pages to the model's context (None until the model is loaded)."""
        assistant = self.controller.assistant
        if assistant is None or self.controller.load_state != "ready":
            return None
        from ...documents import fit_to_model

        return lambda context, question, others: fit_to_model(assistant, context, question, others)

    def on_composer_image_attached(self, event: Composer.ImageAttached) -> None:
        """Work while the user types: the transformers engine prefills the chat so far with the pending images
        (Assistant.prefill_ahead), so the question sent later only prefills its own words; in agent mode (its
        prompt starts with the tools) the image is only encoded. Queued work: the UI never waits."""
        assistant = self.controller.assistant
        if assistant is None or self.controller.load_state != "ready":
            return
        try:
            if self.agent_mode:
                encode = getattr(assistant.backend, "encode_ahead", None)
                if callable(encode):
                    encode(event.image)
                return
            images = [item.image for item in self.composer.attachments.items if item.image is not None]
            assistant.prefill_ahead(images, chat=self.controller.chat)
        except Exception:  # noqa: BLE001 - a head start, never a reason to fail the attachment
            log.exception("working ahead on an attached image failed")

    @guarded
    async def on_composer_send_requested(self, event: Composer.SendRequested) -> None:
        """A question whose images were read or whose document pages were chosen: send it now."""
        if not self.alive:
            return
        if not await self.send(event.question, event.extra) and not self.composer.prompt.text:
            self.composer.prompt.set_prompt(event.question)

    def can_start_reply(self, waiting_allowed: bool = False) -> bool:
        """Whether a new reply may start now; says why not when it may not."""
        refused = self.controller.refusal(waiting_allowed)
        if refused is not None:
            self.notify(refused.text, severity=refused.severity, markup=False)  # type: ignore[arg-type]
        return refused is None

    def _ensure_chat(self) -> "Chat":
        chat, created = self.controller.ensure_chat(self.new_chat_title)
        if created:
            self.new_chat_title = ""
            self.post_message(self.ChatStarted(chat.id))
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
        if not self.can_start_reply(waiting_allowed=True):
            return False
        chat = self._ensure_chat()
        items, outgoing = self.composer.take()
        user = UserMessage(
            text,
            images=[(image.image, f"{image.source} {image.width}x{image.height}") for image in outgoing.images],
            attached=[item.label for item in items if item.kind in ("text", "video")],
            renderer=self.image_renderer,
        )
        reply = self.new_reply_widget()
        await self.chat_log.add(user)
        await self.chat_log.add(reply)
        if self.controller.load_state != "ready":
            self.controller.pending = PendingSend(chat, text, outgoing, items, user, reply, extra, self.agent_mode)
            reply.waiting("waiting for the model to load… (Esc cancels)")
            self.post_message(self.ModelWanted())
            return True
        if self.agent_mode:
            self._start_agent(chat, reply, text, outgoing, extra)
        else:
            self._start_reply(chat, reply, self.controller.asker(chat, text, outgoing, extra))
        return True

    def send_pending(self) -> None:
        """The model is ready: send the question that waited for it."""
        pending, self.controller.pending = self.controller.pending, None
        if pending is None or not pending.reply.is_attached:
            return
        if pending.agent:
            self._start_agent(pending.chat, pending.reply, pending.text, pending.outgoing, pending.extra)
            return
        asker = self.controller.asker(pending.chat, pending.text, pending.outgoing, pending.extra)
        self._start_reply(pending.chat, pending.reply, asker)

    async def cancel_pending(self) -> None:
        """Take back a message that waited for the model: its text and attachments return to the prompt."""
        pending, self.controller.pending = self.controller.pending, None
        if pending is None:
            return
        await pending.user.remove()
        await pending.reply.remove()
        prompt = self.composer.prompt
        if not prompt.text.strip():
            prompt.set_prompt(pending.text)
        self.composer.give_back(pending.attachments)
        if not self.chat_log.children:
            await self.chat_log.reset()

    def new_reply_widget(self) -> AssistantMessage:
        return AssistantMessage(None, timings=self.config.timings, renderer=self.image_renderer)

    # --- the agent -------------------------------------------------------------------------------------------------------

    def set_agent_mode(self, on: bool) -> None:
        self.agent_mode = on
        if on:
            self.notify(
                "agent mode on: the model may call tools (screenshots, PDF pages, …); tools with side effects ask first",
                markup=False,
            )
        else:
            self.notify("agent mode off: plain replies")
        self.post_message(self.Changed())

    def _start_agent(
        self, chat: "Chat", reply: AssistantMessage, text: str, outgoing: "Outgoing", extra: dict[str, Any] | None
    ) -> None:
        """Run the agent on the question: each step is drawn in the log as its events arrive."""
        from ..agentrun import AgentView, start_agent_run

        store = self.controller.store
        assert store is not None
        reply.waiting("thinking…")
        if outgoing.videos:
            self.notify("agent mode does not take videos yet: the video was left out (/agent off to ask about it)",
                        severity="warning", markup=False)
        extra = dict(extra or {})
        if outgoing.context_text:
            extra["attached"] = outgoing.sources
        self.agent_view = AgentView(self.chat_log, reply, store, self.new_reply_widget, self.image_renderer)
        self.controller.agent_run = start_agent_run(
            self.app,
            chat,
            text,
            images=outgoing.images,
            context_text=outgoing.context_text,
            extra=extra or None,
            max_new_tokens=self.controller.max_new_tokens,
        )
        self.post_message(self.Changed())

    async def agent_event(self, message: Any) -> None:
        """A step of the agent run (posted to the app by its worker): drawn; the run's end is told."""
        from ...agent import Finished

        if message.run is not self.controller.agent_run:
            return
        if self.agent_view is not None and self.alive:
            await self.agent_view.handle(message.event)
        if isinstance(message.event, Finished):
            self.controller.agent_run = None
            self.agent_view = None
            self.post_message(self.Changed())

    # --- a reply streaming -------------------------------------------------------------------------------------------------

    def _start_reply(self, chat: "Chat", widget: AssistantMessage, start: Callable[[], Any]) -> "GenerationJob":
        job = self.controller.begin(chat, widget, start)
        widget.begin()
        self._generate(job)
        return job

    @work(thread=True, group="generate", exit_on_error=False)
    def _generate(self, job: "GenerationJob") -> None:
        self.controller.run(
            job,
            started=lambda: self.post_message(ReplyStarted(job)),
            chunk=lambda piece: self.post_message(ReplyChunk(job, piece)),
            done=lambda error: self.post_message(ReplyDone(job, error)),
        )

    @guarded
    def on_reply_started(self, event: ReplyStarted) -> None:
        event.stop()
        if event.job.widget.is_attached:
            event.job.widget.waiting("thinking…")

    @guarded
    async def on_reply_chunk(self, event: ReplyChunk) -> None:
        event.stop()
        if event.job.widget.is_attached:
            await event.job.widget.append(event.text)

    @guarded
    async def on_reply_done(self, event: ReplyDone) -> None:
        event.stop()
        job = event.job
        self.controller.finished(job)
        if not self.alive:
            return
        stream = job.stream
        message = stream.message if stream is not None else None
        if job.widget.is_attached:
            await job.widget.finish(message, event.error)
            reply = stream.reply if stream is not None else None
            if reply is not None and reply.grounding is not None and reply.grounding.shapes:
                sha = str(reply.grounding.raw.get("image_sha256", ""))
                show_grounding(job.widget, reply.grounding, sha, self.controller.store)
        self.post_message(self.Changed())

    # --- stop, regenerate, edit ----------------------------------------------------------------------------------------------

    async def stop(self) -> bool:
        """Esc: close the completion menu, else stop the reply or agent, else take back a waiting question.
        False when there was nothing to stop."""
        if self.composer.prompt.close_menu():
            return True
        stopped = self.controller.stop()
        job = self.controller.job
        if stopped == "reply" and job is not None and job.widget.is_attached:
            job.widget.waiting("stopping…")
        if stopped == "pending":
            await self.cancel_pending()
        return stopped is not None

    async def regenerate(self) -> None:
        start = self.controller.regenerator()
        if isinstance(start, Refusal):
            self.notify(start.text, severity=start.severity, markup=False)  # type: ignore[arg-type]
            return
        assert self.controller.chat is not None
        await self.chat_log.remove_after_last_question()
        reply = await self.chat_log.add(self.new_reply_widget())
        self._start_reply(self.controller.chat, reply, start)

    async def edit_last(self) -> None:
        """Open the last question in an editor; Ctrl+S sends it again."""
        if not self.can_start_reply():
            return
        chat = self.controller.chat
        last = chat.conversation.last("user") if chat is not None else None
        if last is None:
            self.notify("nothing to edit yet: ask a question first", severity="warning")
            return
        self.app.push_screen(
            EditorDialog(
                "Edit the last question",
                last.text,
                "Ctrl+S sends it again (its images stay); the reply after it is replaced. Esc cancels.",
            ),
            guard_callback(self.report_error, self.resend_edited),
        )

    async def resend_edited(self, text: str | None) -> None:
        """Replace the last question by `text` and answer it again (None: the editor was cancelled)."""
        if text is None:
            return
        start = self.controller.editor(text)
        if isinstance(start, Refusal):
            self.notify(start.text, severity=start.severity, markup=False)  # type: ignore[arg-type]
            return
        assert self.controller.chat is not None
        questions = self.chat_log.questions
        if questions:
            questions[-1].set_text(text)
        await self.chat_log.remove_after_last_question()
        reply = await self.chat_log.add(self.new_reply_widget())
        self._start_reply(self.controller.chat, reply, start)
