"""Document Q&A: page specs ("2-4"), an explainable page ranking, and the pages a question is sent with.

Pure Python (no torch): it reads documents only through the `page_text` and `render_page` hooks, so a
third-party plugin that handles another document type works here exactly like the built-in PDF plugin.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import AssistantError
from .hooktypes import PageRequest, PageText, RenderedPage
from .profiles import DocumentSettings

if TYPE_CHECKING:
    from PIL.Image import Image

MAX_PAGES_PER_QUESTION = 20
"""Hard cap on the pages one question may ask for: more would not fit any local model's context."""

_RANGE = re.compile(r"^(\d*)\s*-\s*(\d*)$")
_WORD = re.compile(r"[^\W_]+")

STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her
    here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not
    now of off on once only or other our ours ourselves out over own same she should so some such than that the
    their theirs them themselves then there these they this those through to too under until up very was we
    were what when where which while who whom why will with would you your yours yourself yourselves
    tell show give find explain describe say says said please document pdf file
    """.split()
)
"""Words that say nothing about which page holds the answer."""


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

def _stem(word: str) -> str:
    """A light plural stemmer so that "revenues" finds "revenue" (nothing cleverer: it must stay explainable)."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _words(text: str) -> list[str]:
    return [_stem(word) for word in _WORD.findall(text.lower())]


def query_terms(question: str) -> list[tuple[str, str]]:
    """The question's content words as (stem, word as written), in order, without stopwords or repeats."""
    terms: dict[str, str] = {}
    for word in _WORD.findall(question.lower()):
        if word in STOPWORDS or (len(word) < 2 and not word.isdigit()):
            continue
        terms.setdefault(_stem(word), word)
    return list(terms.items())


def rank_pages(
    page_texts: dict[int, str], question: str, top_k: int, k1: float = 1.5, b: float = 0.75
) -> list[tuple[int, float, list[str]]]:
    """The `top_k` pages that best match the question by BM25 over words: (page, score, matched terms).

    Only pages matching at least one content word of the question are returned, best first (ties: lower
    page first), so the caller can say why each page was chosen.
    """
    terms = query_terms(question)
    if not terms or not page_texts or top_k < 1:
        return []
    counts = {page: Counter(_words(text)) for page, text in page_texts.items()}
    lengths = {page: sum(counter.values()) for page, counter in counts.items()}
    average = (sum(lengths.values()) / len(lengths)) or 1.0
    total = len(counts)
    idf = {}
    for stem, _word in terms:
        frequency = sum(1 for counter in counts.values() if stem in counter)
        idf[stem] = math.log((total - frequency + 0.5) / (frequency + 0.5) + 1.0)
    ranked: list[tuple[int, float, list[str]]] = []
    for page, counter in counts.items():
        score = 0.0
        matched: list[str] = []
        for stem, word in terms:
            tf = counter.get(stem, 0)
            if not tf:
                continue
            matched.append(word)
            norm = k1 * (1 - b + b * lengths[page] / average)
            score += idf[stem] * tf * (k1 + 1) / (tf + norm)
        if matched:
            ranked.append((page, score, matched))
    ranked.sort(key=lambda item: (-item[1], item[0]))
    return ranked[:top_k]


