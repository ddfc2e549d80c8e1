"""The PDF plugin on real PDFs made with pymupdf: rendering, text, bad documents, the CLI and /pdf."""

from __future__ import annotations

import io
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pymupdf
import pytest
from PIL import Image

from assistant.cli import main
from assistant.documents import DocumentPasswordError
from assistant.errors import AssistantError
from assistant.hooktypes import PageRequest, PageText, RenderedPage
from assistant.plugins import create_plugin_manager, reset_plugin_manager
from assistant.profiles import DocumentSettings
from assistant.testing import SlashRecorder
from assistant_plugins import pdf as plugin

PAGE_TEXTS = [
    "Introduction to the annual report of Example Corp.",
    "Revenue in 2023 grew to 12 million euros.",
    "Outlook and risks for the coming year.",
]


def make_pdf(path: Path, texts: list[str] = PAGE_TEXTS, **save: Any) -> Path:
    """A PDF with one A4 page per text; page 1 also has a red square at 50-150 pt."""
    document = pymupdf.open()
    for number, text in enumerate(texts, 1):
        page = document.new_page()
        page.insert_text((72, 300), text, fontsize=12)
        if number == 1:
            page.draw_rect(pymupdf.Rect(50, 50, 150, 150), color=None, fill=(1, 0, 0))
    document.save(path, **save)
    document.close()
    return path


@pytest.fixture
def report(tmp_path: Path) -> Path:
    return make_pdf(tmp_path / "report.pdf")


@pytest.fixture
def encrypted(tmp_path: Path) -> Path:
    return make_pdf(
        tmp_path / "secret.pdf",
        encryption=pymupdf.PDF_ENCRYPT_AES_256,
        user_pw="sesame",
        owner_pw="owner-only",
    )


