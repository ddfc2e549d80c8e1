"""The TUI's chat controller without Textual: what may start, streaming, stop, regenerate, edit, rate, correct."""

from __future__ import annotations

import subprocess
import sys

from assistant.testing import scripted_assistant
from assistant.tui.attachments import Outgoing
from assistant.tui.controller import ChatController, Refusal


def ready(replies: list[str]) -> ChatController:
    bot, _backend = scripted_assistant(replies)
    return ChatController(assistant=bot, store=bot.store, load_state="ready")


def run(controller: ChatController, start) -> tuple[list[str], list[str | None]]:
    """Generate one reply through the controller, as the app's worker does; (pieces, [error])."""
    assert controller.chat is not None
    job = controller.begin(controller.chat, widget=None, start=start)
    pieces: list[str] = []
    done: list[str | None] = []
    controller.run(job, started=lambda: None, chunk=pieces.append, done=done.append)
    controller.finished(job)
    return pieces, done


def test_the_controller_imports_no_textual():
    code = "import sys, assistant.tui.controller; print(sorted(m for m in ('textual', 'torch') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_what_may_start_and_why_not():
    controller = ChatController()
    assert controller.refusal() == Refusal("no model is loaded (no profile); switch with /profile NAME", "error")
    controller = ready(["one"])
    controller.load_state = "loading"
    assert controller.refusal() == Refusal("the model is still loading; try again when the status bar shows it")
    assert controller.refusal(waiting_allowed=True) is None  # a question may wait for the model
    controller.load_state, controller.load_error = "failed", "model not found"
    assert controller.refusal(waiting_allowed=True).text.startswith("no model is loaded (model not found)")
    controller.load_state = "ready"
    chat, created = controller.ensure_chat("first chat")
    assert created and controller.ensure_chat() == (chat, False)
    controller.begin(chat, widget=None, start=lambda: None)
    assert controller.refusal().text == "a reply is still being written; press Esc to stop it first"
    controller.chat = None  # the user moved to another chat while it stops
    assert controller.refusal().text == "the previous chat's reply is still stopping; try again in a moment"


def test_a_question_streams_and_is_saved():
    controller = ready(["The cat sleeps."])
    chat, _ = controller.ensure_chat()
    pieces, done = run(controller, controller.asker(chat, "what is it?", Outgoing([], "", [])))
    assert ("".join(pieces), done) == ("The cat sleeps.", [None])
    assert controller.job is None and controller.refusal() is None
    saved = controller.store.get_conversation(chat.id).messages
    assert [(m.role, m.text) for m in saved] == [("user", "what is it?"), ("assistant", "The cat sleeps.")]


def test_stop_keeps_the_text_so_far():
    controller = ready(["one two three four five six"])
    chat, _ = controller.ensure_chat()
    job = controller.begin(chat, widget=None, start=controller.asker(chat, "count", Outgoing([], "", [])))
    pieces: list[str] = []
    done: list[str | None] = []

    def chunk(piece: str) -> None:
        pieces.append(piece)
        if len(pieces) == 2:
            assert controller.stop() == "reply"

    controller.run(job, started=lambda: None, chunk=chunk, done=done.append)
    controller.finished(job)
    assert done == [None] and 2 <= len(pieces) < 6
    (_, reply) = controller.store.get_conversation(chat.id).messages
    assert (reply.status, reply.text) == ("stopped", "".join(pieces))
    assert controller.stop() is None  # nothing runs any more


def test_a_failing_start_is_one_line():
    controller = ready([])  # the scripted backend has no reply left: it says so
    chat, _ = controller.ensure_chat()
    pieces, done = run(controller, controller.asker(chat, "hello?", Outgoing([], "", [])))
    (line,) = done
    assert pieces == [] and "\n" not in line
    assert line.startswith("the scripted backend has no replies left; give scripted_assistant more replies; "
                           "the new chat was not kept (your question is in ")


def test_regenerate_and_edit_replace_the_last_reply():
    controller = ready(["first", "second", "third"])
    assert controller.regenerator() == Refusal("nothing to regenerate yet: ask a question first")
    chat, _ = controller.ensure_chat()
    assert controller.editor("again") == Refusal("nothing to edit yet: ask a question first")
    run(controller, controller.asker(chat, "question", Outgoing([], "", [])))
    pieces, _ = run(controller, controller.regenerator())
    assert "".join(pieces) == "second"
    assert controller.editor("   ") == Refusal("the edited question is empty; nothing was sent")
    pieces, _ = run(controller, controller.editor("a better question"))
    assert "".join(pieces) == "third"
    saved = controller.store.get_conversation(chat.id).messages
    assert [(m.role, m.text) for m in saved] == [("user", "a better question"), ("assistant", "third")]


def test_rating_toggles_and_corrections_are_saved():
    controller = ready(["It is a dog."])
    chat, _ = controller.ensure_chat()
    run(controller, controller.asker(chat, "what is it?", Outgoing([], "", [])))
    reply = chat.conversation.messages[-1]
    assert controller.rate(reply, 1) == 1
    assert controller.store.get_conversation(chat.id).messages[-1].rating == 1
    assert controller.rate(reply, 1) == 0  # the same rating again clears it
    assert controller.rate(reply, -1) == -1
    assert controller.store.get_conversation(chat.id).messages[-1].rating == -1
    assert controller.correct(reply, "It is a dog.") == "unchanged"
    assert controller.correct(reply, "It is a cat.") == "saved"
    assert controller.store.get_conversation(chat.id).messages[-1].correction == "It is a cat."
    assert controller.correct(reply, "") == "removed"
    assert controller.store.get_conversation(chat.id).messages[-1].correction is None
    # a reply of a chat that is not open (the chat list) is saved through the store
    controller.chat = None
    assert controller.rate(reply, 1) == 1
    assert controller.store.get_conversation(chat.id).messages[-1].rating == 1


def test_a_finished_load_counts_only_for_the_current_assistant_and_a_switch_keeps_the_chat():
    controller = ready(["one"])
    old = controller.assistant
    chat, _ = controller.ensure_chat("kept")
    newer, _backend = scripted_assistant(["two"])
    controller.use_assistant(newer)
    assert controller.load_state == "idle" and controller.chat.assistant is newer
    assert controller.chat.conversation is chat.conversation
    assert not controller.loaded(old, "the old model failed")  # switched away: nothing changes
    assert controller.load_state == "idle" and controller.load_error is None
    assert controller.loaded(newer, "out of memory; close other programs")
    assert (controller.load_state, controller.load_error) == ("failed", "out of memory; close other programs")
    assert controller.loaded(newer, None) and (controller.load_state, controller.load_error) == ("ready", None)


def test_loading_reports_progress_then_one_outcome():
    class Loads:
        def __init__(self, error: Exception | None) -> None:
            self.error = error

        def load(self, progress) -> None:
            progress("reading weights", 0.5)
            if self.error is not None:
                raise self.error

    from assistant.errors import AssistantError

    for error, outcome in ((None, None), (AssistantError("no such model; check [model] id"), "no such model; check [model] id")):
        steps: list[tuple[str, float | None]] = []
        done: list[str | None] = []
        ChatController.load(Loads(error), lambda text, fraction: steps.append((text, fraction)), done.append)
        assert steps == [("reading weights", 0.5)] and done == [outcome]
    done = []
    ChatController.load(Loads(KeyError("bug")), lambda *_: None, done.append)
    assert len(done) == 1 and done[0].startswith("loading the model failed (KeyError: 'bug'); details are in ")
