"""The TUI's conversation flow in plain Python: what may start now, send, stream, stop, regenerate, edit, rate, correct.

Why apart from the app: the rules (one reply at a time, a question may wait for the model, a toggled rating,
an unchanged correction is not stored) and the generation loop are testable without Textual
(tests/tui/test_chat_controller.py). The app owns the widgets and routes messages; it asks the controller what
to do and shows what it answers. No Textual import here (checked by the purity test).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from threading import Event
from typing import TYPE_CHECKING, Any, Callable

from ..errors import AssistantError

if TYPE_CHECKING:
    from ..api import Assistant, Chat, ReplyStream
    from ..conversation import Message
    from .attachments import Outgoing

log = logging.getLogger(__name__)


@dataclass(eq=False)
class GenerationJob:
    """One reply being written: the worker fills `stream`; Esc sets `cancel`."""

    number: int
    chat: "Chat"
    widget: Any
    """The view showing this reply (the TUI's AssistantMessage)."""
    start: Callable[[], "ReplyStream"]
    cancel: Event = field(default_factory=Event)
    stream: "ReplyStream | None" = None

    def stop(self) -> None:
        self.cancel.set()
        if self.stream is not None:
            self.stream.cancel()


@dataclass
class PendingSend:
    """A question sent before the model was ready: shown at once (its views), sent when the model has loaded."""

    chat: "Chat"
    text: str
    outgoing: "Outgoing"
    attachments: list[Any]
    """What the composer gives back if the question is taken back (Esc)."""
    user: Any
    reply: Any
    """The views of the question and of its reply-to-be."""
    extra: dict[str, Any] | None = None
    agent: bool = False


@dataclass(frozen=True)
class Refusal:
    """Why something cannot be done now: one line for the user, and how loudly to say it."""

    text: str
    severity: str = "warning"


@dataclass
class ChatController:
    """Which chat is open, the reply being written, and the rules for starting, stopping and marking replies."""

    max_new_tokens: int | None = None
    store: Any = None
    """The chat store (there may be one while no model could be set up: old chats can still be rated)."""
    assistant: "Assistant | None" = None
    chat: "Chat | None" = None
    job: GenerationJob | None = None
    pending: PendingSend | None = None
    """A question shown before the model was ready, sent when it has loaded."""
    agent_run: Any = None
    load_state: str = "idle"
    """idle, loading, ready or failed."""
    load_error: str | None = None
    _numbers: Any = field(default_factory=lambda: itertools.count(1), repr=False)

    # --- what may start now ----------------------------------------------------------------------------------------

    def refusal(self, waiting_allowed: bool = False) -> Refusal | None:
        """Why a new reply may not start now (None when it may); `waiting_allowed`: it may wait for the model."""
        if self.agent_run is not None:
            return Refusal("the agent is still working; press Esc to stop it first")
        if self.job is not None:
            if self.chat is not None and self.job.chat is self.chat:
                return Refusal("a reply is still being written; press Esc to stop it first")
            return Refusal("the previous chat's reply is still stopping; try again in a moment")
        if self.pending is not None:
            return Refusal("a question is already waiting for the model to load (Esc cancels it)")
        if self.assistant is None or self.load_state == "failed":
            return Refusal(f"no model is loaded ({self.load_error or 'no profile'}); switch with /profile NAME", "error")
        if self.load_state != "ready" and not waiting_allowed:
            return Refusal("the model is still loading; try again when the status bar shows it")
        return None

    def ensure_chat(self, title: str = "") -> tuple["Chat", bool]:
        """The open chat, created (with `title`) when there is none; True when it was just created."""
        assert self.assistant is not None
        if self.chat is not None:
            return self.chat, False
        self.chat = self.assistant.chat(title=title)
        return self.chat, True

    def use_assistant(self, assistant: "Assistant", open_chat_id: int | None = None) -> None:
        """Switch to another profile's assistant (its model loads next); the open chat continues with it."""
        from ..api import Chat

        self.assistant = assistant
        self.load_state = "idle"
        self.load_error = None
        if self.chat is not None:
            self.chat = Chat(assistant, self.chat.conversation)
        elif open_chat_id is not None and self.store is not None:
            self.chat = Chat(assistant, self.store.get_conversation(open_chat_id))

    @staticmethod
    def load(
        assistant: "Assistant", progress: Callable[[str, float | None], None], done: Callable[[str | None], None]
    ) -> None:
        """Load the assistant's model (on a worker thread): `progress` as it goes, then `done` once with None or the
        one-line error (a bug is logged and named, with the log file)."""
        try:
            assistant.load(progress)
        except AssistantError as error:
            done(str(error))
        except Exception as error:  # noqa: BLE001 - a bug in loading: logged, shown, the app stays up
            from ..paths import user_paths

            log.exception("model load failed")
            done(f"loading the model failed ({type(error).__name__}: {error}); details are in {user_paths().log_file}")
        else:
            done(None)

    def loaded(self, owner: Any, error: str | None) -> bool:
        """The load of `owner`'s model ended (`error` None: it is ready). False, and nothing changes, when `owner` is
        an assistant switched away from meanwhile."""
        if owner is not self.assistant:
            return False
        self.load_state = "failed" if error else "ready"
        self.load_error = error
        return True

    # --- what a reply streams from ---------------------------------------------------------------------------------

    def asker(self, chat: "Chat", text: str, outgoing: "Outgoing", extra: dict[str, Any] | None = None) -> Callable[[], "ReplyStream"]:
        """Starts the reply to a new question with its attachments (documents' text, images)."""
        extra = dict(extra or {})
        if outgoing.context_text:
            extra["attached"] = outgoing.sources
        max_new_tokens = self.max_new_tokens
        video = outgoing.videos[0] if outgoing.videos else None
        return lambda: chat.stream(
            text, outgoing.images, max_new_tokens=max_new_tokens, context_text=outgoing.context_text, extra=extra or None,
            video=video,
        )

    def regenerator(self) -> "Callable[[], ReplyStream] | Refusal":
        """Starts another reply to the last question, or why not."""
        refused = self.refusal()
        if refused is not None:
            return refused
        chat = self.chat
        if chat is None or chat.conversation.last("user") is None:
            return Refusal("nothing to regenerate yet: ask a question first")
        max_new_tokens = self.max_new_tokens
        return lambda: chat.stream_regenerate(max_new_tokens=max_new_tokens)

    def editor(self, text: str) -> "Callable[[], ReplyStream] | Refusal":
        """Starts the reply to the last question rewritten as `text` (its images stay), or why not."""
        if not text.strip():
            return Refusal("the edited question is empty; nothing was sent")
        refused = self.refusal()
        if refused is not None:
            return refused
        chat = self.chat
        if chat is None or chat.conversation.last("user") is None:
            return Refusal("nothing to edit yet: ask a question first")
        max_new_tokens = self.max_new_tokens
        return lambda: chat.stream_edit_last(text, max_new_tokens=max_new_tokens)

    # --- the reply being written -----------------------------------------------------------------------------------

    def begin(self, chat: "Chat", widget: Any, start: Callable[[], "ReplyStream"]) -> GenerationJob:
        """The job for a reply about to be generated; it is the current one until `finished`."""
        self.job = GenerationJob(next(self._numbers), chat, widget, start)
        return self.job

    @staticmethod
    def run(
        job: GenerationJob,
        started: Callable[[], None],
        chunk: Callable[[str], None],
        done: Callable[[str | None], None],
    ) -> None:
        """Generate the job's reply (on a worker thread): `started`, then `chunk` per piece, then `done` once with
        None or the one-line error. A model's AssistantError is its own line; anything else is logged as a bug."""
        try:
            stream = job.start()
        except AssistantError as error:
            done(str(error))
            return
        except Exception as error:  # noqa: BLE001
            log.exception("starting a reply failed")
            done(f"the reply could not start: {type(error).__name__}: {error}")
            return
        job.stream = stream
        if job.cancel.is_set():
            stream.cancel()
        started()
        try:
            for piece in stream:
                chunk(piece)
        except AssistantError as error:
            done(str(error))
            return
        except Exception as error:  # noqa: BLE001 - ReplyStream turns model errors into AssistantError; this is a bug
            log.exception("generation failed")
            done(f"generation failed: {type(error).__name__}: {error}")
            return
        done(None)

    def finished(self, job: GenerationJob) -> None:
        if self.job is job:
            self.job = None

    def stop(self) -> str | None:
        """Stop what is running: "agent", "reply" or "pending" (the caller takes the waiting question back), or
        None when nothing runs."""
        if self.agent_run is not None:
            self.agent_run.stop()
            return "agent"
        if self.job is not None:
            self.job.stop()
            return "reply"
        if self.pending is not None:
            return "pending"
        return None

    # --- marking finished replies ----------------------------------------------------------------------------------

    def rate(self, message: "Message", value: int) -> int:
        """Rate a finished reply +1/-1; the same rating again clears it. Saved at once; returns the new rating."""
        assert message.id is not None
        rating = 0 if message.rating == value else value
        if self._in_open_chat(message):
            self.chat.rate(message.id, rating)  # type: ignore[union-attr]
        else:
            self._store().set_rating(message.id, rating)
        message.rating = rating
        return rating

    def correct(self, message: "Message", text: str) -> str:
        """Keep `text` as the reply the user wanted (empty removes the correction): "saved", "removed" or
        "unchanged" (the text is the reply's own and there was no correction: nothing stored)."""
        assert message.id is not None
        value: str | None = text if text.strip() else None
        if value is not None and value.strip() == message.text.strip() and message.correction is None:
            return "unchanged"
        if self._in_open_chat(message):
            self.chat.correct(message.id, value)  # type: ignore[union-attr]
        else:
            self._store().set_correction(message.id, value)
        message.correction = value
        return "saved" if value is not None else "removed"

    def _in_open_chat(self, message: "Message") -> bool:
        return self.chat is not None and any(m.id == message.id for m in self.chat.conversation.messages)

    def _store(self) -> Any:
        store = self.store if self.store is not None else getattr(self.assistant, "store", None)
        assert store is not None
        return store
