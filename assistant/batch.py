"""Batch questions over many inputs: paths to items, resume keys, the JSON output lines, the run loop and its summary.

Pure Python (no torch): the model side is `assistant.batch_model` (through the ModelBackend seam), the command is
`assistant.batch_cli`. An input is an image, a folder (searched recursively; images and PDFs found by their
content, not their extension), a glob, a PDF (each page one input) or a JSONL manifest of
`{"image": PATH, "question": TEXT}` lines (each input with its own question).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Sequence

from .document_index import file_sha256  # one content hash for documents and batch inputs
from .errors import AssistantError

MAX_INPUT_BYTES = 256 * 1024 * 1024
"""Files above this are one error line (not read): no image worth asking about is this large."""

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"})
"""Folder files with these names are inputs even when their content is not an image: a damaged photo is reported
as an error line instead of being silently passed over."""

MANIFEST_EXTENSIONS = frozenset({".jsonl", ".ndjson"})

_HEAD_BYTES = 1024


# --- inputs -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class BatchItem:
    """One question about one image (or one PDF page)."""

    input: str
    """The path as the user wrote it (or as found in a folder/manifest): the `input` field of the output line."""
    path: Path
    question: str
    page: int | None = None
    """1-based page of a PDF; None for an image."""
    error: str | None = None
    """Known unusable before reading (a bad manifest line, a PDF that cannot be opened): written as an error line."""


def sniff(path: Path) -> str:
    """What a file holds, from its first bytes: "image", "pdf" or "" (unknown or unreadable)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except OSError:
        return ""
    if b"%PDF-" in head:
        return "pdf"
    if (
        head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM"))
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
    ):
        return "image"
    return ""


def _is_manifest(path: Path) -> bool:
    return path.suffix.lower() in MANIFEST_EXTENSIONS


def _has_glob(text: str) -> bool:
    return any(char in text for char in "*?[")


def expand_inputs(
    arguments: Sequence[str],
    question: str | None,
    page_count: Callable[[Path], int],
    base: Path | None = None,
) -> list[BatchItem]:
    """The items for the command line's PATH arguments, in order (folders sorted by path).

    `page_count(pdf)` returns a PDF's pages or raises AssistantError (the PDF is then one error item).
    A path that does not exist, a glob that matches nothing or a manifest that cannot be read is an AssistantError
    before anything runs: the command line itself is wrong.
    """
    items: list[BatchItem] = []
    for argument in arguments:
        items.extend(_expand_one(argument, question, page_count, base, from_manifest=False))
    return items


def _expand_one(
    argument: str, question: str | None, page_count: Callable[[Path], int], base: Path | None, from_manifest: bool
) -> Iterator[BatchItem]:
    path = Path(argument).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    if not path.exists() and _has_glob(argument):
        pattern = str(path)
        matches = sorted(glob.glob(pattern, recursive=True))
        if not matches:
            raise AssistantError(f"{argument} matches no files; check the pattern (quote it so the shell leaves it alone)")
        for match in matches:
            yield from _expand_path(Path(match), match, question, page_count, explicit=False)
        return
    if not path.exists():
        raise AssistantError(f"{argument} not found; check the path")
    if path.is_file() and _is_manifest(path) and not from_manifest:
        yield from read_manifest(path, argument, question, page_count)
        return
    yield from _expand_path(path, argument, question, page_count, explicit=True)


def _expand_path(
    path: Path, label: str, question: str | None, page_count: Callable[[Path], int], explicit: bool
) -> Iterator[BatchItem]:
    if path.is_dir():
        for found in _walk(path):
            shown = os.path.join(label, os.path.relpath(found, path))
            kind = sniff(found)
            if kind or found.suffix.lower() in IMAGE_EXTENSIONS or found.suffix.lower() == ".pdf":
                yield from _file_items(found, shown, question, kind, page_count)
        return
    if not explicit and not (sniff(path) or path.suffix.lower() in IMAGE_EXTENSIONS | {".pdf"}):
        return  # a glob such as photos/* also matches notes.txt: only images and PDFs count
    yield from _file_items(path, label, question, sniff(path), page_count)