def zero_page_pdf(path: Path) -> Path:
    """pymupdf refuses to save a document without pages, so write the bytes by hand (with a correct xref)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))
    return path


def request(path: Path, page: int = 1, **kwargs: Any) -> PageRequest:
    return PageRequest(path=path, page=page, **kwargs)


# --- rendering --------------------------------------------------------------------------------

def test_render_at_72_dpi_is_one_pixel_per_point(report: Path) -> None:
    rendered = plugin.render_page(request(report, 1, dpi=72))
    assert isinstance(rendered, RenderedPage)
    assert (rendered.page, rendered.page_count, rendered.dpi) == (1, 3, 72)
    assert rendered.image.mode == "RGB"
    assert rendered.image.size == (595, 842)  # A4 in points
    assert rendered.image.getpixel((100, 100)) == (255, 0, 0)
    assert rendered.image.getpixel((300, 100)) == (255, 255, 255)


def test_render_at_144_dpi_doubles_the_size(report: Path) -> None:
    rendered = plugin.render_page(request(report, 1, dpi=144))
    assert rendered.image.size == (1190, 1684)
    assert rendered.dpi == 144
    assert rendered.image.getpixel((200, 200)) == (255, 0, 0)


def test_image_page_renders_its_picture_and_has_no_text(tmp_path: Path) -> None:
    picture = io.BytesIO()
    Image.new("RGB", (64, 64), (0, 0, 255)).save(picture, format="PNG")
    document = pymupdf.open()
    page = document.new_page(width=400, height=300)
    page.insert_image(pymupdf.Rect(100, 100, 300, 200), stream=picture.getvalue(), keep_proportion=False)
    document.save(tmp_path / "scan.pdf")
    rendered = plugin.render_page(request(tmp_path / "scan.pdf", dpi=72))
    assert rendered.image.size == (400, 300)
    assert rendered.image.getpixel((200, 150)) == (0, 0, 255)
    assert rendered.image.getpixel((20, 20)) == (255, 255, 255)
    assert plugin.page_text(request(tmp_path / "scan.pdf")).text == ""


def test_rotated_page_renders_upright_and_keeps_its_text(tmp_path: Path) -> None:
    document = pymupdf.open()
    page = document.new_page(width=200, height=100)
    page.insert_text((10, 50), "rotated text")
    page.set_rotation(90)
    document.save(tmp_path / "rotated.pdf")
    rendered = plugin.render_page(request(tmp_path / "rotated.pdf", dpi=72))
    assert rendered.image.size == (100, 200)
    assert plugin.page_text(request(tmp_path / "rotated.pdf")).text == "rotated text"


def test_huge_page_is_capped_by_lowering_the_dpi(tmp_path: Path) -> None:
    document = pymupdf.open()
    document.new_page(width=5000, height=5000)
    document.save(tmp_path / "poster.pdf")
    # 5000 pt at 300 dpi would be 20834 x 20834 = 434 million pixels.
    rendered = plugin.render_page(request(tmp_path / "poster.pdf", dpi=300))
    width, height = rendered.image.size
    assert width * height <= PageRequest.max_pixels
    assert width * height > 0.95 * PageRequest.max_pixels
    assert rendered.dpi < 300
    assert abs(width - height) <= 1


def test_custom_pixel_budget_keeps_the_aspect_ratio(report: Path) -> None:
    rendered = plugin.render_page(request(report, 2, dpi=300, max_pixels=1_000_000))
    width, height = rendered.image.size
    assert width * height <= 1_000_000
    assert abs(width / height - 595 / 842) < 0.01


def test_fit_zoom_respects_the_budget_after_rounding() -> None:
    for width, height, dpi, budget in [(595, 842, 600, 10_000), (5000, 5000, 300, 25_000_000), (1, 14400, 72, 500)]:
        zoom = plugin.fit_zoom(width, height, dpi, budget)
        assert (int(width * zoom) + 2) * (int(height * zoom) + 2) <= budget + 2 * (width + height)
        assert zoom <= dpi / 72


# --- text -------------------------------------------------------------------------------------

def test_page_text_and_count(report: Path) -> None:
    found = plugin.page_text(request(report, 2))
    assert isinstance(found, PageText)
    assert (found.page, found.page_count) == (2, 3)
    assert found.text == PAGE_TEXTS[1]


def test_text_comes_in_reading_order(tmp_path: Path) -> None:
    document = pymupdf.open()
    page = document.new_page()
    page.insert_text((72, 500), "second paragraph at the bottom")
    page.insert_text((72, 100), "first paragraph at the top")
    document.save(tmp_path / "order.pdf")
    text = plugin.page_text(request(tmp_path / "order.pdf")).text
    assert text.index("first paragraph") < text.index("second paragraph")


def test_document_text_reads_every_page_opening_the_file_once(report: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[Any] = []
    real_open = pymupdf.open
    monkeypatch.setattr(pymupdf, "open", lambda *args, **kwargs: (opened.append(args), real_open(*args, **kwargs))[1])
    seen: list[tuple[int, int]] = []
    pages = plugin.document_text(request(report), lambda done, total: seen.append((done, total)))
    assert [(page.page, page.page_count, page.text) for page in pages] == [
        (number, 3, text) for number, text in enumerate(PAGE_TEXTS, 1)
    ]
    assert len(opened) == 1
    assert seen == [(1, 3), (2, 3), (3, 3)]
    # the same text as page by page
    assert [page.text for page in pages] == [plugin.page_text(request(report, n)).text for n in (1, 2, 3)]


def test_document_text_leaves_other_documents_and_needs_the_password(encrypted: Path, tmp_path: Path) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("not a pdf")
    assert plugin.document_text(request(other), lambda done, total: None) is None
    with pytest.raises(DocumentPasswordError):
        plugin.document_text(request(encrypted), lambda done, total: None)
    pages = plugin.document_text(request(encrypted, password="sesame"), lambda done, total: None)
    assert pages[1].text == PAGE_TEXTS[1]


# --- bad documents ----------------------------------------------------------------------------

def test_page_out_of_range(report: Path) -> None:
    for hook in (plugin.render_page, plugin.page_text):
        with pytest.raises(AssistantError, match=r"^page 9 is out of range: report\.pdf has 3 pages$"):
            hook(request(report, 9))


def test_missing_pdf(tmp_path: Path) -> None:
    with pytest.raises(AssistantError, match="missing.pdf not found; check the path"):
        plugin.render_page(request(tmp_path / "missing.pdf"))


def test_text_file_named_pdf(tmp_path: Path) -> None:
    fake = tmp_path / "notes.pdf"
    fake.write_text("Just some notes, not a PDF at all.\n")
    with pytest.raises(AssistantError, match=r"^notes\.pdf is not a PDF \(its content does not start with %PDF\)"):
        plugin.page_text(request(fake))


def test_empty_file_named_pdf(tmp_path: Path) -> None:
    (tmp_path / "empty.pdf").write_bytes(b"")
    with pytest.raises(AssistantError, match=r"^empty\.pdf is empty"):
        plugin.render_page(request(tmp_path / "empty.pdf"))


def test_zero_pages(tmp_path: Path) -> None:
    path = zero_page_pdf(tmp_path / "blank.pdf")
    assert pymupdf.open(path).page_count == 0  # the file itself is valid
    with pytest.raises(AssistantError, match=r"^blank\.pdf has no pages"):
        plugin.page_text(request(path))


@pytest.mark.parametrize("keep", [200, 0.1])
def test_badly_truncated_pdf_is_damaged(report: Path, keep: float) -> None:
    data = report.read_bytes()
    cut = report.with_name("cut.pdf")
    cut.write_bytes(data[: int(keep if keep > 1 else len(data) * keep)])
    with pytest.raises(AssistantError, match=r"^cut\.pdf is damaged or truncated and cannot be opened \(.+\); re-download"):
        plugin.page_text(request(cut))


def test_garbage_after_the_header_is_damaged(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pdf"
    junk.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 8)
    with pytest.raises(AssistantError, match="is damaged or truncated"):
        plugin.render_page(request(junk))


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.7, 0.9, 0.99])
def test_any_truncation_either_reads_or_says_damaged(report: Path, fraction: float) -> None:
    """MuPDF repairs what it can; whatever it cannot read must be an AssistantError, never another exception."""
    data = report.read_bytes()
    cut = report.with_name("cut.pdf")
    cut.write_bytes(data[: int(len(data) * fraction)])
    for page in (1, 3):
        try:
            plugin.render_page(request(cut, page, dpi=36))
            plugin.page_text(request(cut, page))
        except AssistantError as error:
            assert "cut.pdf" in str(error)


def test_encrypted_needs_the_password(encrypted: Path) -> None:
    with pytest.raises(DocumentPasswordError) as caught:
        plugin.page_text(request(encrypted))
    assert str(caught.value) == "secret.pdf is encrypted; pass --password (CLI) or enter it when asked (TUI)"
    assert caught.value.wrong_password is False

    with pytest.raises(DocumentPasswordError, match="^wrong password for secret.pdf") as caught:
        plugin.render_page(request(encrypted, password="guess"))
    assert caught.value.wrong_password is True

    assert plugin.page_text(request(encrypted, 2, password="sesame")).text == PAGE_TEXTS[1]
    assert plugin.render_page(request(encrypted, 1, dpi=72, password="sesame")).image.getpixel((100, 100)) == (255, 0, 0)


# --- which documents the plugin handles --------------------------------------------------------

def test_other_documents_are_left_to_other_plugins(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("plain text")
    assert plugin.render_page(request(notes)) is None
    assert plugin.page_text(request(notes)) is None
    assert plugin.page_text(request(tmp_path / "missing.docx")) is None
    manager = create_plugin_manager(load_entry_points=False, builtins=("assistant_plugins.pdf",))
    assert manager.call_first("page_text", request=request(notes)) is None


def test_pdf_content_without_the_extension_is_handled(report: Path) -> None:
    renamed = report.with_name("download.bin")
    renamed.write_bytes(report.read_bytes())
    assert plugin.page_text(request(renamed, 3)).text == PAGE_TEXTS[2]


# --- CLI --------------------------------------------------------------------------------------

@pytest.fixture
def fresh_manager():
    reset_plugin_manager(None)
    yield
    reset_plugin_manager(None)


def test_cli_render_writes_the_page(report: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], fresh_manager: None) -> None:
    out = tmp_path / "page1.png"
    assert main(["pdf", "render", str(report), "--page", "1", "--dpi", "72", "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out} (595x842, page 1 of 3, 72 dpi)"
    with Image.open(out) as image:
        assert image.size == (595, 842)
        assert image.convert("RGB").getpixel((100, 100)) == (255, 0, 0)


def test_cli_render_says_when_it_lowered_the_dpi(tmp_path: Path, capsys: pytest.CaptureFixture[str], fresh_manager: None) -> None:
    document = pymupdf.open()
    document.new_page(width=5000, height=5000)
    document.save(tmp_path / "poster.pdf")
    out = tmp_path / "poster.png"
    assert main(["pdf", "render", str(tmp_path / "poster.pdf"), "--dpi", "300", "-o", str(out)]) == 0
    assert re.search(r"lowered from 300 dpi to stay under 25,000,000 pixels", capsys.readouterr().out)


def test_cli_text_prints_the_page(report: Path, capsys: pytest.CaptureFixture[str], fresh_manager: None) -> None:
    assert main(["pdf", "text", str(report), "--page", "2"]) == 0
    assert capsys.readouterr().out.strip() == PAGE_TEXTS[1]


def test_cli_errors_are_one_line_with_exit_2(
    report: Path, encrypted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], fresh_manager: None
) -> None:
    out = str(tmp_path / "x.png")
    cases = [
        (["pdf", "render", str(report), "--page", "9", "-o", out], "error: page 9 is out of range: report.pdf has 3 pages"),
        (["pdf", "text", str(encrypted)], "error: secret.pdf is encrypted; pass --password (CLI)"),
        (["pdf", "text", str(encrypted), "--password", "nope"], "error: wrong password for secret.pdf"),
        (["pdf", "render", str(tmp_path / "nope.pdf"), "-o", out], "not found; check the path"),
        (["pdf", "render", str(report), "-o", str(tmp_path / "no" / "dir.png")], "does not exist"),
    ]
    for argv, expected in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert main(["pdf", "text", str(encrypted), "--page", "3", "--password", "sesame"]) == 0
    assert capsys.readouterr().out.strip() == PAGE_TEXTS[2]


# --- /pdf -------------------------------------------------------------------------------------

def slash_context(manager: Any, passwords: list[str | None] = (), settings: DocumentSettings | None = None) -> SlashRecorder:
    """The TUI's side of a /command (assistant.testing), run synchronously; `passwords` answers ask_password in turn."""
    profile = SimpleNamespace(documents=settings or DocumentSettings(dpi=72))
    return SlashRecorder(manager, profile=profile, passwords=list(passwords))


