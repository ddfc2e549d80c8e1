"""Validation while training: loss and short-answer accuracy on held-out chats, and early stopping on them.

Both come from one teacher-forced forward pass over the validation chats (the same inputs and labels training
uses). A short reply (a word, a number, a few words: what a label-like personal task produces) counts as correct
when the model's top token is the reply's token at every position, end-of-turn marker included: exactly the
condition for greedy decoding to produce that reply and stop, i.e. what `assistant ask --adapter` would answer,
without the cost of generating. Chats whose learned replies are not all short count in the loss only. The best
evaluation is the most accurate one, ties broken by the lower loss; without short replies it is the lowest loss. Early stopping counts evaluations without progress:
neither a higher accuracy nor a loss lower by more than PROGRESS (1%) than the best one, so a run whose accuracy
is already perfect does not go on for loss gains in the third decimal.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .dataset import Example

if TYPE_CHECKING:
    from PIL.Image import Image

    from assistant.conversation import ImagePart
    from assistant.engine.loading import LoadedModel

    from .collate import Encoder

SHORT_WORDS = 8
"""Replies of at most this many words are scored by exact match (longer ones by loss only)."""
MIN_DELTA = 1e-4
"""A loss must drop by more than this to make a new best (at equal accuracy)."""
PROGRESS = 0.01
"""Early stopping: an evaluation is progress when accuracy rises or the loss drops by more than this share."""


def normalise(text: str) -> str:
    """Whitespace-insensitive form used for exact match (case and punctuation still count)."""
    return " ".join(text.split())


def is_short(text: str) -> bool:
    return 0 < len(text.split()) <= SHORT_WORDS


@dataclass
class Validation:
    """One evaluation on the validation chats."""

    step: int
    loss: float | None
    correct: int = 0
    scored: int = 0
    """Chats with only short learned replies (0: accuracy is not measured)."""
    margin: float | None = None
    """DPO only: the mean reward margin on the held-out pairs; then loss is the DPO loss, and correct/scored
    count the pairs whose chosen reply gets the higher reward (reward accuracy)."""

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.scored if self.scored else None

    def better_than(self, other: "Validation | None") -> bool:
        if other is None:
            return True
        if self.accuracy is not None and other.accuracy is not None and self.accuracy != other.accuracy:
            return self.accuracy > other.accuracy
        if self.loss is None or other.loss is None:
            return False
        return self.loss < other.loss - MIN_DELTA

    def describe(self) -> str:
        parts = [f"validation at step {self.step}: loss {self.loss:.4f}" if self.loss is not None
                 else f"validation at step {self.step}"]
        if self.margin is not None:
            parts.append(f"reward accuracy {self.correct}/{self.scored} ({self.accuracy or 0:.0%})")
            parts.append(f"margin {self.margin:+.3f}")
        elif self.scored:
            parts.append(f"accuracy {self.correct}/{self.scored} ({self.correct / self.scored:.0%})")
        return " · ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["accuracy"] = self.accuracy
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Validation":
        return cls(int(data["step"]), data.get("loss"), int(data.get("correct", 0)), int(data.get("scored", 0)),
                   data.get("margin"))


@dataclass
class EarlyStopping:
    """Tracks the best evaluation; `exhausted` once `patience` evaluations in a row made no progress (0: never)."""

    patience: int
    best: Validation | None = None
    stale: int = 0
    """Evaluations in a row without progress."""

    def update(self, validation: Validation) -> bool:
        """Record an evaluation; True when it is the new best."""
        best = self.best
        progress = best is None or _progress(validation, best)
        self.stale = 0 if progress else self.stale + 1
        if validation.better_than(best):
            self.best = validation
            return True
        return False

    @property
    def exhausted(self) -> bool:
        return self.patience > 0 and self.stale >= self.patience


def _progress(new: Validation, best: Validation) -> bool:
    if new.accuracy is not None and best.accuracy is not None and new.accuracy != best.accuracy:
        return new.accuracy > best.accuracy
    if new.loss is None or best.loss is None:
        return False
    return new.loss < best.loss * (1 - PROGRESS) if best.loss > 0 else False


def scored(example: Example) -> bool:
    """Whether an example's accuracy is measured: every learned reply is short."""
    return all(is_short(example.messages[index].training_text) for index in example.targets)


def greedy_answers(
    loaded: "LoadedModel", open_image: Callable[["ImagePart"], "Image"], turns: Sequence[tuple[Example, int]],
    system_prompt: str,
) -> list[str]:
    """The model's greedy answer to each (example, reply index), from the conversation before that reply."""
    import torch

    from assistant.engine.inputs import build_inputs

    tokenizer = loaded.processor.tokenizer
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answers = []
    was_training = loaded.model.training
    loaded.model.eval()
    try:
        for example, index in turns:
            inputs = build_inputs(loaded, example.messages[:index], open_image, system_prompt)
            expected = example.messages[index].training_text
            # Enough for the expected answer and its end marker: a longer answer cannot match anyway.
            budget = len(tokenizer(expected, add_special_tokens=False)["input_ids"]) + 4
            with torch.inference_mode():
                output = loaded.model.generate(
                    **inputs.tensors, max_new_tokens=budget, do_sample=False, pad_token_id=pad,
                    temperature=None, top_p=None, top_k=None,
                )
            new_tokens = output[0, inputs.prompt_tokens :]
            answers.append(tokenizer.decode(new_tokens, skip_special_tokens=True).strip())
    finally:
        loaded.model.train(was_training)
    return answers


def validate(
    step: int, model: Any, loaded: "LoadedModel", encoder: "Encoder", examples: Sequence[Example], batch_size: int,
) -> Validation:
    """Mean loss per learned token over `examples`, and how many short-reply chats the model gets exactly right."""
    import torch

    from .collate import IGNORE
    from .modeling import autocast

    was_training = model.training
    model.eval()
    total, tokens, correct, counted = 0.0, 0, 0, 0
    try:
        with torch.no_grad():
            for start in range(0, len(examples), batch_size):
                chunk = examples[start : start + batch_size]
                inputs = dict(encoder.encode(chunk).to(loaded.device))
                labels = inputs.pop("labels")
                with autocast(loaded):
                    logits = model(**inputs, use_cache=False).logits[:, :-1, :].float()
                targets = labels[:, 1:].to(logits.device)
                total += float(torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE, reduction="sum"
                ))
                learned = targets != IGNORE
                tokens += int(learned.sum())
                right = (logits.argmax(-1) == targets) | ~learned
                for row, example in enumerate(chunk):
                    if scored(example) and bool(learned[row].any()):
                        counted += 1
                        correct += bool(right[row].all())
    finally:
        model.train(was_training)
    return Validation(step, total / tokens if tokens else None, correct, counted)
