"""assistant.documents: page specs, the relevance ranking, and choosing a document's pages for a question."""

from __future__ import annotations

import io
import json
import math
import re
import stat
from pathlib import Path
from typing import Any

import pymupdf
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from assistant import hookimpl
from assistant.document_index import file_sha256, load_index
from assistant.documents import (
    MAX_PAGES_PER_QUESTION,
    DocumentPasswordError,
    fit_document,
    format_pages,
    parse_page_spec,
    prepare_document,
    query_terms,
    rank_pages,
    terminal_progress,
)
from assistant.errors import AssistantError
from assistant.hooktypes import PageRequest, PageText, RenderedPage
from assistant.plugins import create_plugin_manager
from assistant.profiles import DocumentSettings

# --- page specs -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("2", [2]),
        ("2-4", [2, 3, 4]),
        ("1,3,5-7", [1, 3, 5, 6, 7]),
        ("7-", [7, 8, 9, 10]),
        ("-3", [1, 2, 3]),
        (" 4 - 5 , 1 ", [1, 4, 5]),
        ("3,1-3,3", [1, 2, 3]),
        ("10", [10]),
    ],
)
def test_parse_page_spec(spec: str, expected: list[int]) -> None:
    assert parse_page_spec(spec, 10) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no pages given; name pages like e.g. 2, 2-4"),
        ("  ", "no pages given"),
        ("11", "page 11 is out of range: report.pdf has 10 pages"),
        ("9-12", "page 12 is out of range: report.pdf has 10 pages"),
        ("11-", "page 11 is out of range"),
        ("0", "page 0 does not exist: pages are numbered from 1"),
        ("4-2", "page range '4-2' runs backwards; write 2-4"),
        ("two", "'two' is not a page or page range"),
        ("-", "'-' is not a page or page range"),
        ("1,,2", "page list '1,,2' has an empty item"),
        ("1-2-3", "'1-2-3' is not a page or page range"),
        ("2.5", "'2.5' is not a page or page range"),
    ],
)
def test_parse_page_spec_errors(spec: str, message: str) -> None:
    with pytest.raises(AssistantError, match="^" + re.escape(message)):
        parse_page_spec(spec, 10, "report.pdf")


def test_parse_page_spec_on_a_one_page_document() -> None:
    with pytest.raises(AssistantError, match="^page 2 is out of range: the document has 1 page$"):
        parse_page_spec("2", 1)
    with pytest.raises(AssistantError, match="has no pages"):
        parse_page_spec("1", 0)


@given(st.sets(st.integers(min_value=1, max_value=60), min_size=1))
def test_format_pages_reads_back(pages: set[int]) -> None:
    spec = format_pages(list(pages))
    assert parse_page_spec(spec, 60) == sorted(pages)


def test_format_pages() -> None:
    assert format_pages([5, 1, 2, 3]) == "1-3, 5"
    assert format_pages([4]) == "4"


# --- ranking ----------------------------------------------------------------------------------

PAGES = {
    1: "Contents. Letter from the chair. Our people and our planet.",
    2: "Revenue grew in 2023 to 12 million euros; revenue from services doubled.",
    3: "Risks: currency, suppliers and the weather.",
    4: "In 2022 the company opened offices in Lisbon.",
}


def test_ranking_picks_the_page_that_mentions_the_question() -> None:
    ranking = rank_pages(PAGES, "What was the revenue in 2023?", top_k=2)
    assert [page for page, _score, _terms in ranking] == [2]
    page, score, terms = ranking[0]
    assert score > 0
    assert terms == ["revenue", "2023"]


def test_ranking_orders_by_score_and_drops_non_matching_pages() -> None:
    ranking = rank_pages(PAGES, "revenue and offices in 2022 and 2023", top_k=4)
    pages = [page for page, _score, _terms in ranking]
    assert pages[0] == 2  # two terms, "revenue" twice
    assert set(pages) == {2, 4}
    assert ranking[0][1] > ranking[1][1]


