"""Asking the model every eval item, through the same batch engine as `assistant batch`: groups of
`--batch-size` items go through one `generate` call (transformers backend), greedy, with the item's images.

With `--compare base` the items are asked twice on one loaded model: adapter off, then on (peft switches the
adapter without reloading the base weights).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..batch import Answer, BatchItem, BatchSummary, Prepared
from ..batch_model import ModelAnswerer
from ..conversation import ImagePart, Message, TextPart
from ..hooktypes import GenerationRequest
from .base import EvalFormat, Scored, Unit
from .items import EvalItem

if TYPE_CHECKING:
    from ..api import Assistant, GenerationOptions


@dataclass
class EvalPrepared(Prepared):
    """A batch `Prepared` carrying the eval item and every one of its images (MMMU has up to seven)."""

    eval_item: EvalItem | None = None
    keys: list[str] = field(default_factory=list)


def image_hash(image: Any) -> str:
    return hashlib.sha256(f"{image.width}x{image.height}{image.mode}".encode() + image.tobytes()).hexdigest()


def prepare(item: EvalItem, source: Path) -> EvalPrepared:
    keys = [image_hash(image) for image in item.images]
    return EvalPrepared(
        item=BatchItem(input=item.id, path=source, question=item.prompt),
        sha256=keys[0] if keys else "",
        image=item.images[0] if item.images else None,
        eval_item=item,
        keys=keys,
    )


class EvalAnswerer(ModelAnswerer):
    """`ModelAnswerer` whose one-turn request holds all of an item's images (or none), in order."""

    def request(self, prepared: Prepared) -> GenerationRequest:
        assert isinstance(prepared, EvalPrepared) and prepared.eval_item is not None
        images = prepared.eval_item.images
        by_key = dict(zip(prepared.keys, images))
        parts: list[Any] = [
            ImagePart(sha256=key, width=image.width, height=image.height, source=f"{prepared.item.input} image {n}")
            for n, (key, image) in enumerate(zip(prepared.keys, images), start=1)
        ]
        message = Message(role="user", parts=[*parts, TextPart(prepared.item.question)])
        profile = self.assistant.profile
        return GenerationRequest(
            messages=[message],
            open_image=lambda part: by_key[part.sha256],
            settings=self.options.settings(profile),
            max_new_tokens=self.options.max_new_tokens,
            system_prompt=self.options.system_prompt(profile),
            started_at=time.perf_counter(),
        )


@dataclass
class SideResult:
    """One model's run over the items: `label` is "base" or the adapter's name."""

    label: str
    adapter: str | None
    scored: list[Scored]
    units: list[Unit]
    seconds: float = 0.0


def score_answer(fmt: EvalFormat, item: EvalItem, answer: Answer) -> Scored:
    if answer.error is not None:
        return Scored(item, error=answer.error)
    value, parsed = fmt.score(item, answer.text, answer.grounding)
    return Scored(item, reply=answer.text, score=value, parsed=parsed)


def run_side(
    bot: "Assistant",
    fmt: EvalFormat,
    items: Sequence[EvalItem],
    source: Path,
    options: "GenerationOptions",
    batch_size: int,
    label: str,
    adapter: str | None,
    summary: BatchSummary,
    progress: Callable[[BatchSummary], None] | None = None,
) -> SideResult:
    """Ask every readable item (error items are scored as errors without asking), in groups of `batch_size`."""
    started = time.perf_counter()
    bot.set_adapter(adapter)
    answerer = EvalAnswerer(bot, options, ground=fmt.ground)
    scored: dict[int, Scored] = {}
    pending: list[tuple[int, EvalPrepared]] = []

    def flush() -> None:
        answers = answerer([prepared for _, prepared in pending])
        for (position, prepared), answer in zip(pending, answers):
            assert prepared.eval_item is not None
            scored[position] = score_answer(fmt, prepared.eval_item, answer)
            if answer.error is None:
                summary.ok += 1
            else:
                summary.errors += 1
        pending.clear()
        _report()

    def _report() -> None:
        summary.seconds = time.perf_counter() - summary_started
        if progress is not None:
            progress(summary)

    summary_started = time.perf_counter() - summary.seconds
    for position, item in enumerate(items):
        if item.error is not None:
            scored[position] = Scored(item, error=item.error)
            summary.errors += 1
            _report()
            continue
        pending.append((position, prepare(item, source)))
        if len(pending) >= batch_size:
            flush()
    if pending:
        flush()
    ordered = [scored[position] for position in range(len(items))]
    return SideResult(label, adapter, ordered, fmt.units(ordered), time.perf_counter() - started)
