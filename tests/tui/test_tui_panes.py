"""The chat log's reply actions and the status bar's line, each on its own (no AssistantApp, no model)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from textual.app import App, ComposeResult

from assistant.conversation import Message, TextPart
from assistant.tui.controller import ChatController
from assistant.tui.widgets.chatlog import AssistantMessage, ChatLog
from assistant.tui.widgets.statusbar import StatusBar
from tests.tui.tuihelpers import async_test, wait_dialog, wait_for


class Marks:
    """Records what the chat log saves (the ChatController's rate/correct, without a store)."""

    def __init__(self) -> None:
        self.job: Any = None
        self.saved: list[tuple[str, int, Any]] = []

    def rate(self, message: Message, value: int) -> int:
        rating = 0 if message.rating == value else value
        message.rating = rating
        self.saved.append(("rate", message.id or 0, rating))
        return rating

    def correct(self, message: Message, text: str) -> str:
        self.saved.append(("correct", message.id or 0, text))
        message.correction = text or None
        return "saved" if text else "removed"


class LogHost(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.log_widget = ChatLog()
        self.log_widget.marks = Marks()
        self.notes: list[tuple[str, str]] = []
        self.copied: list[str] = []

    def compose(self) -> ComposeResult:
        yield self.log_widget

    def notify(self, message: str, *, title: str = "", severity: Any = "information", timeout: float | None = None,
               markup: bool = True) -> None:
        self.notes.append((severity, message))

    def copy_to_clipboard(self, text: str) -> None:
        self.copied.append(text)


def reply(message_id: int, text: str) -> AssistantMessage:
    return AssistantMessage(Message("assistant", [TextPart(text)], id=message_id), timings=False, renderer="halfcell")


@async_test
async def test_the_chat_log_rates_corrects_and_copies_the_newest_or_focused_reply():
    app = LogHost()
    async with app.run_test() as pilot:
        chat_log, marks = app.log_widget, app.log_widget.marks
        chat_log.rate(1)
        assert app.notes == [("warning", "no reply to rate yet")] and marks.saved == []
        first = await chat_log.add(reply(1, "first answer"))
        second = await chat_log.add(reply(2, "second answer"))
        chat_log.rate(1)
        chat_log.rate(1)  # the same rating again clears it
        chat_log.set_rating(-1)
        chat_log.set_rating(-1)  # /rate down twice keeps it
        assert marks.saved == [("rate", 2, 1), ("rate", 2, 0), ("rate", 2, -1)]
        first.focus()
        await pilot.pause()
        chat_log.copy_reply()
        assert app.copied == ["first answer"]
        chat_log.correct()
        field = await wait_dialog(pilot, "#editor")
        field.text = "a better first answer"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: ("correct", 1, "a better first answer") in marks.saved, "the correction")
        marks.job = SimpleNamespace(widget=second)  # the reply being written is never marked
        second.focus()
        await pilot.pause()
        chat_log.rate(1)
        assert app.notes[-1] == ("warning", "wait until the reply is finished to rate it")


@async_test
async def test_the_status_bar_says_why_there_is_no_model():
    controller = ChatController()
    notes: list[tuple[str, str]] = []

    class StatusHost(App[None]):
        def compose(self) -> ComposeResult:
            yield StatusBar(controller)

        def notify(self, message: str, *, title: str = "", severity: Any = "information",
                   timeout: float | None = None, markup: bool = True) -> None:
            notes.append((severity, message))

    profile = SimpleNamespace(name="tiny-smolvlm", model_label="tiny-smolvlm")
    app = StatusHost()
    async with app.run_test() as pilot:
        bar = app.query_one(StatusBar)
        bar.show_session(None, "failed", "no profile named 'x'", 0, agent=False, loads_now=False)
        assert str(bar.text.render()) == "no profile │ no profile named 'x'"
        bar.show_session(SimpleNamespace(profile=profile), "failed", "boom", 0, agent=False, loads_now=False)
        assert str(bar.text.render()) == "tiny-smolvlm │ tiny-smolvlm │ model not loaded (see the error; /profile NAME)"
        bar.show_session(SimpleNamespace(profile=profile), "idle", None, 0, agent=False, loads_now=True)
        assert bar.progress.display  # about to load by itself: a pulse, not "not loaded"
        bar.show_session(SimpleNamespace(profile=profile), "idle", None, 0, agent=False, loads_now=False)
        assert str(bar.text.render()).endswith("model not loaded yet (it loads on the first message)")
        assert not bar.progress.display
        bar.switch_adapter("mine")  # no profile: said, nothing starts
        bar.start_loading()
        await pilot.pause()
        assert notes == [("error", "no profile is active; switch with /profile NAME")]
        assert controller.load_state == "idle" and not bar.progress.display


class ViewHost(App[None]):
    """Just the chat pane on a scripted model, recording what it tells its parent."""

    def __init__(self, controller: ChatController) -> None:
        super().__init__()
        from assistant.tui.config import TuiConfig
        from assistant.tui.widgets.chatview import ChatView

        self.view = ChatView(controller, TuiConfig(), "halfcell")
        self.told: list[str] = []

    def compose(self) -> ComposeResult:
        yield self.view

    def on_chat_view_chat_started(self, event: Any) -> None:
        self.told.append(f"started {event.chat_id}")

    def on_chat_view_model_wanted(self, event: Any) -> None:
        self.told.append("model wanted")

    def on_chat_view_changed(self, event: Any) -> None:
        self.told.append("changed")


@async_test
async def test_the_chat_view_holds_a_question_until_the_model_is_ready_then_streams_and_regenerates():
    from assistant.testing import scripted_assistant

    assistant, _backend = scripted_assistant(["A red square.", "A crimson square."])
    controller = ChatController(assistant=assistant, store=assistant.store)
    app = ViewHost(controller)
    async with app.run_test() as pilot:
        view = app.view
        await view.submit("what is it?")  # the model is not loaded: the question waits, shown already
        await pilot.pause()
        assert controller.pending is not None and [q.text for q in view.chat_log.questions] == ["what is it?"]
        assert app.told == [f"started {controller.chat.id}", "model wanted"]
        controller.load_state = "ready"
        view.send_pending()
        await wait_for(pilot, lambda: controller.job is None and "changed" in app.told, "the reply")
        assert [r.text for r in view.chat_log.replies] == ["A red square."]
        await view.regenerate()
        await wait_for(pilot, lambda: controller.job is None and app.told.count("changed") == 2, "the new reply")
        assert [r.text for r in view.chat_log.replies] == ["A crimson square."]
        stored = assistant.store.get_conversation(controller.chat.id).messages
        assert [m.text for m in stored] == ["what is it?", "A crimson square."]


@async_test
async def test_esc_takes_a_waiting_question_back_into_the_prompt():
    from assistant.testing import scripted_assistant

    assistant, _backend = scripted_assistant(["never sent"])
    controller = ChatController(assistant=assistant, store=assistant.store)
    app = ViewHost(controller)
    async with app.run_test() as pilot:
        view = app.view
        await view.submit("a question")
        await pilot.pause()
        assert await view.stop()
        await pilot.pause()
        assert controller.pending is None and view.chat_log.questions == []
        assert view.composer.prompt.text == "a question"
        assert not await view.stop()  # nothing runs any more
