"""Attaching images in the TUI: /image with path completion, pasted (dropped) paths, chips, bad files."""

from __future__ import annotations

from textual import events

from assistant.tui.widgets.prompt import Chip
from assistant.tui.widgets.thumbnail import Thumbnail
from tests.helpers import make_image
from tests.tui.tuihelpers import SIZE, async_test, notes, type_and_send, wait_for, wait_ready, wait_reply


@async_test
async def test_image_command_attaches_a_chip_and_the_question_sends_it(make_app, store, cat_png):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await type_and_send(pilot, f"/image {cat_png}")
        await wait_for(pilot, lambda: app.chips.labels, "the chip")
        assert app.chips.labels == ["[Image #1 cat.png 64x48]"]
        assert store.list_conversations() == []  # nothing is sent until the question is
        await type_and_send(pilot, "what is in this picture?")
        await wait_reply(pilot)
        assert app.chips.labels == []
        user = store.get_conversation(app.chat.id).messages[0]
        assert user.text == "what is in this picture?"
        assert [(image.source, image.width, image.height) for image in user.images] == [("cat.png", 64, 48)]
        [question] = app.chat_log.questions
        thumbnails = question.query(Thumbnail)
        assert len(thumbnails) == 1
        assert "cat.png 64x48" in str(thumbnails.first().query_one(".thumbnail-caption").render())


@async_test
async def test_a_pasted_image_path_becomes_a_chip(make_app, tmp_path):
    spaced = make_image(tmp_path / "my photos" / "dog picture.png", (40, 30), "blue")
    app = make_app(autoload=False)
    async with app.run_test(size=SIZE) as pilot:
        app.post_message(events.Paste(f"'{spaced}'"))  # how terminals paste a dropped file
        await wait_for(pilot, lambda: app.chips.labels, "the chip")
        assert app.chips.labels == ["[Image #1 dog picture.png 40x30]"]
        assert app.prompt.text == ""
        app.post_message(events.Paste("just some text"))
        await pilot.pause()
        assert app.prompt.text == "just some text"
        assert len(app.chips.labels) == 1


@async_test
async def test_chips_can_be_removed_before_sending(make_app, tmp_path):
    first = make_image(tmp_path / "a.png", (20, 20), "red")
    second = make_image(tmp_path / "b.png", (30, 20), "green")
    third = make_image(tmp_path / "c.png", (40, 20), "blue")
    app = make_app(autoload=False)
    async with app.run_test(size=SIZE) as pilot:
        app.post_message(events.Paste(f"{first} {second} {third}"))
        await wait_for(pilot, lambda: len(app.chips.labels) == 3, "three chips")
        assert app.chips.labels == ["[Image #1 a.png 20x20]", "[Image #2 b.png 30x20]", "[Image #3 c.png 40x20]"]
        chip = app.query(Chip)[1]
        chip.focus()
        await pilot.press("delete")
        await pilot.pause()
        assert app.chips.labels == ["[Image #1 a.png 20x20]", "[Image #3 c.png 40x20]"]
        assert app.focused is app.prompt
        await pilot.press("backspace")  # at the start of the prompt: the last chip goes
        await pilot.pause()
        assert app.chips.labels == ["[Image #1 a.png 20x20]"]
        await pilot.click(Chip)
        await pilot.pause()
        assert app.chips.labels == []
        assert [item.source for item in app.attachments.items] == []


@async_test
async def test_a_question_is_needed_to_send_attachments(make_app, cat_png, store):
    app = make_app(autoload=False)
    async with app.run_test(size=SIZE) as pilot:
        await type_and_send(pilot, f"/image {cat_png}")
        await wait_for(pilot, lambda: app.chips.labels, "the chip")
        await pilot.press("enter")
        await pilot.pause()
        assert any("type your question" in note for note in notes(app, "warning"))
        assert app.chips.labels == ["[Image #1 cat.png 64x48]"]
        assert store.list_conversations() == []


@async_test
async def test_a_bad_image_is_reported_and_nothing_is_attached(make_app, tmp_path):
    not_image = tmp_path / "notes.png"
    not_image.write_text("hello", encoding="utf-8")
    app = make_app(autoload=False)
    async with app.run_test(size=SIZE) as pilot:
        await type_and_send(pilot, f"/image {tmp_path / 'missing.png'}")
        await wait_for(pilot, lambda: notes(app, "error"), "the error")
        await type_and_send(pilot, f"/image {not_image}")
        await wait_for(pilot, lambda: len(notes(app, "error")) == 2, "the second error")
        errors = notes(app, "error")
        assert "image not found" in errors[0]
        assert "not an image" in errors[1]
        assert app.chips.labels == []
        await type_and_send(pilot, "/image")
        assert any("usage: /image PATH" in note for note in notes(app))


@async_test
async def test_image_paths_complete_with_tab(make_app, tmp_path):
    make_image(tmp_path / "album" / "sunset.png", (10, 10))
    (tmp_path / "album" / "readme.txt").write_text("not an image", encoding="utf-8")
    app = make_app(autoload=False)
    async with app.run_test(size=SIZE) as pilot:
        app.prompt.insert(f"/image {tmp_path}/alb")
        await pilot.pause()
        await pilot.press("tab")
        assert app.prompt.text == f"/image {tmp_path}/album/"
        await pilot.pause()
        menu = app.query_one("#completions")
        assert menu.display
        assert [c.label for c in menu.completions] == [f"{tmp_path}/album/sunset.png"]  # no .txt for /image
        await pilot.press("tab")
        assert app.prompt.text == f"/image {tmp_path}/album/sunset.png"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.chips.labels, "the chip")
        assert app.chips.labels == ["[Image #1 sunset.png 10x10]"]


@async_test
async def test_command_names_complete_and_escape_closes_the_menu(make_app):
    app = make_app(autoload=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("slash", "r", "e")
        menu = app.query_one("#completions")
        assert menu.display
        assert [c.label for c in menu.completions][:2] == ["/regenerate", "/rename TITLE"]
        await pilot.press("down", "enter")  # Enter takes the highlighted entry
        assert app.prompt.text == "/rename "
        await pilot.press("escape")
        assert not menu.display
        assert app.prompt.text == "/rename "


@async_test
async def test_enter_takes_a_highlighted_choice_but_sends_a_typed_path(make_app, tmp_path):
    (tmp_path / "exports").mkdir()
    app = make_app(autoload=False)
    async with app.run_test(size=SIZE) as pilot:
        app.prompt.insert("/rate d")
        await pilot.pause()
        await pilot.press("enter")
        assert app.prompt.text == "/rate down"  # completed, not sent
        app.prompt.set_prompt(f"/image {tmp_path}/expo")
        await pilot.pause()
        assert app.query_one("#completions").display
        await pilot.press("enter")
        assert app.prompt.text == ""  # sent as typed
        await wait_for(pilot, lambda: notes(app, "error"), "the error")
        assert "image not found" in notes(app, "error")[0]