def _walk(folder: Path) -> list[Path]:
    """Every file under `folder`, recursively, sorted; hidden files and folders are left out."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(name for name in dirs if not name.startswith("."))
        found.extend(Path(root) / name for name in files if not name.startswith("."))
    return sorted(found)


def _file_items(
    path: Path, label: str, question: str | None, kind: str, page_count: Callable[[Path], int]
) -> Iterator[BatchItem]:
    if not question:
        yield BatchItem(label, path, "", error="no question for this input; pass --question TEXT or give one in the manifest")
        return
    if kind == "pdf" or (not kind and path.suffix.lower() == ".pdf"):
        try:
            count = page_count(path)
        except AssistantError as error:
            yield BatchItem(label, path, question, error=str(error))
            return
        for page in range(1, count + 1):
            yield BatchItem(label, path, question, page=page)
        return
    yield BatchItem(label, path, question)


def read_manifest(
    path: Path, label: str, question: str | None, page_count: Callable[[Path], int]
) -> Iterator[BatchItem]:
    """Items of a JSONL manifest: `{"image": PATH, "question": TEXT}` per line (PATH relative to the manifest;
    the question falls back to --question). A bad line is one error item naming the line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise AssistantError(f"cannot read the manifest {label} ({error}); give a UTF-8 JSONL file") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{label}:{number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            yield BatchItem(where, path, question or "", error=f"line {number} of {label} is not JSON ({error.msg})")
            continue
        image = entry.get("image") if isinstance(entry, dict) else None
        if not isinstance(image, str) or not image.strip():
            yield BatchItem(where, path, question or "", error=f'line {number} of {label} has no "image" path')
            continue
        asked = entry.get("question")
        if asked is not None and not isinstance(asked, str):
            yield BatchItem(where, path, question or "", error=f'line {number} of {label}: "question" must be text')
            continue
        try:
            yield from _expand_one(image, asked or question, page_count, path.parent, from_manifest=True)
        except AssistantError as error:
            yield BatchItem(image, path.parent / image, asked or question or "", error=str(error))


# --- resume -----------------------------------------------------------------------------------

def item_key(sha256: str, page: int | None, question: str, profile: str) -> str:
    """What makes an answer reusable: the input's content, the page, the question and the profile."""
    return json.dumps([sha256, page, question, profile])


def answered_records(output: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The answered lines of an earlier run's output (parsed), and the lines to keep in the file.

    Error lines are dropped (those inputs are tried again), as is a line cut short by a killed process.
    """
    records: list[dict[str, Any]] = []
    kept: list[str] = []
    try:
        text = output.read_text(encoding="utf-8")
    except FileNotFoundError:
        return records, kept
    except (OSError, UnicodeDecodeError) as error:
        raise AssistantError(f"cannot read {output} to resume ({error}); choose another -o file") from None
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict) or record.get("error") is not None or not record.get("sha256"):
            continue
        records.append(record)
        kept.append(line)
    return records, kept


def record_key(record: dict[str, Any]) -> str:
    return item_key(str(record["sha256"]), record.get("page"), str(record.get("question", "")), str(record.get("profile", "")))


# --- answers and output lines -----------------------------------------------------------------

@dataclass
class Prepared:
    """An item read and checked, ready for the model."""

    item: BatchItem
    sha256: str
    image: Any
    """A PIL image (RGB)."""


@dataclass
class Answer:
    """What the model made of one prepared item."""

    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    grounding: dict[str, Any] | None = None
    error: str | None = None
    stopped: bool = False
    """Cut short by Ctrl+C: not written (the input is answered again by the next run)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """More fields for the output line (e.g. `chat_id` with --save)."""


def output_record(
    item: BatchItem, sha256: str | None, profile: str, answer: Answer | None, error: str | None, ground: bool
) -> dict[str, Any]:
    """One output line (the fields documented in the README)."""
    record: dict[str, Any] = {
        "input": item.input,
        "page": item.page,
        "sha256": sha256,
        "question": item.question,
        "profile": profile,
        "answer": answer.text if answer is not None and error is None else None,
        "error": error,
        "prompt_tokens": answer.prompt_tokens if answer is not None else 0,
        "completion_tokens": answer.completion_tokens if answer is not None else 0,
        "seconds": round(answer.seconds, 3) if answer is not None else 0.0,
    }
    if ground:
        record["grounding"] = answer.grounding if answer is not None and error is None else None
    if answer is not None:
        record.update(answer.extra)
    return record


# --- the run ----------------------------------------------------------------------------------

@dataclass
class BatchSummary:
    total: int = 0
    ok: int = 0
    errors: int = 0
    skipped: int = 0
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def done(self) -> int:
        return self.ok + self.errors + self.skipped

    @property
    def answered(self) -> int:
        return self.ok + self.errors

    def line(self) -> str:
        """The closing line on stderr."""
        rate = f" · {self.ok / self.seconds:.2f} inputs/s" if self.seconds > 0 and self.ok else ""
        head = "interrupted" if self.interrupted else "done"
        left = self.total - self.done
        rest = f", {left} not answered yet (run the same command again to continue)" if self.interrupted and left else ""
        return (
            f"batch {head}: {self.ok} ok, {self.errors} error{'s' if self.errors != 1 else ''}, "
            f"{self.skipped} skipped (answered before) of {self.total}{rest} · {self.seconds:.1f} s{rate}"
        )


AnswerMany = Callable[[list[Prepared]], list[Answer]]
"""Answers a group of prepared items (one `generate` call for a real batch, one after another otherwise)."""


@dataclass
class BatchRun:
    """Reads each item, skips those answered before, asks the model in groups of `batch_size`, writes a line each.

    `stop` (set by Ctrl+C) ends the run after the current group: every finished line is already written.
    """

    items: list[BatchItem]
    profile: str
    answer_many: AnswerMany
    write: Callable[[dict[str, Any]], None]
    read_image: Callable[[BatchItem, bytes | None], Any]
    """PIL image of an item: decoded from the file's bytes (images) or rendered (PDF pages); AssistantError if bad."""
    batch_size: int = 1
    previous: list[dict[str, Any]] = field(default_factory=list)
    """Answered lines of an earlier run (the -o file): their inputs are skipped."""
    ground: bool = False
    progress: Callable[[BatchSummary], None] | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    max_bytes: int = MAX_INPUT_BYTES

    def __post_init__(self) -> None:
        self._answers: dict[str, dict[str, Any]] = {}
        """Answered lines by key: an input with the same content and question reuses the answer."""
        self._written: set[tuple[str, str, int | None]] = set()
        """(key, input, page) of every answered line in the file: those inputs are skipped."""
        for record in self.previous:
            self._remember(record)

    def _remember(self, record: dict[str, Any]) -> None:
        key = record_key(record)
        self._answers.setdefault(key, record)
        self._written.add((key, str(record.get("input")), record.get("page")))

    def run(self) -> BatchSummary:
        summary = BatchSummary(total=len(self.items))
        started = time.perf_counter()
        group: list[Prepared] = []
        hashes: dict[Path, str] = {}
        try:
            for item in self.items:
                if self.stop.is_set():
                    break
                prepared = self._prepare(item, hashes, summary)
                if prepared is not None:
                    group.append(prepared)
                if len(group) >= self.batch_size:
                    self._answer(group, summary)
                    group = []
                self._report(summary, started)
            if group and not self.stop.is_set():
                self._answer(group, summary)
        finally:
            summary.interrupted = self.stop.is_set() and summary.done < summary.total
            summary.seconds = time.perf_counter() - started
            self._report(summary, started)
        return summary

    def _report(self, summary: BatchSummary, started: float) -> None:
        summary.seconds = time.perf_counter() - started
        if self.progress is not None:
            self.progress(summary)

    def _error(self, item: BatchItem, sha256: str | None, message: str, summary: BatchSummary) -> None:
        self.write(output_record(item, sha256, self.profile, None, message, self.ground))
        summary.errors += 1

    def _prepare(self, item: BatchItem, hashes: dict[Path, str], summary: BatchSummary) -> Prepared | None:
        """The item read and checked; None when it was skipped or written as an error line."""
        if item.error is not None:
            self._error(item, None, item.error, summary)
            return None
        data: bytes | None = None
        try:
            size = item.path.stat().st_size
            if size > self.max_bytes:
                raise AssistantError(
                    f"{item.input} is {size / 1e6:.0f} MB, over the {self.max_bytes / 1e6:.0f} MB limit for one input; "
                    "downscale or split it"
                )
            if item.page is None:
                data = item.path.read_bytes()
                sha256 = hashlib.sha256(data).hexdigest()
            else:
                if item.path not in hashes:
                    hashes[item.path] = file_sha256(item.path)
                sha256 = hashes[item.path]
        except PermissionError:
            self._error(item, None, f"cannot read {item.input}: permission denied; check the file's permissions", summary)
            return None
        except OSError as error:
            self._error(item, None, f"cannot read {item.input}: {error.strerror or error}", summary)
            return None
        except AssistantError as error:
            self._error(item, None, str(error), summary)
            return None
        key = item_key(sha256, item.page, item.question, self.profile)
        if (key, item.input, item.page) in self._written:
            summary.skipped += 1
            return None
        earlier = self._answers.get(key)
        if earlier is not None:  # the same content and question under another name: its answer, no model call
            record = {**earlier, "input": item.input, "page": item.page, "seconds": 0.0, "reused_from": earlier["input"]}
            self.write(record)
            self._remember(record)
            summary.ok += 1
            return None
        try:
            image = self.read_image(item, data)
        except AssistantError as error:
            self._error(item, sha256, str(error), summary)
            return None
        return Prepared(item, sha256, image)

    def _answer(self, group: list[Prepared], summary: BatchSummary) -> None:
        answers = self.answer_many(group)
        for prepared, answer in zip(group, answers):
            if answer.stopped:
                continue  # cut short: not a finished answer, the next run asks again
            record = output_record(prepared.item, prepared.sha256, self.profile, answer, answer.error, self.ground)
            self.write(record)
            if answer.error is None:
                summary.ok += 1
                self._remember(record)
            else:
                summary.errors += 1


# --- progress ---------------------------------------------------------------------------------

def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def progress_text(summary: BatchSummary) -> str:
    """`12/40 · 1.5 images/s · ETA 0:19 · 1 error, 3 skipped`: done/total, speed of the answered ones, time left."""
    parts = [f"{summary.done}/{summary.total}"]
    if summary.answered and summary.seconds > 0:
        rate = summary.answered / summary.seconds
        parts.append(f"{rate:.2f} inputs/s")
        left = summary.total - summary.done
        if left:
            parts.append(f"ETA {_clock(left / rate)}")
    extra = []
    if summary.errors:
        extra.append(f"{summary.errors} error{'s' if summary.errors != 1 else ''}")
    if summary.skipped:
        extra.append(f"{summary.skipped} skipped")
    if extra:
        parts.append(", ".join(extra))
    return " · ".join(parts)


class Progress:
    """Progress on stderr: a bar redrawn in place on a terminal, plain lines (at most one every `interval` s) otherwise."""

    def __init__(
        self, stream: IO[str], tty: bool | None = None, interval: float = 2.0, width: int = 30, label: str = "batch"
    ) -> None:
        self.stream = stream
        self.label = label
        """The command's name that starts each plain line (`batch`, `eval`)."""
        self.tty = stream.isatty() if tty is None else tty
        self.interval = interval
        self.width = width
        self._last = -1e9
        self._last_done = -1
        self._drawn = False

    def __call__(self, summary: BatchSummary) -> None:
        if summary.done == self._last_done:
            return
        now = time.monotonic()
        final = summary.done >= summary.total
        if self.tty:
            filled = int(self.width * summary.done / summary.total) if summary.total else self.width
            bar = "█" * filled + "░" * (self.width - filled)
            self.stream.write(f"\r{bar} {progress_text(summary)}\x1b[K")
            self._drawn = True
        elif final or now - self._last >= self.interval:
            self.stream.write(f"{self.label}: {progress_text(summary)}\n")
            self._last = now
        else:
            return
        self._last_done = summary.done
        self.stream.flush()

    def clear(self) -> None:
        """Wipe the bar (before a line goes to the same terminal on stdout); the next update draws it again."""
        if self.tty and self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._last_done = -1

    def close(self) -> None:
        """End the bar's line (so the summary starts on its own line)."""
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()

