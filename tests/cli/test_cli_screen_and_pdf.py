"""End to end on the tiny model: `ask --screenshot` and `ask --pdf` answer and store the screen/page images."""

from __future__ import annotations

import pymupdf
import pytest

from assistant.store import Store
from tests.helpers import make_pdf
from tests.helpers import run_cli as run
from xvfb import requires_xvfb


@pytest.mark.xvfb
@requires_xvfb
def test_ask_screenshot_stores_the_screen(capsys, xvfb_display):
    xvfb_display.paint_solid((0, 128, 0))
    code, out, err = run(capsys, "ask", "--profile", "tiny-smolvlm", "--max-tokens", "3", "--screenshot", "What is on my screen?")
    assert code == 0, err
    with Store.open_default() as store:
        (summary,) = store.list_conversations()
        messages = store.get_conversation(summary.id).messages
        (image,) = messages[0].images
        stored = store.open_image(image)
    assert (image.width, image.height) == (1280, 480)  # the full-resolution original is kept
    assert stored.getpixel((5, 5)) == (0, 128, 0)
    assert image.source.startswith("screenshot")
    assert messages[1].status == "ok"


def test_ask_screenshot_without_display_is_one_line(capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    code, _, err = run(capsys, "ask", "--profile", "tiny-smolvlm", "--screenshot", "What is on my screen?")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "DISPLAY" in lines[0]


def test_ask_pdf_picks_relevant_page_and_stores_it(capsys, tmp_path):
    pdf = make_pdf(
        tmp_path / "report.pdf",
        ["Introduction to the company", "Weather and travel", "Revenue in 2023 was 4.2 million", "Appendix", "Index"],
    )
    code, out, err = run(
        capsys, "ask", "--profile", "tiny-qwen2vl", "--max-tokens", "3", "--pdf", str(pdf), "What was the revenue?"
    )
    assert code == 0, err
    # the footer says which pages were used and why
    assert "· report.pdf: page 3 chosen by relevance to: revenue]" in err.strip().splitlines()[-1]
    with Store.open_default() as store:
        (summary,) = store.list_conversations()
        messages = store.get_conversation(summary.id).messages
    question = messages[0]
    assert any(image.source == "report.pdf p.3" for image in question.images)
    assert "Revenue in 2023" in question.text and question.text.rstrip().endswith("What was the revenue?")
    assert 3 in messages[1].meta.extra["pages"]


def test_ask_pdf_with_pages_and_bad_documents(capsys, tmp_path):
    pdf = make_pdf(tmp_path / "two.pdf", ["first page", "second page"])
    code, _, err = run(capsys, "ask", "--profile", "tiny-smolvlm", "--max-tokens", "2", "--pdf", str(pdf), "--pages", "2", "Summarise")
    assert code == 0, err
    code, _, err = run(capsys, "ask", "--profile", "tiny-smolvlm", "--pdf", str(pdf), "--pages", "9", "Summarise")
    assert code == 2 and "page 9 is out of range" in err and len(err.strip().splitlines()) == 1
    fake = tmp_path / "fake.pdf"
    fake.write_text("hello")
    code, _, err = run(capsys, "ask", "--profile", "tiny-smolvlm", "--pdf", str(fake), "Summarise")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "fake.pdf" in err
    encrypted = tmp_path / "secret.pdf"
    document = pymupdf.open()
    document.new_page().insert_text((20, 40), "secret numbers")
    document.save(encrypted, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="pw", owner_pw="owner")
    code, _, err = run(capsys, "ask", "--profile", "tiny-smolvlm", "--pdf", str(encrypted), "What?")
    assert code == 2 and "--password" in err
    code, _, err = run(capsys, "ask", "--profile", "tiny-smolvlm", "--max-tokens", "2", "--pdf", str(encrypted), "--password", "pw", "What?")
    assert code == 0, err
    with Store.open_default() as store:
        # Only the two successful questions were saved; failed document loads saved nothing.
        assert len(store.list_conversations()) == 2


def test_ask_pdf_shows_progress_and_reads_the_document_once(capsys, tmp_path, monkeypatch):
    from assistant import documents
    from assistant_plugins import pdf as pdf_plugin

    monkeypatch.setattr(documents, "PROGRESS_DELAY_S", 0)  # as if reading took a while
    reads = []
    real = pdf_plugin.extract_all_text
    monkeypatch.setattr(pdf_plugin, "extract_all_text", lambda *args, **kwargs: (reads.append(1), real(*args, **kwargs))[1])
    pdf = make_pdf(
        tmp_path / "report.pdf",
        [f"Introduction {tmp_path.name}", "Weather", "Revenue in 2023 was 4.2 million", "Appendix", "Index"],
    )
    code, _, err = run(capsys, "ask", "--profile", "tiny-smolvlm", "--max-tokens", "2", "--pdf", str(pdf), "What was the revenue?")
    assert code == 0, err
    assert "indexing report.pdf: 5/5 pages in" in err
    code, _, err = run(capsys, "ask", "--profile", "tiny-smolvlm", "--max-tokens", "2", "--pdf", str(pdf), "Revenue in 2023?")
    assert code == 0, err
    assert reads == [1]  # the second question took the text from the cache


def test_ask_pdf_fits_the_pages_to_the_context(capsys, tmp_path):
    """A context one token too small for all three pages: the weakest page goes as text only, and the footer says so."""
    from pathlib import Path

    from assistant.api import Assistant
    from assistant.documents import prepare_document
    from assistant.engine.budget import question_measure

    question = "What was the revenue?"
    pdf = make_pdf(
        tmp_path / "report.pdf",
        ["Introduction", "Weather", "Revenue in 2023 was 4.2 million, revenue up", "Revenue forecast", "Index", "Revenue again"],
    )
    bot = Assistant.from_profile("tiny-qwen2vl")
    document = prepare_document(bot.plugins, pdf, question, None, bot.profile.documents)
    assert document.pages == [3, 4, 6] and len(document.images) == 3
    measure, _limit = question_measure(bot, question)  # type: ignore[misc]
    needed = measure([image for image, _source in document.images], document.text)
    weakest = document.ranking[-1][0]
    profile = tmp_path / "small-context.toml"
    base = Path(__file__).resolve().parents[2] / "profiles" / "tiny-qwen2vl.toml"
    profile.write_text(base.read_text() + f"\n[chat]\ncontext_limit = {needed - 1 + 3}\n")
    code, _, err = run(capsys, "ask", "--profile", str(profile), "--max-tokens", "3", "--pdf", str(pdf), question)
    assert code == 0, err
    assert f"page {weakest} as text only" in err
    with Store.open_default() as store:
        (summary,) = store.list_conversations()
        messages = store.get_conversation(summary.id).messages
    assert len(messages[0].images) == 2
    assert f"report.pdf p.{weakest}" not in [image.source for image in messages[0].images]
    assert f"--- report.pdf page {weakest} ---" in messages[0].text
    assert messages[1].status == "ok"
