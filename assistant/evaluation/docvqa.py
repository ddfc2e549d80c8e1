"""DocVQA: a question about a document image, scored by ANLS against every valid answer.

Reads the RRC annotation JSON (`{"data": [{"questionId", "question", "image": "documents/x.png", "answers"}]}`,
images relative to the JSON file), the same rows as JSONL, or the Hugging Face parquet (images embedded).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import AssistantError
from .base import LoadOptions, Scored, Unit, item_units
from .items import BadLine, EvalItem, bad_item, load_image_ref, read_records
from .metrics import ANLS_THRESHOLD, anls


class DocVQA:
    name = "docvqa"
    metric = "ANLS"
    binary = False
    max_new_tokens = 32
    ground = False

    def load(self, path: Path, options: LoadOptions) -> list[EvalItem]:
        rows = read_records(path, "DocVQA question")
        if not any(isinstance(row, dict) and "answers" in row for row in rows):
            raise AssistantError(
                f"{path} has no 'answers' field (the test split withholds them; use train or val); "
                "a DocVQA file has questionId, question, image and answers"
            )
        return [self._item(row, number, path.parent) for number, row in enumerate(rows, start=1)]

    def _item(self, row: Any, number: int, base: Path) -> EvalItem:
        if isinstance(row, BadLine):
            return bad_item(f"line-{row.number}", row.message)
        if not isinstance(row, dict):
            return bad_item(f"item-{number}", f"item {number} is not an object")
        item_id = str(row.get("questionId") or row.get("question_id") or f"item-{number}")
        category = row.get("question_types") or ""
        category = str(category[0] if isinstance(category, list) and category else category or "")
        question, answers = row.get("question"), row.get("answers")
        if isinstance(answers, str):
            answers = [answers]
        if not isinstance(question, str) or not question.strip() or not answers:
            return bad_item(item_id, f"{item_id}: needs a question and a list of answers", category=category)
        try:
            image = load_image_ref(row.get("image"), base, f"{item_id} image")
        except AssistantError as error:
            return bad_item(item_id, str(error), category=category)
        text = f"{question.strip()}\nAnswer the question using a single word or phrase."
        return EvalItem(id=item_id, prompt=text, images=[image], expected=[str(answer) for answer in answers],
                        category=category)

    def score(self, item: EvalItem, reply: str, grounding: dict[str, Any] | None) -> tuple[float, Any]:
        return anls(reply, item.expected, ANLS_THRESHOLD), reply.strip()

    def units(self, scored: list[Scored]) -> list[Unit]:
        return item_units(scored)
