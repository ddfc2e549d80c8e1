"""Our own format: JSONL lines `{"image": PATH, "question": TEXT, "answer": TEXT or [TEXT, ...]}` (image paths
relative to the file), scored by exact match, contains or ANLS (`--metric`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import AssistantError
from .base import LoadOptions, Scored, Unit, item_units
from .items import BadLine, EvalItem, bad_item, load_image_ref, read_records
from .metrics import TEXT_METRICS


class JsonlFormat:
    name = "jsonl"
    binary = True
    max_new_tokens = 32
    ground = False

    def __init__(self) -> None:
        self.metric = "exact"

    def load(self, path: Path, options: LoadOptions) -> list[EvalItem]:
        if options.metric not in TEXT_METRICS:
            raise AssistantError(f"unknown --metric {options.metric!r}; use one of {', '.join(TEXT_METRICS)}")
        self.metric = options.metric
        self.binary = options.metric != "anls"
        rows = read_records(path, '{"image", "question", "answer"} line')
        return [self._item(row, number, path.parent) for number, row in enumerate(rows, start=1)]

    def _item(self, row: Any, number: int, base: Path) -> EvalItem:
        if isinstance(row, BadLine):
            return bad_item(f"line-{row.number}", row.message)
        item_id = f"line-{number}"
        if not isinstance(row, dict):
            return bad_item(item_id, f"line {number} is not an object")
        question, answer = row.get("question"), row.get("answer")
        if not isinstance(question, str) or not question.strip():
            return bad_item(item_id, f'line {number} has no "question"')
        if isinstance(answer, str):
            answer = [answer]
        if not isinstance(answer, list) or not answer or not all(isinstance(value, str) for value in answer):
            return bad_item(item_id, f'line {number}: "answer" must be text or a list of texts')
        images = []
        if row.get("image") not in (None, ""):
            try:
                images.append(load_image_ref(row["image"], base, f"line {number} image"))
            except AssistantError as error:
                return bad_item(item_id, str(error))
        return EvalItem(id=str(row.get("id") or item_id), prompt=question.strip(), images=images, expected=answer,
                        category=str(row.get("category") or ""))

    def score(self, item: EvalItem, reply: str, grounding: dict[str, Any] | None) -> tuple[float, Any]:
        return TEXT_METRICS[self.metric](reply, item.expected), reply.strip()

    def units(self, scored: list[Scored]) -> list[Unit]:
        return item_units(scored)
