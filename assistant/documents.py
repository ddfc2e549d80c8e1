"""Document Q&A: page specs ("2-4"), an explainable page ranking, the pages a question is sent with, and
fitting them into the model's context.

Pure Python (no torch): it reads documents only through the document hooks (`document_text`, `page_text`,
`render_page`), so a third-party plugin that handles another document type works here exactly like the
built-in PDF plugin. The text layer used for ranking is extracted once and cached (assistant.document_index).
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence, TextIO

from .document_index import STOPWORDS, Progress, Ranking, TextIndex, load_index, query_terms
from .errors import AssistantError
from .hooktypes import PageRequest, PageText, RenderedPage
from .profiles import DocumentSettings

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = [
    "MAX_PAGES_PER_QUESTION", "STOPWORDS", "DocumentContext", "DocumentPasswordError", "PagePart", "Progress",
    "fit_document", "fit_to_model", "format_pages", "parse_page_spec", "prepare_document", "query_terms", "rank_pages",
    "terminal_progress",
]

MAX_PAGES_PER_QUESTION = 20
"""Hard cap on the pages one question may ask for: more would not fit any local model's context."""

_RANGE = re.compile(r"^(\d*)\s*-\s*(\d*)$")


class DocumentPasswordError(AssistantError):
    """The document is encrypted and the password is missing or wrong; the TUI catches it to ask for one."""

    def __init__(self, path: Path, wrong_password: bool = False) -> None:
        self.path = Path(path)
        self.wrong_password = wrong_password
        if wrong_password:
            message = f"wrong password for {self.path.name}; pass the right one with --password (CLI) or enter it again (TUI)"
        else:
            message = f"{self.path.name} is encrypted; pass --password (CLI) or enter it when asked (TUI)"
        super().__init__(message)


# --- page specs -------------------------------------------------------------------------------

def parse_page_spec(spec: str, page_count: int, name: str = "the document") -> list[int]:
    """Pages named by a spec such as "2", "2-4", "1,3,5-7", "7-" (to the end) or "-3" (from the start).

    Returns 1-based page numbers, sorted, without duplicates. `name` only makes error messages precise.
    """
    example = "e.g. 2, 2-4, 1,3,5-7 or 7- (to the end)"
    if page_count < 1:
        raise AssistantError(f"{name} has no pages")
    if not spec or not spec.strip():
        raise AssistantError(f"no pages given; name pages like {example}")
    pages: set[int] = set()
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            raise AssistantError(f"page list {spec!r} has an empty item; name pages like {example}")
        if item.isdigit():
            start = end = int(item)
        else:
            match = _RANGE.match(item)
            if match is None or item == "-" or not (match.group(1) or match.group(2)):
                raise AssistantError(f"{item!r} is not a page or page range; name pages like {example}")
            start = int(match.group(1)) if match.group(1) else 1
            end = int(match.group(2)) if match.group(2) else page_count
        for page in (start, end):
            if page < 1:
                raise AssistantError(f"page {page} does not exist: pages are numbered from 1")
            if page > page_count:
                raise AssistantError(f"page {page} is out of range: {name} has {_count(page_count)}")
        if end < start:
            raise AssistantError(f"page range {item!r} runs backwards; write {end}-{start}")
        pages.update(range(start, end + 1))
    return sorted(pages)


def format_pages(pages: list[int]) -> str:
    """The shortest spec for a set of pages: [1, 2, 3, 5] -> "1-3, 5" (parse_page_spec reads it back)."""
    ordered = sorted(set(pages))
    parts: list[str] = []
    index = 0
    while index < len(ordered):
        start = end = ordered[index]
        while index + 1 < len(ordered) and ordered[index + 1] == end + 1:
            index += 1
            end = ordered[index]
        parts.append(str(start) if start == end else f"{start}-{end}")
        index += 1
    return ", ".join(parts)


