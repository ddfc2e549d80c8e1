"""Saved chats in the TUI: the sidebar (newest first, search), switching, reopening, rename, delete, export."""

from __future__ import annotations

from assistant.tui.widgets.chatlog import AssistantMessage, UserMessage
from assistant.tui.widgets.sidebar import ChatList
from tests.helpers import make_image
from tests.tui.tuihelpers import SIZE, async_test, wait_dialog, notes, saved_chat, type_and_send, wait_for, wait_ready, wait_reply


def listed(app) -> list[str]:
    chat_list = app.query_one(ChatList)
    return [str(chat_list.get_option_at_index(i).prompt).split("\n")[0].strip("● ").strip() for i in range(chat_list.option_count)]


@async_test
async def test_the_sidebar_lists_chats_newest_first_and_opens_one(make_app, store):
    older = saved_chat(store, "Older chat", "what is a cat?", "A small animal.")
    newer = saved_chat(store, "Newer chat", "what is a dog?", "A loyal animal.")
    app = make_app(autoload=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+b")
        assert app.sidebar.display
        assert listed(app) == ["Newer chat", "Older chat"]
        assert app.focused is app.query_one("#chat-search")  # typing searches; it never acts on a chat
        await pilot.press("down")
        assert app.focused is app.query_one(ChatList)
        await pilot.press("down", "enter")
        await pilot.pause()
        assert app.current_chat_id == older
        assert [q.text for q in app.chat_log.query(UserMessage)] == ["what is a cat?"]
        assert [r.text for r in app.chat_log.query(AssistantMessage)] == ["A small animal."]
        assert app.focused is app.prompt
        await pilot.press("ctrl+b")
        assert not app.sidebar.display
        app.sidebar.display = True
        app.refresh_sidebar()
        await pilot.pause()
        app.query_one(ChatList).highlighted = 0
        app.query_one(ChatList).focus()
        await pilot.press("enter")
        await pilot.pause()
        assert app.current_chat_id == newer
        assert [q.text for q in app.chat_log.query(UserMessage)] == ["what is a dog?"]


@async_test
async def test_search_filters_the_chat_list(make_app, store):
    saved_chat(store, "Cats", "tell me about whiskers", "They are sensitive.")
    saved_chat(store, "Boats", "how do sails work", "Wind pushes them.")
    app = make_app(autoload=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+b")
        await pilot.press(*"whisk")
        await pilot.pause()
        assert listed(app) == ["Cats"]
        await pilot.press(*"erzzz")
        await pilot.pause()
        assert listed(app) == ["No chat matches"]


@async_test
async def test_a_reopened_chat_continues_in_the_same_conversation(make_app, store):
    chat_id = saved_chat(store, "Earlier", "first question", "first answer")
    app = make_app(chat_id=chat_id)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        assert [q.text for q in app.chat_log.questions] == ["first question"]
        await type_and_send(pilot, "second question")
        await wait_reply(pilot)
        messages = store.get_conversation(chat_id).messages
        assert [m.text for m in messages if m.role == "user"] == ["first question", "second question"]
        assert len(store.list_conversations()) == 1


@async_test
async def test_new_chat_starts_empty_and_is_saved_on_the_first_message(make_app, store):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await type_and_send(pilot, "in the first chat")
        await wait_reply(pilot)
        first = app.current_chat_id
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.current_chat_id is None and app.chat_log.questions == []
        await type_and_send(pilot, "/new Holiday plans")
        await type_and_send(pilot, "in the second chat")
        await wait_reply(pilot)
        assert app.current_chat_id != first
        assert [c.title for c in store.list_conversations()] == ["Holiday plans", "in the first chat"]


@async_test
async def test_deleting_a_chat_asks_first(make_app, store):
    keep = saved_chat(store, "Keep me", "q1", "a1")
    doomed = saved_chat(store, "Delete me", "q2", "a2")
    app = make_app(autoload=False, chat_id=doomed)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+b", "down")
        assert listed(app)[0] == "Delete me"
        await pilot.press("delete")
        await wait_dialog(pilot, "#no")
        await pilot.press("n")  # no: nothing happens
        await pilot.pause()
        assert {c.id for c in store.list_conversations()} == {keep, doomed}
        await pilot.press("ctrl+d")
        await wait_dialog(pilot, "#yes")
        await pilot.press("y")  # a letter never confirms a deletion
        await pilot.pause()
        assert {c.id for c in store.list_conversations()} == {keep, doomed}
        await pilot.press("ctrl+y")
        await pilot.pause()
        assert [c.id for c in store.list_conversations()] == [keep]
        assert listed(app) == ["Keep me"]
        assert app.current_chat_id is None  # the open chat was the deleted one
        assert app.chat_log.questions == []


@async_test
async def test_typing_words_in_the_chat_list_never_deletes_a_chat(make_app, store):
    first = saved_chat(store, "Monday notes", "q1", "a1")
    second = saved_chat(store, "Holiday plans", "q2", "a2")
    app = make_app(autoload=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+b")
        await pilot.press(*"day", "enter", *"yes")  # what deleted the top chat: d opened the dialog, y confirmed
        await pilot.pause()
        assert app.sidebar.query_one("#chat-search").value == "dayyes"  # Enter moved to the list, the rest came back
        assert len(app.screen_stack) == 1
        await pilot.press("ctrl+a", "ctrl+k", "down")  # empty the search, go to the list, then type away
        await pilot.press(*"delete yes please", "escape")
        await pilot.pause()
        assert len(app.screen_stack) == 1  # no dialog: the typing went to the search box
        assert {c.id for c in store.list_conversations()} == {first, second}
        app.sidebar.query_one("#chat-search").value = ""
        await pilot.pause()
        app.sidebar.query_one(ChatList).focus()
        await pilot.press("delete")  # the real key still asks, and only Ctrl+Y answers yes
        await wait_dialog(pilot, "#yes")
        await pilot.press(*"yyes", "enter")  # letters do nothing; Enter presses the focused button, No
        await pilot.pause()
        assert len(app.screen_stack) == 1
        assert {c.id for c in store.list_conversations()} == {first, second}


@async_test
async def test_a_letter_the_user_binds_in_the_list_acts_and_other_letters_search(make_app, store):
    from assistant.tui.config import TuiConfig

    chat_id = saved_chat(store, "Old title", "q", "a")
    app = make_app(autoload=False, config=TuiConfig(keys={"rename_chat": "r"}))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+b", "down", "x")
        assert app.sidebar.query_one("#chat-search").value == "x" and len(app.screen_stack) == 1
        app.sidebar.query_one("#chat-search").value = ""
        await pilot.pause()
        app.sidebar.query_one(ChatList).focus()
        await pilot.press("r")  # bound on purpose in [keys]: it renames
        field = await wait_dialog(pilot, "#dialog-input")
        field.value = "New title"
        await pilot.press("enter")
        await pilot.pause()
        assert store.get_conversation(chat_id).title == "New title"


@async_test
async def test_rename_and_export_from_the_sidebar_and_commands(make_app, store, tmp_path):
    chat_id = saved_chat(store, "Old title", "what is 2+2?", "**4**")
    app = make_app(autoload=False, chat_id=chat_id)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+b", "down")
        await pilot.press("ctrl+e")
        field = await wait_dialog(pilot, "#dialog-input")
        field.value = "Arithmetic"
        await pilot.press("enter")
        await pilot.pause()
        assert store.get_conversation(chat_id).title == "Arithmetic"
        assert listed(app) == ["Arithmetic"]
        await pilot.press("ctrl+s")
        field = await wait_dialog(pilot, "#dialog-input")
        target = tmp_path / "out.md"
        field.value = str(target)
        await pilot.press("enter")
        await pilot.pause()
        text = target.read_text(encoding="utf-8")
        assert text.startswith("# Arithmetic") and "**4**" in text
        app.prompt.focus()
        await type_and_send(pilot, f"/export {tmp_path}")
        exported = tmp_path / f"arithmetic-{chat_id}.md"
        assert exported.read_text(encoding="utf-8") == text
        await type_and_send(pilot, "/rename Sums")
        assert store.get_conversation(chat_id).title == "Sums"
        await type_and_send(pilot, f"/export {tmp_path / 'no-such-dir' / 'x.md'}")
        assert any("cannot write" in note for note in notes(app, "error"))


@async_test
async def test_an_unknown_chat_id_is_reported_and_a_new_chat_starts(make_app):
    app = make_app(autoload=False, chat_id=999)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: notes(app, "error"), "the error")
        assert "no chat with id 999" in notes(app, "error")[0]
        assert app.current_chat_id is None
        assert app.is_running


@async_test
async def test_a_grounded_reply_shows_its_boxes_on_the_image(make_app, store, tmp_path):
    image = make_image(tmp_path / "shapes.png", (200, 100), "red")
    chat_id = saved_chat(store, "Boxes", "where is the red square?", "It is in the middle.", image=image)
    conversation = store.get_conversation(chat_id)
    reply = conversation.messages[-1]
    reply.meta.extra["grounding"] = {
        "format": "json1000",
        "image": conversation.images[0].sha256,
        "image_size": [200, 100],
        "shapes": [{"kind": "box", "x1": 50, "y1": 25, "x2": 150, "y2": 75, "label": "red square"}],
    }
    store.update_message(reply)
    app = make_app(autoload=False, chat_id=chat_id)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        [answer] = app.chat_log.replies
        caption = answer.query_one(".grounding .thumbnail-caption")
        assert str(caption.render()) == "Found 1 box (json1000)"
        drawn = answer.query_one(".grounding .thumbnail-image")
        await wait_for(pilot, lambda: drawn.region.height > 0, "the drawn image to take its place")
        original = store.open_image(conversation.images[0])
        assert drawn.image.size == original.size and drawn.image.tobytes() != original.tobytes()  # boxes drawn on it


@async_test
async def test_the_grounding_plugins_ground_command_sends_a_question(make_app, store, cat_png):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        assert app.commands.get("ground") is not None
        await type_and_send(pilot, f"/image {cat_png}")
        await wait_for(pilot, lambda: app.chips.labels, "the chip")
        await type_and_send(pilot, "/ground the cat")
        await wait_for(pilot, lambda: app.chat is not None and app.job is None and app.chat_log.replies, "the reply")
        await wait_reply(pilot)
        messages = store.get_conversation(app.chat.id).messages
        assert len(messages[0].images) == 1 and "the cat" in messages[0].text
        assert messages[1].meta.extra.get("grounding_request") == "the cat"
