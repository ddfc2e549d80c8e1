"""A document's text layer, extracted once and cached by content, and the BM25 page ranking over it.

Pure Python (no torch). The text comes from the `document_text` hook (the whole document in one call; the
built-in PDF plugin opens the file once) or, for plugins that only implement `page_text`, page by page. It
is cached in the user cache dir under the file's sha256, so a second question about the same file does not
read it again, and an edited file (new content, new hash) is read afresh. Encrypted documents (opened with a
password) are never cached: their text must not end up on disk in the clear.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .hooktypes import PageRequest, PageText

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""`progress(pages_done, page_count)`, called while a document's text is extracted."""

INDEX_VERSION = 1
"""Bump when the cached format or the extraction changes: older cache files are then ignored."""
CACHE_KEEP = 64
"""Most documents kept in the cache; the least recently used go first."""

_WORD = re.compile(r"[^\W_]+")
_WORD_TAIL = re.compile(r"[^\W_]*")

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

Ranking = list[tuple[int, float, list[str]]]
"""(page, score, matched words as the question wrote them), best first."""


def _stem(word: str) -> str:
    """A light plural stemmer so that "revenues" finds "revenue" (nothing cleverer: it must stay explainable)."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def query_terms(question: str) -> list[tuple[str, str]]:
    """The question's content words as (stem, word as written), in order, without stopwords or repeats."""
    terms: dict[str, str] = {}
    for word in _WORD.findall(question.lower()):
        if word in STOPWORDS or (len(word) < 2 and not word.isdigit()):
            continue
        terms.setdefault(_stem(word), word)
    return list(terms.items())


def _probe(stem: str) -> str:
    """A substring every word with this stem contains ("librar" for "library", which "libraries" stems to)."""
    return stem[:-1] if stem.endswith("y") and len(stem) > 1 else stem


def _count_stem(text: str, stem: str, probe: str) -> int:
    """How many words of `text` (lowercased) stem to `stem`: only the words around each `probe` are looked at."""
    count = 0
    start = text.find(probe)
    while start != -1:
        left = start
        while left > 0 and text[left - 1].isalnum():
            left -= 1
        match = _WORD_TAIL.match(text, start + len(probe))
        right = match.end() if match else start + len(probe)
        if _stem(text[left:right]) == stem:
            count += 1
        start = text.find(probe, max(right, start + 1))
    return count


@dataclass
class TextIndex:
    """A document's text layer, one entry per page (page 1 first), ready to be ranked against a question."""

    page_count: int
    texts: list[str]
    lengths: list[int] = field(default_factory=list)
    """Words per page, as the ranking counts them (computed when not given)."""
    cached: bool = False
    """True when this came from the cache instead of the document."""
    _lower: list[str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.lengths) != len(self.texts):
            self.lengths = [len(_WORD.findall(text.lower())) for text in self.texts]

    @property
    def has_text(self) -> bool:
        return any(text.strip() for text in self.texts)

    def text(self, page: int) -> str:
        return self.texts[page - 1] if 1 <= page <= len(self.texts) else ""

    def rank(self, question: str, top_k: int, k1: float = 1.5, b: float = 0.75) -> Ranking:
        """The `top_k` pages that best match the question by BM25 over words: (page, score, matched words).

        Only pages matching at least one content word are returned, best first (ties: lower page first).
        Fast on long documents: a page is only scanned where it contains a query word's stem.
        """
        terms = query_terms(question)
        if not terms or not self.texts or top_k < 1:
            return []
        if self._lower is None:
            self._lower = [text.lower() for text in self.texts]
        total = len(self.texts)
        average = (sum(self.lengths) / total) or 1.0
        frequencies: dict[str, dict[int, int]] = {}
        for stem, _word in terms:
            probe = _probe(stem)
            found: dict[int, int] = {}
            for index, text in enumerate(self._lower):
                if probe in text:
                    count = _count_stem(text, stem, probe)
                    if count:
                        found[index + 1] = count
            frequencies[stem] = found
        scores: dict[int, tuple[float, list[str]]] = {}
        for stem, word in terms:
            found = frequencies[stem]
            idf = math.log((total - len(found) + 0.5) / (len(found) + 0.5) + 1.0)
            for page, tf in found.items():
                norm = k1 * (1 - b + b * self.lengths[page - 1] / average)
                score, matched = scores.get(page, (0.0, []))
                scores[page] = (score + idf * tf * (k1 + 1) / (tf + norm), matched + [word])
        ranked = [(page, score, matched) for page, (score, matched) in scores.items()]
        ranked.sort(key=lambda item: (-item[1], item[0]))
        return ranked[:top_k]