def _count(page_count: int) -> str:
    return f"{page_count} page" if page_count == 1 else f"{page_count} pages"


def _pages_label(pages: list[int]) -> str:
    return f"page {pages[0]}" if len(pages) == 1 else f"pages {format_pages(pages)}"


# --- ranking ----------------------------------------------------------------------------------

def rank_pages(
    page_texts: dict[int, str], question: str, top_k: int, k1: float = 1.5, b: float = 0.75
) -> Ranking:
    """The `top_k` pages that best match the question by BM25 over words: (page, score, matched terms).

    Only pages matching at least one content word of the question are returned, best first (ties: lower
    page first), so the caller can say why each page was chosen. (TextIndex.rank does the work.)
    """
    numbers = sorted(page_texts)
    index = TextIndex(page_count=len(numbers), texts=[page_texts[number] for number in numbers])
    return [(numbers[position - 1], score, matched) for position, score, matched in index.rank(question, top_k, k1, b)]


# --- preparing a document for a question ------------------------------------------------------

@dataclass
class PagePart:
    """One page as it goes with a question: its image (None: text only) and its text layer ("" for none)."""

    page: int
    source: str
    """"report.pdf p.2": the image's label."""
    image: "Image | None" = None
    text: str = ""


@dataclass
class DocumentContext:
    """What a question about a document is sent with: page images, labelled page text, and why these pages."""

    path: Path
    page_count: int
    pages: list[int]
    images: list[tuple["Image", str]] = field(default_factory=list)
    """(page image, source such as "report.pdf p.2"), in page order."""
    text: str = ""
    """Page texts, each under a "--- report.pdf page 2 ---" line."""
    reason: str = ""
    """Which pages and why, for the reply footer: "pages 2, 5 chosen by relevance to: revenue, 2023"."""
    ranking: Ranking = field(default_factory=list)
    """The relevance ranking behind an automatic choice (empty when pages were asked for)."""
    parts: list[PagePart] = field(default_factory=list)
    """The same pages one by one (fit_document drops images or pages from these and rebuilds the rest)."""

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def footer(self) -> str:
        return f"{self.name}: {self.reason}"

    def assemble(self) -> None:
        """Rebuild `pages`, `images` and `text` from `parts`."""
        self.pages = [part.page for part in self.parts]
        self.images = [(part.image, part.source) for part in self.parts if part.image is not None]
        self.text = "\n\n".join(_section(self.name, part) for part in self.parts if part.text)


def _section(name: str, part: PagePart) -> str:
    return f"--- {name} page {part.page} ---\n{part.text}"


def _page_text(manager: Any, request: PageRequest) -> PageText | None:
    return manager.call_first("page_text", request=request)


def _render(manager: Any, request: PageRequest) -> RenderedPage | None:
    return manager.call_first("render_page", request=request)


def _no_plugin(path: Path) -> AssistantError:
    return AssistantError(
        f"cannot read {path.name}: no plugin handles this kind of document (built in: PDF); "
        "convert it to PDF or install a plugin for it (`assistant plugins list` shows the active ones)"
    )


def _choose_by_relevance(
    index: TextIndex, question: str, terms: list[str], budget: int, name: str
) -> tuple[list[int], str, Ranking]:
    """Pages by relevance to the question, or the first pages (saying why) when the text cannot tell."""
    page_count = index.page_count
    first = list(range(1, budget + 1))
    if not index.has_text:
        return first, f"{_pages_label(first)}, the first {budget} of {page_count}: {name} has no text layer to rank pages by", []
    ranking = index.rank(question, budget)
    if not ranking:
        return (
            first,
            f"{_pages_label(first)}, the first {budget} of {page_count}: no page mentions {', '.join(terms)} "
            "(name pages to choose others)",
            [],
        )
    chosen = sorted(page for page, _score, _matched in ranking)
    matched: list[str] = []
    for _page, _score, words in ranking:
        matched.extend(word for word in words if word not in matched)
    matched.sort(key=lambda word: terms.index(word) if word in terms else len(terms))
    return chosen, f"{_pages_label(chosen)} chosen by relevance to: {', '.join(matched)}", ranking