def test_ranking_respects_top_k_and_prefers_rare_terms() -> None:
    """A rare word outweighs a common one said four times (IDF); every page has the same length."""
    texts = {n: "company report report report" for n in range(1, 9)}
    texts[2] = "company company company company"
    texts[5] = "lisbon report report report"
    ranking = rank_pages(texts, "company lisbon", top_k=2)
    assert [(page, matched) for page, _score, matched in ranking] == [(5, ["lisbon"]), (2, ["company"])]
    # the scores by hand: idf = ln((N - n + 0.5) / (n + 0.5) + 1), all lengths equal the average
    rare, common = math.log(7.5 / 1.5 + 1), math.log(1.5 / 7.5 + 1)  # lisbon on 1 page of 8, company on 7
    assert ranking[0][1] == pytest.approx(rare * 1 * 2.5 / (1 + 1.5))
    assert ranking[1][1] == pytest.approx(common * 4 * 2.5 / (4 + 1.5))


def test_ranking_prefers_the_shorter_page_for_the_same_match() -> None:
    """Length normalisation: one mention on a short page beats one mention in a long page (listed first)."""
    texts = {1: "lisbon " + "filler " * 40, 2: "lisbon office", 3: "nothing here at all"}
    ranking = rank_pages(texts, "lisbon", top_k=3)
    assert [page for page, _score, _matched in ranking] == [2, 1]
    assert ranking[0][1] > ranking[1][1] * 1.5


def test_ranking_ignores_stopwords_and_handles_plurals() -> None:
    assert query_terms("What is the total of the Risks?") == [("total", "total"), ("risk", "risks")]
    assert rank_pages(PAGES, "what is in it?", top_k=3) == []
    assert [page for page, *_ in rank_pages(PAGES, "supplier", top_k=3)] == [3]
    assert rank_pages(PAGES, "quantum", top_k=3) == []
    assert rank_pages({}, "revenue", top_k=3) == []


# --- documents through the plugin hooks -----------------------------------------------------

def make_pdf(path: Path, texts: list[str]) -> Path:
    """One A4 page per text; an empty text gives a page with only a picture (no text layer)."""
    picture = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 128, 0)).save(picture, format="PNG")
    document = pymupdf.open()
    for text in texts:
        page = document.new_page()
        if text:
            page.insert_text((72, 100), text)
        else:
            page.insert_image(pymupdf.Rect(72, 72, 272, 272), stream=picture.getvalue())
    document.save(path)
    return path


@pytest.fixture
def manager() -> Any:
    return create_plugin_manager(load_entry_points=False, builtins=("assistant_plugins.pdf",))


@pytest.fixture
def long_report(tmp_path: Path) -> Path:
    texts = [f"Page {n} of the report talks about general matters." for n in range(1, 11)]
    texts[6] = "Revenue in 2023 reached 12 million euros."
    texts[8] = "Revenue forecasts for next year."
    return make_pdf(tmp_path / "report.pdf", texts)


SETTINGS = DocumentSettings(pdf_mode="both", page_budget=3, dpi=36)


def test_relevant_pages_are_chosen_and_explained(manager: Any, long_report: Path) -> None:
    context = prepare_document(manager, long_report, "What was the revenue in 2023?", None, SETTINGS)
    assert context.page_count == 10
    assert context.pages == [7, 9]
    assert context.reason == "pages 7, 9 chosen by relevance to: revenue, 2023"
    assert context.footer == "report.pdf: pages 7, 9 chosen by relevance to: revenue, 2023"
    assert [page for page, _score, _terms in context.ranking] == [7, 9]
    assert [source for _image, source in context.images] == ["report.pdf p.7", "report.pdf p.9"]
    assert context.images[0][0].size == (298, 421)  # A4 at 36 dpi
    assert context.text == (
        "--- report.pdf page 7 ---\nRevenue in 2023 reached 12 million euros.\n\n"
        "--- report.pdf page 9 ---\nRevenue forecasts for next year."
    )


