"""The Composer owns the attachments: it works inside any Textual app, without the assistant's app around it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult

from assistant.tui.widgets.composer import Composer
from tests.helpers import make_image
from tests.tui.tuihelpers import async_test, wait_for


class Host(App[None]):
    """A bare app holding a composer; it records what the composer asks to send and the errors it reports."""

    def __init__(self) -> None:
        super().__init__()
        self.composer = Composer(id="composer")
        self.sent: list[tuple[str, Any]] = []
        self.errors: list[str] = []

    def compose(self) -> ComposeResult:
        yield self.composer

    def on_composer_send_requested(self, event: Composer.SendRequested) -> None:
        self.sent.append((event.question, event.extra))

    def report_error(self, error: BaseException, what: str) -> None:
        self.errors.append(f"{what}: {error}")


@async_test
async def test_a_question_held_while_an_image_is_read_is_sent_with_it(tmp_path: Path) -> None:
    app = Host()
    async with app.run_test() as pilot:
        composer = app.composer
        composer.attach_image_files([make_image(tmp_path / "cat.png", (64, 48)), tmp_path / "missing.png"])
        assert composer.reading
        composer.hold("what is this?")
        await wait_for(pilot, lambda: app.sent, "the held question")
        assert app.sent == [("what is this?", None)]
        assert composer.chips.labels == ["[Image #1 cat.png 64x48]"] and not composer.reading
        items, outgoing = composer.take()
        assert [item.source for item in items] == ["cat.png"] and len(outgoing.images) == 1
        await wait_for(pilot, lambda: composer.chips.labels == [], "the chips to go")
        assert len(composer.attachments) == 0
        composer.give_back(items)  # a message taken back: its chips return
        await wait_for(pilot, lambda: composer.chips.labels, "the chip to return")
        assert composer.chips.labels == ["[Image #1 cat.png 64x48]"]
        assert app.errors == []


@async_test
async def test_a_document_chip_turns_into_the_pages_the_question_chooses() -> None:
    from PIL import Image

    class Context:
        images = [(Image.new("RGB", (20, 10)), "doc.pdf p.2")]
        text = "--- doc.pdf page 2 ---\nrevenue"
        name = "doc.pdf"
        footer = "doc.pdf: page 2 chosen by relevance to: revenue"

    asked: list[str] = []
    app = Host()
    async with app.run_test() as pilot:
        composer = app.composer
        composer.attach_document("doc.pdf (9 pages)", lambda question: (asked.append(question), Context())[1])
        composer.choose_document_pages("what was the revenue?", fit=None)
        await wait_for(pilot, lambda: app.sent, "the question")
        assert asked == ["what was the revenue?"]
        assert app.sent == [("what was the revenue?", {"notes": ["doc.pdf: page 2 chosen by relevance to: revenue"]})]
        assert composer.chips.labels[0].startswith("[Image #1 doc.pdf p.2")
        assert composer.chips.labels[1].startswith("[Text #1 doc.pdf text")
