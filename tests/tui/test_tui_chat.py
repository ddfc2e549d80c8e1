"""Chatting in the TUI on the tiny offline model: streaming, early messages, stop, regenerate, edit, rate, correct."""

from __future__ import annotations

import threading

import pytest
from textual import events

from assistant.api import Assistant
from assistant.tui.widgets.chatlog import AssistantMessage, ReplyActions
from assistant.tui.widgets.thumbnail import Thumbnail
from tests.tui.tuihelpers import SIZE, async_test, wait_dialog, notes, type_and_send, wait_for, wait_ready, wait_reply


@pytest.fixture
def chunk_counter(monkeypatch):
    """Counts the pieces the reply widget receives while streaming."""
    counts = {"chunks": 0}
    original = AssistantMessage.append

    async def counting(self, piece):
        counts["chunks"] += 1
        await original(self, piece)

    monkeypatch.setattr(AssistantMessage, "append", counting)
    return counts


@async_test
async def test_a_message_gets_a_streamed_reply_with_timings(make_app, store, chunk_counter):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await type_and_send(pilot, "hello there")
        await wait_reply(pilot)
        [question] = app.chat_log.questions
        [reply] = app.chat_log.replies
        assert question.text == "hello there"
        saved = store.get_conversation(app.chat.id)
        assert [m.role for m in saved.messages] == ["user", "assistant"]
        assert saved.messages[1].status == "ok"
        assert reply.text == saved.messages[1].text != ""
        assert chunk_counter["chunks"] >= 1
        footer = str(reply.query_one(".reply-footer").render())
        assert "TTFT" in footer and "tokens" in footer
        status = str(app.query_one("#status-text").render())
        assert "tiny-smolvlm" in status and "cpu" in status and "/8,192" in status
        assert app.prompt.text == ""


@async_test
async def test_a_message_sent_while_the_model_loads_is_answered_once_ready(make_app, store, monkeypatch):
    release = threading.Event()
    original = Assistant.load

    def held_load(self, progress=None):
        release.wait(30)  # the load is held until the test has seen the message wait
        return original(self, progress)

    monkeypatch.setattr(Assistant, "load", held_load)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.load_state == "loading", "loading to start")
        await type_and_send(pilot, "are you there?")
        assert app.pending is not None  # shown at once, held until the model is ready
        footer = str(app.chat_log.replies[0].query_one(".reply-footer").render())
        assert "waiting for the model" in footer
        assert store.get_conversation(app.chat.id).messages == []  # nothing saved or sent yet
        release.set()
        await wait_reply(pilot)
        saved = store.get_conversation(app.chat.id)
        assert [m.text for m in saved.messages if m.role == "user"] == ["are you there?"]
        assert saved.messages[-1].role == "assistant" and saved.messages[-1].status == "ok"


@async_test
async def test_a_message_sent_before_loading_starts_triggers_the_load(make_app, store):
    app = make_app(autoload=False)
    async with app.run_test(size=SIZE) as pilot:
        assert app.load_state == "idle"
        await type_and_send(pilot, "hello?")
        await wait_reply(pilot)
        assert app.load_state == "ready"
        assert store.get_conversation(app.chat.id).messages[-1].status == "ok"


@async_test
async def test_escape_stops_the_reply_and_keeps_the_partial_text(make_app, store, gated_generation):
    app = make_app(max_new_tokens=200)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await type_and_send(pilot, "tell me a long story")
        await wait_for(pilot, lambda: app.chat_log.replies and app.chat_log.replies[-1].text, "the first piece")
        await pilot.press("escape")
        await wait_reply(pilot)
        reply = app.chat_log.replies[-1]
        saved = store.get_conversation(app.chat.id).messages[-1]
        assert saved.status == "stopped"
        assert saved.text == reply.text != ""
        assert "stopped" in str(reply.query_one(".reply-footer").render())


@async_test
async def test_regenerate_replaces_the_last_reply(make_app, store):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await type_and_send(pilot, "first question")
        await wait_reply(pilot)
        first_id = app.chat_log.replies[-1].message_id
        await pilot.press("ctrl+r")
        await wait_reply(pilot)
        messages = store.get_conversation(app.chat.id).messages
        assert [m.role for m in messages] == ["user", "assistant"]
        assert messages[1].id != first_id
        assert len(app.chat_log.replies) == 1
        assert app.chat_log.replies[0].message_id == messages[1].id


@async_test
async def test_regenerate_via_the_slash_command(make_app, store):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await type_and_send(pilot, "/regenerate")
        await pilot.pause()
        assert any("nothing to regenerate" in note for note in notes(app))
        await type_and_send(pilot, "question")
        await wait_reply(pilot)
        first_id = app.chat_log.replies[-1].message_id
        await type_and_send(pilot, "/regenerate")
        await wait_reply(pilot)
        assert store.get_conversation(app.chat.id).messages[-1].id != first_id


@async_test
async def test_edit_the_last_question_and_resend(make_app, store):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await type_and_send(pilot, "what colour is the sky")
        await wait_reply(pilot)
        await pilot.press("ctrl+o")
        editor = await wait_dialog(pilot, "#editor")
        editor.load_text("what colour is the sea")
        await pilot.press("ctrl+s")
        await wait_reply(pilot)
        messages = store.get_conversation(app.chat.id).messages
        assert [m.role for m in messages] == ["user", "assistant"]
        assert messages[0].text == "what colour is the sea"
        assert messages[1].status == "ok"
        assert [q.text for q in app.chat_log.questions] == ["what colour is the sea"]