def test_pages_asked_for_are_used_as_given(manager: Any, long_report: Path) -> None:
    context = prepare_document(manager, long_report, "revenue?", "1-2, 10", SETTINGS)
    assert context.pages == [1, 2, 10]
    assert context.reason == "pages 1-2, 10 as asked"
    assert len(context.images) == 3
    assert context.ranking == []
    single = prepare_document(manager, long_report, "revenue?", "4", SETTINGS)
    assert single.reason == "page 4 as asked"


def test_too_many_pages_are_refused(manager: Any, tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "book.pdf", [f"chapter {n}" for n in range(1, 31)])
    with pytest.raises(AssistantError, match=f"at most {MAX_PAGES_PER_QUESTION} can go with one question"):
        prepare_document(manager, path, "anything", "1-25", SETTINGS)
    assert len(prepare_document(manager, path, "anything", "1-20", DocumentSettings(pdf_mode="text")).pages) == 20


def test_out_of_range_pages_name_the_document(manager: Any, long_report: Path) -> None:
    with pytest.raises(AssistantError, match="^page 12 is out of range: report.pdf has 10 pages$"):
        prepare_document(manager, long_report, "q", "12", SETTINGS)


def test_short_documents_are_sent_whole(manager: Any, tmp_path: Path) -> None:
    one = make_pdf(tmp_path / "memo.pdf", ["A memo about lunch."])
    context = prepare_document(manager, one, "unrelated question about revenue", None, SETTINGS)
    assert (context.pages, context.reason) == ([1], "the only page")
    three = make_pdf(tmp_path / "three.pdf", ["a", "b", "c"])
    assert prepare_document(manager, three, "x", None, SETTINGS).reason == "all 3 pages"


def test_no_text_layer_falls_back_to_the_first_pages(manager: Any, tmp_path: Path) -> None:
    scan = make_pdf(tmp_path / "scan.pdf", ["", "", "", "", ""])
    context = prepare_document(manager, scan, "what is the revenue?", None, SETTINGS)
    assert context.pages == [1, 2, 3]
    assert context.reason == "pages 1-3, the first 3 of 5: scan.pdf has no text layer to rank pages by"
    assert len(context.images) == 3
    assert context.text == ""


def test_nothing_matching_falls_back_to_the_first_pages(manager: Any, long_report: Path) -> None:
    context = prepare_document(manager, long_report, "Where is the giraffe?", None, SETTINGS)
    assert context.pages == [1, 2, 3]
    assert context.reason == "pages 1-3, the first 3 of 10: no page mentions giraffe (name pages to choose others)"
    empty = prepare_document(manager, long_report, "", None, SETTINGS)
    assert empty.reason == "pages 1-3, the first 3 of 10 (name pages to choose others)"


def test_pdf_mode_decides_images_and_text(manager: Any, tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "mixed.pdf", ["Typed page one.", ""])
    text_only = prepare_document(manager, path, "q", "1-2", DocumentSettings(pdf_mode="text", dpi=36))
    assert text_only.text == "--- mixed.pdf page 1 ---\nTyped page one."
    # page 2 has no text layer: it goes as an image even in text mode, and the reason says so
    assert [source for _image, source in text_only.images] == ["mixed.pdf p.2"]
    assert text_only.reason == "pages 1-2 as asked; page 2 sent as images (no text layer)"

    image_only = prepare_document(manager, path, "q", "1-2", DocumentSettings(pdf_mode="image", dpi=36))
    assert image_only.text == ""
    assert len(image_only.images) == 2

    both = prepare_document(manager, path, "q", "1-2", DocumentSettings(pdf_mode="both", dpi=36))
    assert both.text == "--- mixed.pdf page 1 ---\nTyped page one."
    assert len(both.images) == 2


