"""Training settings: the defaults, what the user asked (TrainConfig), what was decided (TrainSettings), the step plan.

The defaults were chosen by the sweep in docs/finetuning.md; `resolve_settings` fills what the user left out from
the interrupted run (when resuming), the defaults and the profile's [lora] table.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from assistant.errors import AssistantError
from assistant.hooktypes import TrainProgress

from .dataset import DataSelection

if TYPE_CHECKING:
    from assistant.profiles import Profile


DEFAULTS: dict[str, Any] = {
    "epochs": 0,
    "lr": 2e-3,
    "batch_size": 1,
    "grad_accum": 4,
    "grad_checkpointing": False,
    "include_vision": False,
    "include_connector": True,
    "four_bit": False,
    "seed": 0,
    "eval_split": 0.2,
    "val_data": None,
    "eval_every": 0,
    "patience": 5,
    "schedule": "linear",
    "checkpoint_every": 50,
    "warmup_ratio": 0.05,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    "method": "sft",
    "beta": 0.1,
}
"""epochs 0: from the data size (auto_epochs); eval_every 0: about EVALUATIONS evaluations per run."""
TARGET_SAMPLES = 1200
"""Without --epochs, enough epochs for about this many training examples seen (early stopping ends sooner)."""
MIN_EPOCHS, MAX_EPOCHS = 3, 30
EVALUATIONS = 10
"""Validations per run when --eval-every is not given."""
SCHEDULES = ("linear", "cosine")
METHODS = ("sft", "dpo", "sft-then-dpo")
"""sft: learn the replies; dpo: prefer chosen over rejected replies (pairs.py); sft-then-dpo: both, in turn."""
FROM_PROFILE = ("rank", "alpha", "dropout", "target_modules")
FREE_ON_RESUME = {"grad_checkpointing", "checkpoint_every"}
"""Settings that may change when resuming: they do not change the result."""


@dataclass
class TrainConfig:
    """What to train. None means: the default (or, with `resume`, the interrupted run's value)."""

    name: str
    profile: str | None = None
    selection: DataSelection = field(default_factory=DataSelection)
    epochs: int | None = None
    lr: float | None = None
    rank: int | None = None
    alpha: int | None = None
    dropout: float | None = None
    target_modules: list[str] | None = None
    batch_size: int | None = None
    grad_accum: int | None = None
    grad_checkpointing: bool | None = None
    include_vision: bool | None = None
    include_connector: bool | None = None
    """Put LoRA on the vision-language connector too."""
    four_bit: bool | None = None
    seed: int | None = None
    eval_split: float | None = None
    """Share of the chats held out for validation (0: none)."""
    val_data: str | None = None
    """A TRL/ShareGPT .jsonl file to validate on instead of a split of the training data."""
    eval_every: int | None = None
    """Optimizer steps between validations (0: about EVALUATIONS per run)."""
    patience: int | None = None
    """Stop once this many validations in a row did not improve (0: never stop early)."""
    schedule: str | None = None
    """Learning-rate decay after the warm-up: linear or cosine."""
    checkpoint_every: int | None = None
    warmup_ratio: float | None = None
    weight_decay: float | None = None
    max_grad_norm: float | None = None
    method: str | None = None
    """sft, dpo or sft-then-dpo (METHODS)."""
    beta: float | None = None
    """DPO's beta: how far the adapter may move from the reference."""
    resume: bool = False
    """Continue from the newest checkpoint of adapter `name`."""
    overwrite: bool = False
    """Replace an existing adapter of the same name."""
    stop_after_steps: int | None = None
    """Stop (with a checkpoint) once this many optimizer steps are done: train in pieces."""


@dataclass
class TrainSettings:
    """A TrainConfig with every value decided; recorded in checkpoints and the adapter metadata."""

    name: str
    profile: str
    selection: DataSelection
    epochs: int
    lr: float
    rank: int
    alpha: int
    dropout: float
    target_modules: list[str]
    batch_size: int
    grad_accum: int
    grad_checkpointing: bool
    include_vision: bool
    include_connector: bool
    four_bit: bool
    seed: int
    eval_split: float
    val_data: str | None
    eval_every: int
    patience: int
    schedule: str
    checkpoint_every: int
    warmup_ratio: float
    weight_decay: float
    max_grad_norm: float
    method: str = "sft"
    beta: float = 0.1

    def hyperparameters(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("name", "profile", "selection"):
            data.pop(key)
        return data


ProgressFn = Callable[[TrainProgress], None]


# --- settings ------------------------------------------------------------------------------------------------------


def resolve_settings(config: TrainConfig, profile: "Profile", saved: dict[str, Any] | None = None) -> TrainSettings:
    """Fill unset values from the interrupted run (`saved`), else the defaults and the profile's [lora] table.

    When resuming, a value that changes the result and differs from the interrupted run is an error.
    """
    lora = profile.lora
    defaults = dict(DEFAULTS, rank=lora.rank, alpha=lora.alpha, dropout=lora.dropout,
                    target_modules=list(lora.target_modules))
    previous = dict((saved or {}).get("hyperparameters") or {})
    values: dict[str, Any] = {}
    for key, default in defaults.items():
        given = getattr(config, key)
        if key in previous:
            if given is not None and given != previous[key] and key not in FREE_ON_RESUME:
                option = "--" + key.replace("_", "-")
                raise AssistantError(
                    f"{option} {given} differs from the interrupted run ({previous[key]}); resume with the same "
                    "settings, or start over without --resume (add --overwrite)"
                )
            values[key] = given if given is not None else previous[key]
        else:
            values[key] = given if given is not None else default
    selection = config.selection
    if saved is not None:
        saved_selection = DataSelection.from_dict(saved.get("selection") or {})
        if selection == DataSelection():
            selection = saved_selection
        elif selection != saved_selection:
            raise AssistantError(
                f"the data ({selection.describe()}) differs from the interrupted run ({saved_selection.describe()}); "
                "resume with the same data options, or start over without --resume"
            )
    settings = TrainSettings(name=config.name, profile=profile.name, selection=selection, **values)
    _validate(settings)
    return settings


def _validate(settings: TrainSettings) -> None:
    checks = [
        (settings.epochs >= 0, "--epochs must be at least 1 (or 0: from the data size)"),
        (settings.lr > 0, "--lr must be positive (e.g. 2e-4)"),
        (settings.rank >= 1, "--rank must be at least 1"),
        (settings.alpha >= 1, "the LoRA alpha must be at least 1"),
        (0 <= settings.dropout < 1, "the LoRA dropout must be at least 0 and below 1"),
        (settings.batch_size >= 1, "--batch-size must be at least 1"),
        (settings.grad_accum >= 1, "--grad-accum must be at least 1"),
        (settings.checkpoint_every >= 1, "--checkpoint-every must be at least 1"),
        (0 <= settings.eval_split < 1, "--val-split must be at least 0 and below 1 (e.g. 0.2)"),
        (settings.eval_every >= 0, "--eval-every must be at least 1 (or 0: about ten validations a run)"),
        (settings.patience >= 0, "--patience must be at least 0 (0: never stop early)"),
        (settings.schedule in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}"),
        (0 <= settings.warmup_ratio < 1, "the warmup ratio must be at least 0 and below 1"),
        (bool(settings.target_modules), "the profile's [lora] target_modules is empty; name the layers to adapt"),
        (settings.method in METHODS, f"--method must be one of {', '.join(METHODS)}"),
        (settings.beta > 0, "--beta must be positive (e.g. 0.1)"),
    ]
    for ok, message in checks:
        if not ok:
            raise AssistantError(message)


# --- the step plan -------------------------------------------------------------------------------------------------


def plan_steps(count: int, batch_size: int, grad_accum: int, epochs: int, seed: int) -> list[tuple[int, list[list[int]]]]:
    """Every optimizer step as (epoch, micro-batches of example indices); each epoch in its own seeded order."""
    steps: list[tuple[int, list[list[int]]]] = []
    for epoch in range(epochs):
        order = list(range(count))
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
        batches = [order[start : start + batch_size] for start in range(0, count, batch_size)]
        for start in range(0, len(batches), grad_accum):
            steps.append((epoch, batches[start : start + grad_accum]))
    return steps


def learning_rate(step: int, total: int, peak: float, warmup: int, schedule: str = "linear") -> float:
    """Linear warm-up over `warmup` steps, then linear or cosine decay; never zero on a step that runs."""
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    remaining = max(1, total - warmup)
    if schedule == "cosine":
        return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / remaining))
    return peak * max(0.0, (total - step) / remaining)


def auto_epochs(train_count: int) -> int:
    """Epochs when none are given: about TARGET_SAMPLES examples seen, between MIN_EPOCHS and MAX_EPOCHS."""
    return max(MIN_EPOCHS, min(MAX_EPOCHS, math.ceil(TARGET_SAMPLES / max(1, train_count))))


def auto_eval_every(total: int) -> int:
    return max(1, math.ceil(total / EVALUATIONS))