@async_test
async def test_rate_and_correct_a_reply_are_stored(make_app, store):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await type_and_send(pilot, "name a fruit")
        await wait_reply(pilot)
        reply = app.chat_log.replies[-1]
        await pilot.press("f2")
        assert store.get_conversation(app.chat.id).messages[-1].rating == 1
        await pilot.press("f3")
        assert store.get_conversation(app.chat.id).messages[-1].rating == -1
        await pilot.press("f3")  # the same rating again clears it
        assert store.get_conversation(app.chat.id).messages[-1].rating == 0
        await pilot.press("f4")
        editor = await wait_dialog(pilot, "#editor")
        editor.load_text("An apple.")
        await pilot.press("ctrl+s")
        await pilot.pause()
        saved = store.get_conversation(app.chat.id).messages[-1]
        assert saved.correction == "An apple."
        assert saved.text == reply.text  # the original reply stays
        assert "corrected" in str(reply.query_one(".reply-footer").render())
        assert reply.query_one(".correction").display
        await type_and_send(pilot, "/rate up")
        await pilot.pause()
        assert store.get_conversation(app.chat.id).messages[-1].rating == 1
        await type_and_send(pilot, "/copy")
        assert app.clipboard == reply.text


@async_test
async def test_clicking_a_replys_action_rates_that_reply(make_app, store):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await type_and_send(pilot, "one")
        await wait_reply(pilot)
        await type_and_send(pilot, "two")
        await wait_reply(pilot)
        first, second = app.chat_log.replies
        first.scroll_visible(animate=False)
        await pilot.pause()
        await pilot.click(first.query_one(ReplyActions), offset=(3, 0))  # "+1 -1 correct copy": the -1
        await pilot.pause()
        messages = store.get_conversation(app.chat.id).messages
        assert [m.rating for m in messages if m.role == "assistant"] == [-1, 0]


@async_test
async def test_history_walks_back_through_sent_prompts(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await type_and_send(pilot, "first")
        await wait_reply(pilot)
        await type_and_send(pilot, "second")
        await wait_reply(pilot)
        app.prompt.insert("draft")
        await pilot.pause()
        await pilot.press("up")
        assert app.prompt.text == "second"
        await pilot.press("up")
        assert app.prompt.text == "first"
        await pilot.press("down")
        assert app.prompt.text == "second"
        await pilot.press("down")
        assert app.prompt.text == "draft"


@async_test
async def test_new_lines_in_the_prompt_and_sending_multi_line_text(make_app, store):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await pilot.press("a", "ctrl+j", "b")
        assert app.prompt.text == "a\nb"
        await pilot.press("enter")
        await wait_reply(pilot)
        assert store.get_conversation(app.chat.id).messages[0].text == "a\nb"


@async_test
async def test_a_generation_error_is_shown_in_the_chat_log(make_app, tmp_path):
    profile = tmp_path / "cramped.toml"
    profile.write_text(
        '[model]\nlocal_build = "tiny-smolvlm"\ndevice = "cpu"\ndtype = "float32"\nrandom_weights = true\n'
        "[chat]\ncontext_limit = 30\n",
        encoding="utf-8",
    )
    app = make_app(profile)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await type_and_send(pilot, "a question long enough to overflow the tiny context of this profile")
        await wait_reply(pilot)
        reply = app.chat_log.replies[-1]
        error = reply.query_one(".reply-error")
        assert error.display
        assert "limit is 30" in str(error.render())
        assert "failed" in str(reply.query_one(".reply-footer").render())
        assert app.is_running


@async_test
async def test_enter_right_after_fast_typing_sends_everything_typed(make_app):
    """Keys arriving in one burst (a fast typist, tmux send-keys) are handled in order: Enter does not overtake."""
    app = make_app(autoload=False)
    async with app.run_test(size=SIZE) as pilot:
        for key, character in [("h", "h"), ("i", "i"), ("ctrl+j", "\n"), ("x", "x"), ("enter", "\r")]:
            app.post_message(events.Key(key, character))
        await wait_for(pilot, lambda: app.chat_log.questions, "the question")
        assert app.chat_log.questions[0].text == "hi\nx"
        assert app.prompt.text == ""


@async_test
async def test_text_typed_right_after_enter_goes_to_the_next_message(make_app, cat_png):
    app = make_app(autoload=False)
    async with app.run_test(size=SIZE) as pilot:
        burst = [(c, c) for c in f"/image {cat_png}"] + [("enter", "\r")] + [(c, c) for c in "what?"] + [("enter", "\r")]
        for key, character in burst:
            app.post_message(events.Key(key if key != " " else "space", character))
        # The reply widget is added once the question's widget is fully mounted (thumbnails included).
        await wait_for(pilot, lambda: app.chat_log.replies, "the question")
        assert app.chat_log.questions[0].text == "what?"
        assert notes(app, "error") == []
        assert len(app.chat_log.questions[0].query(Thumbnail)) == 1  # sent with its image, not before it
