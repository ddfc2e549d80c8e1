"""/pdf in the TUI on a real PDF and the tiny model: without pages, the question sent afterwards chooses them."""

from __future__ import annotations

from pathlib import Path

import pymupdf

from assistant.tui.screens.progress import ProgressScreen
from tests.tui.tuihelpers import SIZE, async_test, notes, type_and_send, wait_for, wait_ready, wait_reply


def manual(path: Path, pages: int = 12) -> Path:
    """A manual whose text names its folder, so no other test's cached text is taken for it."""
    document = pymupdf.open()
    for number in range(1, pages + 1):
        text = f"Chapter {number} of {path.parent.name}: general notes."
        if number == 9:
            text = "The Lambert W function computes the inverse of w times exp(w)."
        document.new_page(width=300, height=200).insert_text((20, 40), text, fontsize=9)
    document.save(path)
    return path


@async_test
async def test_pdf_pages_are_chosen_by_the_question_when_it_is_sent(make_app, store, tmp_path):
    pdf = manual(tmp_path / "manual.pdf")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await type_and_send(pilot, f"/pdf {pdf}")
        await wait_for(pilot, lambda: app.chips.labels, "the document chip")
        assert app.chips.labels == ["[Document #1 manual.pdf (12 pages): pages chosen by your question]"]
        assert any(note.startswith("manual.pdf attached") for note in notes(app))
        await type_and_send(pilot, "What does the Lambert W function compute?")
        await wait_reply(pilot)
        assert app.chips.labels == []
        question, reply = store.get_conversation(app.chat.id).messages[:2]
        assert [image.source for image in question.images] == ["manual.pdf p.9"]
        assert "--- manual.pdf page 9 ---\nThe Lambert W function" in question.text
        assert question.text.rstrip().endswith("What does the Lambert W function compute?")
        assert "manual.pdf: page 9 chosen by relevance to: lambert, function, compute" in reply.meta.extra["notes"]


@async_test
async def test_a_document_that_vanished_keeps_the_question(make_app, store, tmp_path, monkeypatch):
    from assistant_plugins import pdf as pdf_plugin

    monkeypatch.setattr(pdf_plugin, "TUI_PROGRESS_AFTER_S", 0)  # as if reading took a while
    pdf = manual(tmp_path / "manual.pdf")
    app = make_app(autoload=False)
    async with app.run_test(size=SIZE) as pilot:
        await type_and_send(pilot, f"/pdf {pdf}")
        await wait_for(pilot, lambda: app.chips.labels, "the document chip")
        assert isinstance(app.screen, ProgressScreen)  # reading the text took "a while"
        await pilot.press("escape")
        pdf.unlink()
        await type_and_send(pilot, "What does the Lambert W function compute?")
        await wait_for(pilot, lambda: notes(app, "error"), "the error")
        assert any("manual.pdf not found" in note for note in notes(app, "error"))
        assert app.prompt.text == "What does the Lambert W function compute?"
        assert app.chips.labels == ["[Document #1 manual.pdf (12 pages): pages chosen by your question]"]
        assert store.list_conversations() == []