def test_encrypted_documents_need_the_password(manager: Any, tmp_path: Path) -> None:
    document = pymupdf.open()
    document.new_page().insert_text((72, 100), "Secret revenue numbers.")
    path = tmp_path / "locked.pdf"
    document.save(path, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="pw", owner_pw="owner")
    with pytest.raises(DocumentPasswordError, match="^locked.pdf is encrypted"):
        prepare_document(manager, path, "revenue", None, SETTINGS)
    with pytest.raises(DocumentPasswordError, match="^wrong password"):
        prepare_document(manager, path, "revenue", None, SETTINGS, password="nope")
    context = prepare_document(manager, path, "revenue", None, SETTINGS, password="pw")
    assert "Secret revenue numbers." in context.text


def test_missing_folder_and_unknown_documents(manager: Any, tmp_path: Path) -> None:
    with pytest.raises(AssistantError, match="gone.pdf not found; check the path"):
        prepare_document(manager, tmp_path / "gone.pdf", "q", None, SETTINGS)
    with pytest.raises(AssistantError, match="is a folder"):
        prepare_document(manager, tmp_path, "q", None, SETTINGS)
    notes = tmp_path / "notes.docx"
    notes.write_bytes(b"PK\x03\x04 not really a docx")
    with pytest.raises(AssistantError, match="^cannot read notes.docx: no plugin handles this kind of document"):
        prepare_document(manager, notes, "q", None, SETTINGS)


class TextDocuments:
    """A third-party document plugin: .txt files whose pages are separated by form feeds."""

    @staticmethod
    def _pages(request: PageRequest) -> list[str] | None:
        if Path(request.path).suffix != ".txt":
            return None
        return Path(request.path).read_text().split("\f")

    @hookimpl
    def page_text(self, request: PageRequest) -> PageText | None:
        pages = self._pages(request)
        if pages is None:
            return None
        return PageText(text=pages[request.page - 1], page=request.page, page_count=len(pages))

    @hookimpl
    def render_page(self, request: PageRequest) -> RenderedPage | None:
        pages = self._pages(request)
        if pages is None:
            return None
        return RenderedPage(Image.new("RGB", (10, 20), "white"), request.page, len(pages), request.dpi)


def test_a_third_party_document_plugin_works_the_same(manager: Any, tmp_path: Path) -> None:
    manager.register(TextDocuments(), name="text-documents")
    path = tmp_path / "minutes.txt"
    path.write_text("Attendance.\fBudget: the revenue target for 2023.\fAny other business.\fClose.")
    context = prepare_document(manager, path, "revenue target", None, SETTINGS)
    assert context.page_count == 4
    assert context.pages == [2]
    assert context.reason == "page 2 chosen by relevance to: revenue, target"
    assert context.images[0][1] == "minutes.txt p.2"
    assert context.text == "--- minutes.txt page 2 ---\nBudget: the revenue target for 2023."
    # PDFs still go to the built-in plugin
    pdf = make_pdf(tmp_path / "a.pdf", ["alpha"])
    assert prepare_document(manager, pdf, "alpha", None, SETTINGS).text == "--- a.pdf page 1 ---\nalpha"


# --- the text index: extracted once, cached by content ----------------------------------------

class CountingReads:
    """Registered after the PDF plugin, so it is asked first: counts every text read, then lets the PDF plugin answer."""

    def __init__(self) -> None:
        self.document_text = 0
        self.page_text = 0

    @hookimpl(specname="document_text")
    def count_document(self, request: PageRequest) -> None:
        self.document_text += 1

    @hookimpl(specname="page_text")
    def count_page(self, request: PageRequest) -> None:
        self.page_text += 1


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(cache))
    return cache / "documents"


def test_the_second_question_reads_the_text_from_the_cache(manager: Any, long_report: Path, private_cache: Path) -> None:
    reads = CountingReads()
    manager.register(reads, name="counting")
    first = prepare_document(manager, long_report, "What was the revenue in 2023?", None, SETTINGS)
    assert (reads.document_text, reads.page_text) == (1, 0)  # the whole document in one call, no per-page reads
    second = prepare_document(manager, long_report, "revenue forecasts", None, SETTINGS)
    assert (reads.document_text, reads.page_text) == (1, 0)  # nothing read again
    assert first.pages == [7, 9] and second.pages == [7, 9]
    assert second.text.startswith("--- report.pdf page 7 ---\nRevenue in 2023 reached 12 million euros.")
    (cached,) = private_cache.iterdir()
    assert cached.name == f"{file_sha256(long_report)}.json"
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600
    assert stat.S_IMODE(private_cache.stat().st_mode) == 0o700
    assert load_index(manager, long_report).cached