@pytest.fixture
def slash_pdf() -> Any:
    manager = create_plugin_manager(load_entry_points=False, builtins=("assistant_plugins.pdf",))
    (command,) = [c for c in manager.collect("register_slash_commands") if c.name == "pdf"]
    assert command.complete_paths
    return manager, command


def test_slash_pdf_attaches_pages_and_text(slash_pdf: Any, report: Path) -> None:
    manager, command = slash_pdf
    context = slash_context(manager)
    command.run(context, f"{report} 2-3")
    assert [source for _image, source in context.images] == ["report.pdf p.2", "report.pdf p.3"]
    assert context.images[0][0].size == (595, 842)
    ((text, source),) = context.texts
    assert source == "report.pdf text"
    assert text.startswith("--- report.pdf page 2 ---\n" + PAGE_TEXTS[1])
    assert "--- report.pdf page 3 ---" in text
    assert context.notes == [("report.pdf: pages 2-3 as asked", "information")]


def test_slash_pdf_path_with_spaces(slash_pdf: Any, tmp_path: Path) -> None:
    manager, command = slash_pdf
    path = make_pdf(tmp_path / "annual report.pdf", ["only page"])
    context = slash_context(manager)
    command.run(context, f'"{path}"')
    assert [source for _image, source in context.images] == ["annual report.pdf p.1"]
    assert context.notes[-1] == ("annual report.pdf: the only page", "information")