# --- extraction through the hooks --------------------------------------------------------------

def _no_progress(done: int, total: int) -> None:
    return None


def extract_index(
    manager: Any, path: Path, password: str | None = None, progress: Progress | None = None
) -> TextIndex | None:
    """Read every page's text through the plugins (no cache); None when no plugin reads this kind of document.

    The `document_text` hook first (one call for the whole document), else `page_text` page by page.
    """
    report = progress or _no_progress
    request = PageRequest(path=path, page=1, password=password)
    pages: list[PageText] | None = manager.call_first("document_text", request=request, progress=report)
    if pages is not None:
        page_count = pages[0].page_count if pages else 0
        texts = [""] * page_count
        for page in pages:
            if 1 <= page.page <= page_count:
                texts[page.page - 1] = page.text
        return TextIndex(page_count=page_count, texts=texts)
    first: PageText | None = manager.call_first("page_text", request=request)
    if first is None:
        return None
    texts = [first.text]
    report(1, first.page_count)
    for number in range(2, first.page_count + 1):
        found = manager.call_first("page_text", request=PageRequest(path=path, page=number, password=password))
        texts.append(found.text if found is not None else "")
        report(number, first.page_count)
    return TextIndex(page_count=first.page_count, texts=texts)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_dir() -> Path:
    from .paths import user_paths

    return user_paths().cache / "documents"


def _cache_file(digest: str) -> Path:
    return cache_dir() / f"{digest}.json"


def read_cached(digest: str) -> TextIndex | None:
    """The cached index for this content hash, or None (missing, unreadable or of another version)."""
    path = _cache_file(digest)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != INDEX_VERSION or data.get("sha256") != digest:
            return None
        index = TextIndex(
            page_count=int(data["page_count"]), texts=list(data["texts"]), lengths=list(data["lengths"]), cached=True
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.utime(path)  # most recently used: pruned last
    except OSError:
        pass
    return index


def write_cached(digest: str, index: TextIndex, name: str = "") -> None:
    """Store the index (file mode 0600, folder 0700: document text is private); failures only log."""
    directory = cache_dir()
    payload = {
        "version": INDEX_VERSION,
        "sha256": digest,
        "name": name,
        "page_count": index.page_count,
        "texts": index.texts,
        "lengths": index.lengths,
    }
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")  # mkstemp: mode 0600
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(payload, stream, ensure_ascii=False)
            os.replace(temporary, _cache_file(digest))
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _prune(directory)
    except OSError as error:
        log.warning("cannot cache the text of %s: %s", name or digest, error)


def _prune(directory: Path, keep: int = CACHE_KEEP) -> None:
    files = sorted(directory.glob("*.json"), key=lambda file: file.stat().st_mtime, reverse=True)
    for stale in files[keep:]:
        stale.unlink(missing_ok=True)


def load_index(
    manager: Any, path: Path, password: str | None = None, progress: Progress | None = None
) -> TextIndex | None:
    """The document's text index: from the cache when this content was read before, else extracted and cached.

    None when no plugin reads text from this kind of document (rank by images is impossible then).
    """
    digest = file_sha256(path) if password is None else ""
    if digest:
        cached = read_cached(digest)
        if cached is not None:
            if progress is not None:
                progress(cached.page_count, cached.page_count)
            return cached
    index = extract_index(manager, path, password, progress)
    if index is not None and digest and index.page_count > 0:
        write_cached(digest, index, path.name)
    return index
