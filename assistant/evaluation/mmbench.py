"""MMBench: the OpenCompass TSV (index, question, hint, A-D, answer, category, base64 image) with CircularEval.

CircularEval asks each question once per rotation of its options (A-D shifted by one each time) and counts it
right only when every rotation is answered right. When the file already holds the rotations (the official dev
TSVs do: index + 1,000,000 × k), those are used as they are; otherwise the rotations are made here.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

from ..errors import AssistantError
from .base import LoadOptions, Scored, Unit
from .items import EvalItem, bad_item, decode_base64_image, read_text
from .metrics import extract_choice

LETTERS = "ABCDEFGHI"
CIRCULAR_STEP = 1_000_000
REQUIRED = ("index", "question", "answer", "image", "A", "B")


def _empty(value: Any) -> bool:
    return value is None or str(value).strip() in ("", "nan", "NaN", "None")


def prompt(question: str, hint: str, options: dict[str, str]) -> str:
    """The question as VLMEvalKit asks it: hint, question, lettered options, answer with the letter."""
    lines = []
    if hint:
        lines.append(f"Hint: {hint}")
    lines.append(f"Question: {question}")
    lines.append("Options:")
    lines.extend(f"{letter}. {text}" for letter, text in options.items())
    lines.append("Answer with the option's letter from the given choices directly.")
    return "\n".join(lines)


def rotations(options: dict[str, str], answer: str) -> list[tuple[dict[str, str], str]]:
    """Every circular shift of the options with where the right answer moves: shift k puts the option that was
    at position i + k at position i."""
    texts = list(options.values())
    right = list(options).index(answer)
    count = len(texts)
    shifted = []
    for k in range(count):
        rotated = {LETTERS[i]: texts[(i + k) % count] for i in range(count)}
        shifted.append((rotated, LETTERS[(right - k) % count]))
    return shifted


def read_rows(path: Path) -> list[dict[str, str]]:
    text = read_text(path)
    csv.field_size_limit(sys.maxsize)
    try:
        reader = csv.DictReader(io.StringIO(text), delimiter="\t")
        rows = list(reader)
        columns = reader.fieldnames or []
    except csv.Error as error:
        raise AssistantError(f"{path} is not a readable TSV ({error}); give MMBench's .tsv file as downloaded") from None
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        hint = " (the test split withholds answers; use the dev split)" if missing == ["answer"] else ""
        raise AssistantError(
            f"{path} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)}{hint}; "
            "an MMBench TSV has index, question, A-D, answer, category and a base64 image"
        )
    if not rows:
        raise AssistantError(f"{path} has a header but no questions; give a file with at least one row")
    return rows


class MMBench:
    name = "mmbench"
    metric = "circular accuracy"
    binary = True
    max_new_tokens = 8
    ground = False

    def load(self, path: Path, options: LoadOptions) -> list[EvalItem]:
        rows = read_rows(path)
        images = {str(row.get("index", "")).strip(): row.get("image") or "" for row in rows}
        has_rotations = any(_index(row) is not None and _index(row) >= CIRCULAR_STEP for row in rows)  # type: ignore[operator]
        items: list[EvalItem] = []
        for number, row in enumerate(rows, start=2):
            items.extend(self._row_items(row, number, images, has_rotations))
        return items

    def _row_items(self, row: dict[str, Any], line: int, images: dict[str, str], given: bool) -> list[EvalItem]:
        index = _index(row)
        label = f"row {line} (index {row.get('index')})"
        if None in row or index is None:
            return [bad_item(f"line-{line}", f"{label}: malformed row (wrong number of fields or no index)")]
        unit = str(index % CIRCULAR_STEP)
        category = "" if _empty(row.get("category")) else str(row["category"]).strip()
        options = {letter: str(row[letter]).strip() for letter in LETTERS if not _empty(row.get(letter))}
        answer = str(row.get("answer") or "").strip().upper()
        if len(options) < 2 or answer not in options:
            return [bad_item(str(index), f"{label}: answer {answer!r} is not one of its options", unit, category)]
        try:
            image = self._image(row, images, label)
        except AssistantError as error:
            return [bad_item(str(index), str(error), unit, category)]
        hint = "" if _empty(row.get("hint")) else str(row["hint"]).strip()
        question = str(row.get("question") or "").strip()
        shifts = [(options, answer)] if given else rotations(options, answer)
        return [
            EvalItem(id=f"{index}" if given or k == 0 else f"{index}+r{k}", prompt=prompt(question, hint, shifted),
                     images=[image], expected=right, options=shifted, category=category, unit=unit)
            for k, (shifted, right) in enumerate(shifts)
        ]

    @staticmethod
    def _image(row: dict[str, Any], images: dict[str, str], label: str) -> Any:
        data = str(row.get("image") or "").strip()
        seen: set[str] = set()
        while data and len(data) <= 64 and data.isdigit() and data not in seen:  # another row's image, by index
            seen.add(data)
            data = str(images.get(data) or "").strip()
        if not data:
            raise AssistantError(f"{label}: no image")
        return decode_base64_image(data, label)

    def score(self, item: EvalItem, reply: str, grounding: dict[str, Any] | None) -> tuple[float, Any]:
        chosen = extract_choice(reply, item.options)
        return float(chosen == item.expected), chosen

    def units(self, scored: list[Scored]) -> list[Unit]:
        """One unit per question: right (1) only when every rotation is right; an error in any rotation makes the
        whole question an error unit."""
        grouped: dict[str, list[Scored]] = {}
        for entry in scored:
            grouped.setdefault(entry.item.unit, []).append(entry)
        units = []
        for unit, entries in grouped.items():
            if any(entry.score is None for entry in entries):
                score = None
            else:
                score = float(all(entry.score == 1.0 for entry in entries))
            units.append(Unit(unit, entries[0].item.category, score, [entry.item.id for entry in entries]))
        return units


def _index(row: dict[str, Any]) -> int | None:
    try:
        return int(float(str(row.get("index", "")).strip()))
    except ValueError:
        return None
