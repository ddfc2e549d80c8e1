"""End to end on the tiny model: `ask --screenshot` and `ask --pdf` answer and store the screen/page images."""

from __future__ import annotations

import pymupdf
import pytest

from assistant.cli import main
from assistant.store import Store
from xvfb import requires_xvfb


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def make_pdf(path, pages):
    document = pymupdf.open()
    for text in pages:
        page = document.new_page(width=300, height=200)
        page.insert_text((20, 40), text, fontsize=12)
    document.save(path)
    return path


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
    assert "report.pdf" in err and "3" in err  # the footer says which pages were used
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