def prepare_document(
    manager: Any,
    path: str | Path,
    question: str,
    pages: str | None,
    settings: DocumentSettings | None = None,
    password: str | None = None,
    progress: Progress | None = None,
    index: TextIndex | None = None,
) -> DocumentContext:
    """Choose the pages a question about `path` is sent with and gather their images and text.

    With `pages` (a spec such as "1-3"), those pages, at most MAX_PAGES_PER_QUESTION. Without, every page when
    the document fits in `settings.page_budget`, else the most relevant pages by the text layer (the first
    ones when there is no text layer or nothing matches). The text layer is read once per file content and
    cached (see assistant.document_index); `progress(pages_done, page_count)` follows that reading.
    `index`: that text layer when the caller already has it (the TUI's /pdf reads it once and chooses the
    pages when the question is sent). `settings.pdf_mode` picks image, text or both; a page without a text layer is sent as an image even in
    text mode. `manager` is an assistant.plugins.PluginManager (anything with `call_first`).
    """
    settings = settings or DocumentSettings()
    path = Path(path).expanduser()
    if not path.exists():
        raise AssistantError(f"{path} not found; check the path")
    if path.is_dir():
        raise AssistantError(f"{path} is a folder; give a document file such as report.pdf")
    asked = pages is not None and bool(pages.strip())
    terms = [word for _stem, word in query_terms(question)]
    if index is None and not asked and terms:
        # Ranking may be needed: read (or reuse) the whole text layer in one go.
        index = load_index(manager, path, password, progress)
    opened = _OpenedDocument(manager, path, settings, password, index)
    chosen, reason, ranking = _choose_pages(opened, question, pages if asked else None, terms, settings.page_budget)
    context = DocumentContext(path=path, page_count=opened.page_count, pages=chosen, reason=reason, ranking=ranking)
    imaged_for_lack_of_text = _gather_parts(opened, context, settings.pdf_mode)
    context.assemble()
    if imaged_for_lack_of_text:
        context.reason += f"; {_pages_label(imaged_for_lack_of_text)} sent as images (no text layer)"
    return context


class _OpenedDocument:
    """A document being prepared: its page count, and each page's text and image asked of the plugins once."""

    def __init__(
        self, manager: Any, path: Path, settings: DocumentSettings, password: str | None, index: TextIndex | None
    ) -> None:
        self.manager, self.path, self.name = manager, path, path.name
        self.settings, self.password, self.index = settings, password, index
        self.texts: dict[int, str] = {}
        self.first_image: RenderedPage | None = None
        if index is not None:
            self.page_count = index.page_count
        else:
            first_text = _page_text(manager, self.request(1))
            if first_text is not None:
                self.page_count = first_text.page_count
                self.texts[1] = first_text.text
            else:
                self.first_image = _render(manager, self.request(1))
                if self.first_image is None:
                    raise _no_plugin(path)
                self.page_count = self.first_image.page_count
        if self.page_count < 1:
            raise AssistantError(f"{self.name} has no pages; check that it is the right file")

    def request(self, page: int) -> PageRequest:
        return PageRequest(path=self.path, page=page, dpi=self.settings.dpi, password=self.password)

    def text(self, page: int) -> str:
        if self.index is not None:
            self.texts[page] = self.index.text(page)
        elif page not in self.texts:
            found = _page_text(self.manager, self.request(page))
            self.texts[page] = found.text if found is not None else ""
        return self.texts[page]

    def image(self, page: int) -> RenderedPage | None:
        if page == 1 and self.first_image is not None:
            return self.first_image
        return _render(self.manager, self.request(page))