def test_an_edited_document_is_read_again(manager: Any, long_report: Path, private_cache: Path) -> None:
    reads = CountingReads()
    manager.register(reads, name="counting")
    assert prepare_document(manager, long_report, "revenue 2023", None, SETTINGS).pages == [7, 9]
    texts = [f"Page {n} is about the weather." for n in range(1, 11)]
    texts[2] = "Revenue in 2023: see this page now."
    make_pdf(long_report, texts)  # same name, new content
    context = prepare_document(manager, long_report, "revenue 2023", None, SETTINGS)
    assert reads.document_text == 2
    assert context.pages == [3]
    assert len(list(private_cache.glob("*.json"))) == 2


def test_documents_opened_with_a_password_are_never_cached(manager: Any, tmp_path: Path, private_cache: Path) -> None:
    document = pymupdf.open()
    for n in range(5):
        document.new_page().insert_text((72, 100), f"Secret page {n}" + (" revenue" if n == 3 else ""))
    path = tmp_path / "locked.pdf"
    document.save(path, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="pw", owner_pw="owner")
    context = prepare_document(manager, path, "revenue", None, DocumentSettings(page_budget=2, dpi=36), password="pw")
    assert context.pages == [4]
    assert not private_cache.exists() or not list(private_cache.iterdir())


def test_a_damaged_cache_file_is_read_again(manager: Any, long_report: Path, private_cache: Path) -> None:
    prepare_document(manager, long_report, "revenue", None, SETTINGS)
    (cached,) = private_cache.iterdir()
    cached.write_text("{not json")
    reads = CountingReads()
    manager.register(reads, name="counting")
    assert prepare_document(manager, long_report, "revenue", None, SETTINGS).pages == [7, 9]
    assert reads.document_text == 1
    assert json.loads(cached.read_text())["page_count"] == 10


def test_progress_counts_the_pages_read(manager: Any, long_report: Path, private_cache: Path) -> None:
    seen: list[tuple[int, int]] = []
    prepare_document(manager, long_report, "revenue", None, SETTINGS, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(n, 10) for n in range(1, 11)]
    seen.clear()
    prepare_document(manager, long_report, "revenue", None, SETTINGS, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(10, 10)]  # from the cache: done at once


def test_a_page_text_only_plugin_is_read_page_by_page_and_cached(manager: Any, tmp_path: Path, private_cache: Path) -> None:
    plugin = TextDocuments()
    calls: list[int] = []
    original = plugin._pages
    plugin._pages = lambda request: (calls.append(request.page), original(request))[1]  # type: ignore[method-assign]
    manager.register(plugin, name="text-documents")
    path = tmp_path / "minutes.txt"
    path.write_text("Attendance.\fBudget: the revenue target.\fAny other business.\fClose.\fNotes.")
    seen: list[tuple[int, int]] = []
    settings = DocumentSettings(pdf_mode="text", page_budget=2)
    context = prepare_document(manager, path, "revenue", None, settings, progress=lambda d, t: seen.append((d, t)))
    assert context.pages == [2]
    assert seen[-1] == (5, 5)
    assert sorted(calls) == [1, 2, 3, 4, 5]
    calls.clear()
    assert prepare_document(manager, path, "budget", None, settings).pages == [2]
    assert calls == []