def test_slash_pdf_asks_for_the_password(slash_pdf: Any, encrypted: Path) -> None:
    manager, command = slash_pdf
    context = slash_context(manager, passwords=["wrong", "sesame"])
    command.run(context, f"{encrypted} 2")
    assert context.prompts == ["Password for secret.pdf", "Password for secret.pdf (wrong, try again)"]
    assert [source for _image, source in context.images] == ["secret.pdf p.2"]


def test_slash_pdf_cancelled_password_attaches_nothing(slash_pdf: Any, encrypted: Path) -> None:
    manager, command = slash_pdf
    context = slash_context(manager, passwords=[None])
    command.run(context, str(encrypted))
    assert context.images == [] and context.texts == []
    assert context.notes == [("secret.pdf not attached: no password given", "warning")]


def test_slash_pdf_errors_are_notified(slash_pdf: Any, report: Path, tmp_path: Path) -> None:
    manager, command = slash_pdf
    context = slash_context(manager)
    command.run(context, "")
    command.run(context, f"{report} 7")
    command.run(context, f"{tmp_path / 'gone.pdf'}")
    command.run(context, f"{report} 1 2")
    messages = [message for message, severity in context.notes if severity == "error"]
    assert messages[0].startswith("/pdf needs a file")
    assert messages[1] == "page 7 is out of range: report.pdf has 3 pages"
    assert messages[2].endswith("gone.pdf not found; check the path")
    assert messages[3].startswith("/pdf takes a file and optional pages")
    assert context.images == []