def _choose_pages(
    document: _OpenedDocument, question: str, pages: str | None, terms: list[str], page_budget: int
) -> tuple[list[int], str, Ranking]:
    """The pages to send and why: as asked, all of them, the first ones, or the most relevant by the text layer."""
    name, page_count, index = document.name, document.page_count, document.index
    budget = max(1, page_budget)
    if pages is not None:
        chosen = parse_page_spec(pages, page_count, name)
        if len(chosen) > MAX_PAGES_PER_QUESTION:
            raise AssistantError(
                f"pages {pages.strip()} are {len(chosen)} pages; at most {MAX_PAGES_PER_QUESTION} can go with one "
                f"question: ask for fewer, e.g. --pages 1-{MAX_PAGES_PER_QUESTION}"
            )
        return chosen, f"{_pages_label(chosen)} as asked", []
    if page_count <= budget:
        return list(range(1, page_count + 1)), "the only page" if page_count == 1 else f"all {page_count} pages", []
    if not terms or index is None:
        chosen = list(range(1, budget + 1))
        if terms:  # no plugin reads this document's text: nothing to rank by
            return chosen, f"{_pages_label(chosen)}, the first {budget} of {page_count}: {name} has no text layer to rank pages by", []
        return chosen, f"{_pages_label(chosen)}, the first {budget} of {page_count} (name pages to choose others)", []
    return _choose_by_relevance(index, question, terms, budget, name)


def _gather_parts(document: _OpenedDocument, context: DocumentContext, pdf_mode: str) -> list[int]:
    """Each chosen page's text and/or image into `context.parts`; returns the pages imaged for lack of text."""
    want_images = pdf_mode in ("image", "both")
    want_text = pdf_mode in ("text", "both")
    imaged_for_lack_of_text: list[int] = []
    for page in context.pages:
        part = PagePart(page=page, source=f"{document.name} p.{page}")
        if want_text:
            part.text = document.text(page).strip()
        if want_images or not part.text:
            rendered = document.image(page)
            if rendered is None:
                if not part.text:
                    raise AssistantError(
                        f"cannot render page {page} of {document.name}: no plugin renders this kind of document"
                    )
            else:
                part.image = rendered.image
                if not want_images:
                    imaged_for_lack_of_text.append(page)
        context.parts.append(part)
    return imaged_for_lack_of_text


# --- fitting the pages into the model's context -----------------------------------------------

Measure = Callable[[list["Image"], str], int]
"""`measure(images, context_text)`: the prompt tokens of the question sent with these images and this text."""


def _weakest_first(context: DocumentContext) -> list[int]:
    """The pages in the order they are given up: lowest relevance first, else the last pages first."""
    if context.ranking:
        scores = {page: score for page, score, _matched in context.ranking}
        return sorted(context.pages, key=lambda page: (scores.get(page, 0.0), -page))
    return sorted(context.pages, reverse=True)