def _reference_bm25(page_texts: dict[int, str], question: str, top_k: int, k1: float = 1.5, b: float = 0.75) -> list:
    """The plain BM25 the index must agree with: every page tokenized and counted."""
    from collections import Counter

    from assistant.document_index import _WORD, _stem

    terms = query_terms(question)
    if not terms or not page_texts or top_k < 1:
        return []
    counts = {page: Counter(_stem(word) for word in _WORD.findall(text.lower())) for page, text in page_texts.items()}
    lengths = {page: sum(counter.values()) for page, counter in counts.items()}
    average = (sum(lengths.values()) / len(lengths)) or 1.0
    ranked = []
    for page, counter in counts.items():
        score, matched = 0.0, []
        for stem, word in terms:
            tf = counter.get(stem, 0)
            if tf:
                frequency = sum(1 for other in counts.values() if stem in other)
                idf = math.log((len(counts) - frequency + 0.5) / (frequency + 0.5) + 1.0)
                matched.append(word)
                score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths[page] / average))
        if matched:
            ranked.append((page, score, matched))
    ranked.sort(key=lambda item: (-item[1], item[0]))
    return ranked[:top_k]


WORDS = st.sampled_from(
    ["library", "libraries", "box", "boxes", "day", "days", "revenue", "revenues", "2023", "plot", "plots", "the", "y",
     "ys", "class", "bus", "a_b", "Übung", "übungen", "x1", "pass", "passes", "mysteries", "mystery", "dayly"]
)


@given(
    pages=st.lists(st.lists(WORDS, max_size=12).map(" ".join), min_size=1, max_size=6),
    question=st.lists(WORDS, min_size=1, max_size=4).map(" ".join),
    separator=st.sampled_from([" ", "-", ", ", "\n"]),
)
def test_the_fast_ranking_agrees_with_plain_bm25(pages: list[str], question: str, separator: str) -> None:
    texts = {number: text.replace(" ", separator) for number, text in enumerate(pages, 1)}
    fast = rank_pages(texts, question, top_k=3)
    slow = _reference_bm25(texts, question, top_k=3)
    assert [(page, matched) for page, _score, matched in fast] == [(page, matched) for page, _score, matched in slow]
    assert [score for _page, score, _m in fast] == pytest.approx([score for _page, score, _m in slow])


# --- fitting the pages into the context -------------------------------------------------------

def fake_measure(calls: list[tuple[int, str]]) -> Any:
    """100 tokens for the question, 1,000 per image, one per character of text."""

    def measure(images: list[Any], text: str) -> int:
        calls.append((len(images), text))
        return 100 + 1000 * len(images) + len(text)

    return measure


def test_a_document_that_fits_is_left_alone(manager: Any, long_report: Path) -> None:
    context = prepare_document(manager, long_report, "What was the revenue in 2023?", None, SETTINGS)
    reason = context.reason
    calls: list[tuple[int, str]] = []
    assert fit_document(context, fake_measure(calls), limit=5000) is context
    assert context.reason == reason and len(calls) == 1 and len(context.images) == 2


def test_weaker_pages_go_as_text_only_first(manager: Any, tmp_path: Path) -> None:
    texts = [f"Page {n}: general matters." for n in range(1, 11)]
    texts[1] = "Revenue in 2023 reached 12 million euros; revenue grew."
    texts[4] = "Revenue forecasts."
    texts[8] = "The revenue of the region in 2023."
    path = make_pdf(tmp_path / "report.pdf", texts)
    context = prepare_document(manager, path, "revenue in 2023", None, SETTINGS)
    assert context.pages == [2, 5, 9]
    strongest = context.ranking[0][0]
    assert strongest == 2
    fit_document(context, fake_measure([]), limit=100 + 1000 + 400)
    assert context.pages == [2, 5, 9]
    assert [source for _image, source in context.images] == ["report.pdf p.2"]  # the best page keeps its image
    assert "--- report.pdf page 5 ---" in context.text and "--- report.pdf page 9 ---" in context.text
    assert context.reason.endswith("; to fit the model's context (1,500 tokens): pages 5, 9 as text only")