def long_pdf(path: Path, pages: int = 12) -> Path:
    """Its text names the file, so no other test's cached text is ever taken for it."""
    texts = [f"Chapter {n} of {path.parent.name}: general notes about the product." for n in range(1, pages + 1)]
    texts[8] = "The Lambert W function computes the inverse of w times exp(w)."
    texts[10] = "Function reference: lambertw."
    return make_pdf(path, texts)


def test_slash_pdf_lets_the_question_choose_the_pages(slash_pdf: Any, tmp_path: Path) -> None:
    manager, command = slash_pdf
    context = slash_context(manager)
    command.run(context, str(long_pdf(tmp_path / "manual.pdf")))
    assert context.images == [] and context.texts == []  # nothing is chosen before the question is known
    ((source, choose),) = context.documents
    assert source == "manual.pdf (12 pages)"
    assert context.notes[-1][0].startswith("manual.pdf attached: the 3 pages that best match your question go with it")
    chosen = choose("What does the Lambert W function compute?")
    assert chosen.pages == [9, 11]
    assert chosen.footer == "manual.pdf: pages 9, 11 chosen by relevance to: lambert, function, compute"
    assert "--- manual.pdf page 9 ---\nThe Lambert W function" in chosen.text
    assert [source for _image, source in chosen.images] == ["manual.pdf p.9", "manual.pdf p.11"]


def test_slash_pdf_with_pages_or_a_short_document_attaches_at_once(slash_pdf: Any, tmp_path: Path) -> None:
    manager, command = slash_pdf
    context = slash_context(manager)
    command.run(context, f"{long_pdf(tmp_path / 'manual.pdf')} 2")
    command.run(context, str(make_pdf(tmp_path / "short.pdf", ["one", "two"])))
    assert context.documents == []
    assert [source for _image, source in context.images] == ["manual.pdf p.2", "short.pdf p.1", "short.pdf p.2"]
    assert [note for note, _severity in context.notes] == ["manual.pdf: page 2 as asked", "short.pdf: all 2 pages"]


def test_slash_pdf_shows_progress_while_a_long_document_is_read(
    slash_pdf: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plugin, "TUI_PROGRESS_AFTER_S", 0)  # as if reading took a while
    manager, command = slash_pdf
    context = slash_context(manager)
    command.run(context, str(long_pdf(tmp_path / "manual.pdf")))
    (poll,) = context.progress
    view = poll()
    assert view.title == "Reading manual.pdf"
    assert (view.completed, view.total, view.finished) == (12, 12, True)
    assert view.status == "12 of 12 pages read"
    assert len(context.documents) == 1