def fit_document(context: DocumentContext, measure: Measure, limit: int) -> DocumentContext:
    """Make the document's pages fit in `limit` prompt tokens; the reason then says what was left out.

    First the weaker pages go as text only (their images cost most), then the weakest pages are left out,
    the most relevant page (or the first one asked for) last; a page that alone does not fit is an error
    the user can act on. `measure` counts with the model's own processor; per-part costs are measured once
    and added up, and the final choice is measured again (and trimmed further when the sum was optimistic).
    """
    def total() -> int:
        context.assemble()
        return measure([image for image, _source in context.images], context.text)

    if not context.parts or total() <= limit:
        return context
    name = context.name
    base = measure([], "")
    image_cost = {part.page: measure([part.image], "") - base for part in context.parts if part.image is not None}
    text_cost = {part.page: measure([], _section(name, part)) - base for part in context.parts if part.text}
    order = _weakest_first(context)
    strongest = order[-1]
    parts = {part.page: part for part in context.parts}
    text_only: list[int] = []
    left_out: list[int] = []

    def estimate() -> int:
        return base + sum(
            (image_cost.get(page, 0) if part.image is not None else 0) + (text_cost.get(page, 0) if part.text else 0)
            for page, part in parts.items()
        )

    def make_text_only(page: int) -> None:
        parts[page].image = None
        text_only.append(page)

    def leave_out(page: int) -> None:
        del parts[page]
        left_out.append(page)
        if page in text_only:
            text_only.remove(page)

    for page in order[:-1]:
        if estimate() <= limit:
            break
        if parts[page].image is not None and parts[page].text:
            make_text_only(page)
    for page in order[:-1]:
        if estimate() <= limit:
            break
        leave_out(page)
    while True:
        context.parts = [parts[page] for page in sorted(parts)]
        needed = total()
        if needed <= limit:
            break
        remaining = [page for page in order if page in parts]
        if len(remaining) > 1:
            leave_out(remaining[0])
        elif parts[strongest].image is not None and parts[strongest].text:
            make_text_only(strongest)
        else:
            raise AssistantError(
                f"{name} page {strongest} alone needs {needed:,} tokens of context but only {limit:,} are free "
                "for it (the model's context less the reply); ask about a shorter page with --pages, set "
                "pdf_mode = \"text\", or use a profile with a longer context"
            )
    notes = []
    if text_only:
        notes.append(f"{_pages_label(sorted(text_only))} as text only")
    if left_out:
        notes.append(f"{_pages_label(sorted(left_out))} left out")
    context.reason += f"; to fit the model's context ({limit:,} tokens): {', '.join(notes)}"
    return context


def fit_to_model(
    assistant: Any,
    context: DocumentContext,
    question: str,
    other_images: Sequence[Any] = (),
    max_new_tokens: int | None = None,
    system_prompt: str | None = None,
) -> DocumentContext:
    """`fit_document` with the model's own token count, leaving room for the reply (loads the model).

    `assistant` is an assistant.Assistant; `other_images` (PIL or LoadedImage) go in the same message.
    """
    if not context.parts:
        return context
    from .engine.budget import question_measure

    pictures = [getattr(image, "image", image) for image in other_images]
    counted = question_measure(assistant, question, pictures, system_prompt)
    if counted is None:
        return context
    measure, context_limit = counted
    reply_tokens = int(max_new_tokens or assistant.profile.generation.max_new_tokens)
    return fit_document(context, measure, max(1, context_limit - reply_tokens))


# --- progress on a terminal -------------------------------------------------------------------

PROGRESS_DELAY_S = 0.5
"""Reading faster than this shows no progress at all."""


def terminal_progress(
    label: str, stream: TextIO | None = None, delay: float | None = None, every_s: float = 2.0
) -> Progress:
    """A `progress` callback that reports "indexing report.pdf: 120/1151 pages" on `stream` (stderr).

    Nothing for work that ends within `delay` seconds. On a terminal one line updated in place; otherwise
    (a pipe, a log) plain lines, at most one every `every_s` seconds, and a last one when done.
    """
    out = stream if stream is not None else sys.stderr
    wait = PROGRESS_DELAY_S if delay is None else delay
    tty = bool(getattr(out, "isatty", lambda: False)())
    started = time.perf_counter()
    state = {"shown": False, "last": 0.0}

    def report(done: int, total: int) -> None:
        now = time.perf_counter()
        finished = done >= total
        if now - started < wait and not state["shown"]:
            return
        if tty:
            if not finished and now - state["last"] < 0.1:
                return
            end = "\n" if finished else ""
            out.write(f"\rindexing {label}: {done}/{total} pages" + (f" in {now - started:.1f} s" if finished else "") + end)
        elif finished or not state["shown"] or now - state["last"] >= every_s:
            done_text = f" in {now - started:.1f} s" if finished else ""
            out.write(f"indexing {label}: {done}/{total} pages{done_text}\n")
        else:
            return
        out.flush()
        state["shown"] = True
        state["last"] = now

    return report
