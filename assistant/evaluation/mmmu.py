"""MMMU: multiple-choice (and a few open) questions over one to seven images, from its JSON or parquet files.

Fields as the Hugging Face dataset has them: id, question (with `<image 1>` placeholders), options (a Python-list
string such as "['1/2', '1/4']"), answer (the letter; text for open questions), image_1 .. image_7,
subfield/subject. The reply is free text: the chosen letter or option text is extracted from it
(`metrics.extract_choice`); an open question is right when the reply contains the answer.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from ..errors import AssistantError
from .base import LoadOptions, Scored, Unit, item_units
from .items import BadLine, EvalItem, bad_item, load_image_ref, read_records
from .metrics import contains_match, extract_choice

LETTERS = "ABCDEFGHIJ"
IMAGE_FIELDS = tuple(f"image_{n}" for n in range(1, 8))
_PLACEHOLDER = re.compile(r"<image (\d)>")


def parse_options(value: Any) -> list[str]:
    """MMMU's options: a Python-list string ("['a', 'b']"), or already a list."""
    if isinstance(value, list):
        return [str(option) for option in value]
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    try:
        parsed = ast.literal_eval(str(value))
    except (ValueError, SyntaxError):
        raise AssistantError(f"options {str(value)[:40]!r} is not a list") from None
    if not isinstance(parsed, (list, tuple)):
        raise AssistantError(f"options {str(value)[:40]!r} is not a list")
    return [str(option) for option in parsed]


def prompt(question: str, options: dict[str, str], open_question: bool) -> str:
    text = _PLACEHOLDER.sub(lambda match: f"(image {match.group(1)})", question.strip())
    if open_question:
        return text + "\nAnswer the question using a single word or phrase."
    lines = [text, *(f"{letter}. {_PLACEHOLDER.sub(lambda m: f'(image {m.group(1)})', option)}"
                     for letter, option in options.items())]
    lines.append("Answer with the option's letter from the given choices directly.")
    return "\n".join(lines)


class MMMU:
    name = "mmmu"
    metric = "accuracy"
    binary = True
    max_new_tokens = 16
    ground = False

    def load(self, path: Path, options: LoadOptions) -> list[EvalItem]:
        rows = read_records(path, "MMMU question")
        if not any(isinstance(row, dict) and "question" in row for row in rows):
            raise AssistantError(
                f"{path} has no 'question' field; an MMMU file has id, question, options, answer and image_1..image_7"
            )
        return [self._item(row, number, path.parent) for number, row in enumerate(rows, start=1)]

    def _item(self, row: Any, number: int, base: Path) -> EvalItem:
        if isinstance(row, BadLine):
            return bad_item(f"line-{row.number}", row.message)
        if not isinstance(row, dict):
            return bad_item(f"item-{number}", f"item {number} is not an object")
        item_id = str(row.get("id") or f"item-{number}")
        category = str(row.get("subject") or _subject(item_id) or row.get("subfield") or "")
        question = row.get("question")
        answer = row.get("answer")
        if not isinstance(question, str) or not question.strip() or answer in (None, ""):
            return bad_item(item_id, f"{item_id}: needs a question and an answer", category=category)
        open_question = str(row.get("question_type") or "").lower() == "open"
        try:
            texts = parse_options(row.get("options"))
        except AssistantError as error:
            return bad_item(item_id, f"{item_id}: {error}", category=category)
        if not texts:
            open_question = True
        options = {LETTERS[i]: text for i, text in enumerate(texts[: len(LETTERS)])}
        expected: Any = str(answer).strip()
        if not open_question and expected not in options:
            return bad_item(item_id, f"{item_id}: answer {expected!r} is not an option letter", category=category)
        images = []
        try:
            for name in IMAGE_FIELDS:
                if row.get(name) not in (None, ""):
                    images.append(load_image_ref(row[name], base, f"{item_id} {name}"))
        except AssistantError as error:
            return bad_item(item_id, str(error), category=category)
        return EvalItem(id=item_id, prompt=prompt(question, options, open_question), images=images,
                        expected=expected if not open_question else _answers(answer), options=options,
                        category=category, kind="open" if open_question else "")

    def score(self, item: EvalItem, reply: str, grounding: dict[str, Any] | None) -> tuple[float, Any]:
        if item.kind == "open":
            return contains_match(reply, item.expected), reply.strip()
        chosen = extract_choice(reply, item.options)
        return float(chosen == item.expected), chosen

    def units(self, scored: list[Scored]) -> list[Unit]:
        return item_units(scored)


def _answers(answer: Any) -> list[str]:
    if isinstance(answer, list):
        return [str(value) for value in answer]
    text = str(answer).strip()
    if text.startswith("["):
        try:
            parsed = ast.literal_eval(text)
            if isinstance(parsed, list):
                return [str(value) for value in parsed]
        except (ValueError, SyntaxError):
            pass
    return [text]


def _subject(item_id: str) -> str:
    """MMMU ids read `validation_Art_Theory_12`: the subject is between the split and the number."""
    parts = item_id.split("_")
    return "_".join(parts[1:-1]) if len(parts) > 2 else ""
