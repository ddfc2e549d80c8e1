"""The agent in the TUI: a worker thread runs the loop, its events come to the UI thread as messages, confirmations
are asked with ToolApprovalDialog, and AgentView draws each step in the chat log as it happens.

Wiring in the app (kept small on purpose):
- on send with the chat's agent toggle on: `run = start_agent_run(app, chat, question, images=..., ...)`,
  `view = AgentView(chat_log, first_reply_widget, store, make_reply=...)`;
- `on_agent_event(self, message)`: `await view.handle(message.event)` when `message.run` is the current run;
- Esc: `run.stop()`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from textual.message import Message
from textual.widgets import Static

from ..agent import (
    DEFAULT_MAX_STEPS,
    Agent,
    AgentEvent,
    AnswerChunk,
    Finished,
    ReplyDone,
    StepStarted,
    ToolCallApproved,
    ToolCallDenied,
    ToolCallRequested,
    ToolResultReady,
    describe_event,
)
from ..permissions import Answer, ApprovalRequest, Permissions
from .screens.approval import ToolApprovalDialog
from .widgets.toolstep import ToolStep

if TYPE_CHECKING:
    from textual.app import App

    from ..api import Chat
    from ..store import Store

log = logging.getLogger(__name__)


@dataclass(eq=False)
class AgentRun:
    """One run of the agent in the app. `stop()` (Esc) ends it; the worker posts `AgentEventPosted` messages."""

    agent: Agent
    start: Callable[[], Iterator[AgentEvent]]
    finished: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        self.agent.stop()


class AgentEventPosted(Message):
    """A step of an agent run, posted by its worker thread to the app."""

    def __init__(self, run: AgentRun, event: AgentEvent) -> None:
        super().__init__()
        self.run = run
        self.event = event


def dialog_approver(app: "App[Any]", run: AgentRun, poll_s: float = 0.1) -> Callable[[ApprovalRequest], Answer]:
    """An approver for the agent's worker thread: shows the dialog on the UI thread and waits for the user.

    Stopping the run, or the app closing, while the dialog is open counts as a denial.
    """

    def approve(request: ApprovalRequest) -> Answer:
        answered = threading.Event()
        box: dict[str, Any] = {}

        def done(answer: Answer | None) -> None:
            box["answer"] = answer
            answered.set()

        dialog = ToolApprovalDialog(request)
        app.call_from_thread(app.push_screen, dialog, done)
        while not answered.wait(poll_s):
            if run.agent.stopped or not app.is_running:
                try:  # take the question back: the run no longer waits for it
                    app.call_from_thread(_withdraw, dialog)
                except Exception:  # noqa: BLE001 - the app is closing
                    pass
                return Answer.DENY
        answer = box.get("answer")
        return answer if isinstance(answer, Answer) else Answer.DENY

    return approve


def _withdraw(dialog: ToolApprovalDialog) -> None:
    if dialog.is_attached and dialog.is_current:
        dialog.dismiss(Answer.DENY)


def start_agent_run(
    app: "App[Any]",
    chat: "Chat",
    question: str,
    images: Sequence[Any] = (),
    context_text: str = "",
    extra: dict[str, Any] | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    max_new_tokens: int | None = None,
    permissions: Permissions | None = None,
) -> AgentRun:
    """Start the agent on `chat` in a worker thread; every step arrives as an AgentEventPosted message."""
    permissions = permissions or Permissions()
    agent = Agent(chat, permissions, max_steps=max_steps, max_new_tokens=max_new_tokens)
    run = AgentRun(agent, lambda: agent.run(question, images, context_text, extra))
    if permissions.approver is None:
        permissions.approver = dialog_approver(app, run)

    def work() -> None:
        try:
            for event in run.start():
                app.post_message(AgentEventPosted(run, event))
        except Exception as error:  # noqa: BLE001 - shown in the chat, the app keeps running
            log.exception("the agent failed")
            message = str(error) if error.__class__.__name__ == "AssistantError" else f"{type(error).__name__}: {error}"
            app.post_message(AgentEventPosted(run, Finished("failed", error=message)))
        finally:
            run.finished.set()

    app.run_worker(work, thread=True, group="agent", exit_on_error=False, name="agent")
    return run


class AgentView:
    """Draws a run in the chat log: each reply streams into a reply widget, each call becomes a ToolStep.

    `make_reply()` returns a new, unmounted reply widget (the app's AssistantMessage); it needs `begin()`,
    `async append(text)` and `async finish(message, error)`. `first_reply` is the widget already shown for the
    question (the first step writes into it).
    """

    def __init__(
        self,
        log_widget: Any,
        first_reply: Any,
        store: "Store",
        make_reply: Callable[[], Any],
        renderer: str = "auto",
    ) -> None:
        self.log = log_widget
        self.reply = first_reply
        self.store = store
        self.make_reply = make_reply
        self.renderer = renderer
        self.steps: dict[str, ToolStep] = {}
        self._fresh = True
        self.finished: Finished | None = None

    def _key(self, event: Any) -> str:
        return f"{event.step}:{event.call.call_id or id(event.call)}"

    async def handle(self, event: AgentEvent) -> None:
        if isinstance(event, StepStarted):
            if not self._fresh:
                self.reply = await self.log.add(self.make_reply())
            self._fresh = False
            self.reply.begin()
        elif isinstance(event, AnswerChunk):
            await self.reply.append(event.text)
        elif isinstance(event, ReplyDone):
            await self.reply.finish(event.message, event.reply.error)
        elif isinstance(event, ToolCallRequested):
            status = "invalid" if event.error else ("needs confirmation" if event.needs_confirmation else "running")
            step = ToolStep(event.call, renderer=self.renderer, status=status)
            self.steps[self._key(event)] = step
            await self.log.add(step)
        elif isinstance(event, ToolCallApproved):
            self._step(event).set_status(f"{event.decision.describe()} · running")
        elif isinstance(event, ToolCallDenied):
            self._step(event).set_status(event.decision.describe())
        elif isinstance(event, ToolResultReady):
            images = []
            for part in event.images:
                try:
                    images.append((self.store.image_path(part.sha256), f"{part.source} {part.width}x{part.height}"))
                except Exception:  # noqa: BLE001 - a missing image shows as missing, the step still shows
                    continue
            await self._step(event).set_result(event.result, images)
        elif isinstance(event, Finished):
            self.finished = event
            if event.reason == "failed" and self.reply is not None:
                await self.reply.finish(None, event.error)
            line = describe_event(event)
            if line:
                await self.log.add(Static(line, classes="notice notice-warning", markup=False))

    def _step(self, event: Any) -> ToolStep:
        return self.steps[self._key(event)]