# --- preparing a document for a question ------------------------------------------------------

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
    ranking: list[tuple[int, float, list[str]]] = field(default_factory=list)
    """The relevance ranking behind an automatic choice (empty when pages were asked for)."""

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def footer(self) -> str:
        return f"{self.name}: {self.reason}"


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
    texts: dict[int, str], question: str, terms: list[str], budget: int, page_count: int, name: str
) -> tuple[list[int], str, list[tuple[int, float, list[str]]]]:
    """Pages by relevance to the question, or the first pages (saying why) when the text cannot tell."""
    first = list(range(1, budget + 1))
    if not any(text.strip() for text in texts.values()):
        return first, f"{_pages_label(first)}, the first {budget} of {page_count}: {name} has no text layer to rank pages by", []
    ranking = rank_pages(texts, question, budget)
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
) -> DocumentContext:
    """Choose the pages a question about `path` is sent with and gather their images and text.

    With `pages` (a spec such as "1-3"), those pages, at most MAX_PAGES_PER_QUESTION. Without, every page when
    the document fits in `settings.page_budget`, else the most relevant pages by the text layer (the first
    ones when there is no text layer or nothing matches). `settings.pdf_mode` picks image, text or both; a
    page without a text layer is sent as an image even in text mode. `manager` is an
    assistant.plugins.PluginManager (anything with `call_first`).
    """
    settings = settings or DocumentSettings()
    path = Path(path).expanduser()
    if not path.exists():
        raise AssistantError(f"{path} not found; check the path")
    if path.is_dir():
        raise AssistantError(f"{path} is a folder; give a document file such as report.pdf")
    name = path.name
    budget = max(1, settings.page_budget)

    def request(page: int) -> PageRequest:
        return PageRequest(path=path, page=page, dpi=settings.dpi, password=password)

    texts: dict[int, str] = {}
    first_text = _page_text(manager, request(1))
    first_image: RenderedPage | None = None
    if first_text is not None:
        page_count = first_text.page_count
        texts[1] = first_text.text
    else:
        first_image = _render(manager, request(1))
        if first_image is None:
            raise _no_plugin(path)
        page_count = first_image.page_count
    if page_count < 1:
        raise AssistantError(f"{name} has no pages; check that it is the right file")

    ranking: list[tuple[int, float, list[str]]] = []
    if pages is not None and pages.strip():
        chosen = parse_page_spec(pages, page_count, name)
        if len(chosen) > MAX_PAGES_PER_QUESTION:
            raise AssistantError(
                f"pages {pages.strip()} are {len(chosen)} pages; at most {MAX_PAGES_PER_QUESTION} can go with one "
                f"question: ask for fewer, e.g. --pages 1-{MAX_PAGES_PER_QUESTION}"
            )
        reason = f"{_pages_label(chosen)} as asked"
    elif page_count <= budget:
        chosen = list(range(1, page_count + 1))
        reason = "the only page" if page_count == 1 else f"all {page_count} pages"
    else:
        first = list(range(1, budget + 1))
        terms = [word for _stem, word in query_terms(question)]
        if not terms:
            chosen = first
            reason = f"{_pages_label(first)}, the first {budget} of {page_count} (name pages to choose others)"
        else:
            if first_text is not None:
                for page in range(2, page_count + 1):
                    found = _page_text(manager, request(page))
                    texts[page] = found.text if found is not None else ""
            chosen, reason, ranking = _choose_by_relevance(texts, question, terms, budget, page_count, name)

    context = DocumentContext(path=path, page_count=page_count, pages=chosen, reason=reason, ranking=ranking)
    want_images = settings.pdf_mode in ("image", "both")
    want_text = settings.pdf_mode in ("text", "both")
    sections: list[str] = []
    imaged_for_lack_of_text: list[int] = []
    for page in chosen:
        text = ""
        if want_text:
            if page not in texts:
                found = _page_text(manager, request(page))
                texts[page] = found.text if found is not None else ""
            text = texts[page].strip()
            if text:
                sections.append(f"--- {name} page {page} ---\n{text}")
        if want_images or not text:
            if page == 1 and first_image is not None:
                rendered: RenderedPage | None = first_image
            else:
                rendered = _render(manager, request(page))
            if rendered is None:
                if not text:
                    raise AssistantError(f"cannot render page {page} of {name}: no plugin renders this kind of document")
                continue
            context.images.append((rendered.image, f"{name} p.{page}"))
            if not want_images:
                imaged_for_lack_of_text.append(page)
    context.text = "\n\n".join(sections)
    if imaged_for_lack_of_text:
        context.reason += f"; {_pages_label(imaged_for_lack_of_text)} sent as images (no text layer)"
    return context