def test_the_weakest_pages_are_left_out_when_text_only_is_not_enough(manager: Any, long_report: Path) -> None:
    context = prepare_document(manager, long_report, "revenue", "5-8", SETTINGS)
    fit_document(context, fake_measure([]), limit=100 + 1000 + 160)  # one image, two pages' text (~75 characters each)
    # pages asked for: the first ones are kept longest
    assert context.pages == [5, 6]
    assert [source for _image, source in context.images] == ["report.pdf p.5"]
    assert context.reason == "pages 5-8 as asked; to fit the model's context (1,260 tokens): page 6 as text only, pages 7-8 left out"


def test_a_page_that_alone_does_not_fit_is_an_error(manager: Any, long_report: Path) -> None:
    context = prepare_document(manager, long_report, "revenue", "7", SETTINGS)
    fit_document(context, fake_measure([]), limit=200)  # text only fits
    assert context.images == [] and context.reason.endswith("page 7 as text only")
    context = prepare_document(manager, long_report, "revenue", "7", SETTINGS)
    with pytest.raises(AssistantError, match=r"^report.pdf page 7 alone needs 1\d\d tokens of context but only 120 are free"):
        fit_document(context, fake_measure([]), limit=120)


def test_the_sum_of_part_costs_is_checked_against_the_real_count(manager: Any, long_report: Path) -> None:
    """A processor may cost more together than apart: the final choice is measured and trimmed again."""
    context = prepare_document(manager, long_report, "revenue", "1-3", DocumentSettings(pdf_mode="image", dpi=36))

    def measure(images: list[Any], text: str) -> int:
        return 100 + 1000 * len(images) + (500 if len(images) > 1 else 0)

    fit_document(context, measure, limit=2200)
    assert context.pages == [1]
    assert context.reason.endswith("pages 2-3 left out")


# --- progress on a terminal -------------------------------------------------------------------

class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_lines_for_pipes_and_an_updated_line_for_terminals() -> None:
    pipe = io.StringIO()
    report = terminal_progress("big.pdf", pipe, delay=0, every_s=3600)
    for done in range(1, 6):
        report(done, 5)
    lines = pipe.getvalue().splitlines()
    assert lines[0] == "indexing big.pdf: 1/5 pages"
    assert re.fullmatch(r"indexing big\.pdf: 5/5 pages in \d+\.\d s", lines[-1])
    assert len(lines) == 2  # one a while at most, and the last

    terminal = FakeTerminal()
    report = terminal_progress("big.pdf", terminal, delay=0)
    report(1, 2)
    report(2, 2)
    assert terminal.getvalue().startswith("\rindexing big.pdf: 1/2 pages")
    assert terminal.getvalue().endswith(" s\n") and "\rindexing big.pdf: 2/2 pages in" in terminal.getvalue()


def test_quick_work_shows_no_progress() -> None:
    pipe = io.StringIO()
    report = terminal_progress("small.pdf", pipe, delay=60)
    for done in range(1, 4):
        report(done, 3)
    assert pipe.getvalue() == ""


def test_an_unwritable_cache_only_costs_speed(manager: Any, long_report: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(blocker))
    reads = CountingReads()
    manager.register(reads, name="counting")
    for _ in range(2):
        assert prepare_document(manager, long_report, "revenue 2023", None, SETTINGS).pages == [7, 9]
    assert reads.document_text == 2  # read each time, never an error


def test_fitting_is_skipped_for_a_backend_that_counts_its_own_tokens(manager: Any, long_report: Path) -> None:
    from types import SimpleNamespace

    from assistant.documents import fit_to_model

    remote = SimpleNamespace(name="openai")  # no in-process engine, no processor to count with
    assistant = SimpleNamespace(load=lambda: remote, profile=SimpleNamespace(generation=SimpleNamespace(max_new_tokens=8)))
    context = prepare_document(manager, long_report, "revenue 2023", None, SETTINGS)
    reason = context.reason
    assert fit_to_model(assistant, context, "revenue 2023") is context
    assert context.reason == reason and context.pages == [7, 9]
