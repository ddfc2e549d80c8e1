"""LoRA training from saved chats: settings, the step plan, the loop with checkpoints, resume, validation, saving.

`train_adapter(config, progress=...)` is the one entry point; the CLI, the TUI's /train and third-party code call
it. It is deterministic given the seed: the data order of every epoch comes from the seed, LoRA's initial weights
too, and a checkpoint keeps the RNG state, so `resume=True` ends with the same adapter as an uninterrupted run.

By default a share of the chats is held out for validation: the loop evaluates on them every few steps (loss,
and exact-match accuracy on short replies), keeps the best weights, stops early when `patience` evaluations in a
row did not improve, and saves the best weights, not the last. Without `epochs` the step budget follows the data
size. The defaults were chosen by the sweep in docs/finetuning.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from assistant.adapters import (
    BaseModelRef,
    adapter_dir,
    new_meta,
    read_meta,
    validate_adapter_name,
    write_meta,
)
from assistant.errors import AssistantError
from assistant.hooktypes import TrainProgress, TrainResult  # public: third-party trainers use them too

from .checkpoint import latest_checkpoint, load_checkpoint, read_state, remove_checkpoints, rng_tensors, save_checkpoint
from .dataset import (
    NOTHING_LEARNED,
    TOO_LONG,
    DataSelection,
    DatasetStats,
    Example,
    build_dataset,
    example_images,
    split_examples,
)

if TYPE_CHECKING:
    from assistant.profiles import Profile
    from assistant.store import Store


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


# --- the run -------------------------------------------------------------------------------------------------------


@dataclass
class _Run:
    """What a run knows once the data and the model are ready."""

    settings: TrainSettings
    path: Path
    profile: "Profile"
    train: list[Example]
    held_out: list[Example]
    learned_tokens: list[int]
    stats: DatasetStats
    fingerprint: str
    report: ProgressFn


def _prepare_folder(config: TrainConfig, path: Path) -> dict[str, Any] | None:
    """Check the adapter folder for this run; returns the interrupted run's state when resuming."""
    if config.resume:
        checkpoint = latest_checkpoint(path)
        if checkpoint is None:
            meta = read_meta(path)
            if meta and meta.get("status") == "complete":
                raise AssistantError(f"adapter {config.name!r} is already complete; there is nothing to resume")
            raise AssistantError(
                f"nothing to resume: adapter {config.name!r} has no checkpoint in {path}; start without --resume"
            )
        return read_state(checkpoint)
    if path.exists() and any(path.iterdir()) and not config.overwrite:
        raise AssistantError(
            f"adapter {config.name!r} already exists; pick another --name, pass --overwrite to replace it, "
            "or --resume to continue an interrupted run"
        )
    return None  # an adapter being overwritten is removed once the new run's data and model are ready


def train_adapter(
    config: TrainConfig,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    store: "Store | None" = None,
    plugins: Any = None,
) -> TrainResult:
    """Train (or resume) LoRA adapter `config.name` and save it in peft format with its metadata.

    `progress` receives TrainProgress reports (any thread may run this; the callback runs on that thread).
    `should_stop()` is polled before each step: when it returns True a checkpoint is saved and the result's
    status is "stopped". Ctrl+C does the same and raises AssistantError saying how to resume.
    """
    from assistant.profiles import load_profile

    report = progress or (lambda event: None)
    validate_adapter_name(config.name)
    path = adapter_dir(config.name)
    saved = _prepare_folder(config, path)
    saved_profile = ((saved or {}).get("settings") or {}).get("profile")
    profile = load_profile(config.profile or saved_profile)
    if saved_profile and profile.name != saved_profile:
        raise AssistantError(
            f"the interrupted run trains profile {saved_profile}, not {profile.name}; resume with "
            f"--profile {saved_profile} (or leave --profile out)"
        )
    settings = resolve_settings(config, profile, (saved or {}).get("settings"))
    if settings.four_bit:
        from .modeling import require_cuda_for_4bit

        require_cuda_for_4bit()

    report(TrainProgress("data", f"collecting examples from {settings.selection.describe()}"))
    own_store = store is None and not settings.selection.data_file
    if own_store:
        from assistant.store import Store

        store = Store.open_default()
    if plugins is None:
        from assistant.plugins import get_plugin_manager

        plugins = get_plugin_manager()
    try:
        if settings.method != "sft":
            from .dpo import train_with_preferences

            return train_with_preferences(settings, path, profile, store, plugins, saved, report, should_stop,
                                          config.stop_after_steps)
        dataset = build_dataset(store, settings.selection, plugins)  # type: ignore[arg-type]
        fingerprint = dataset.fingerprint(profile.chat.system_prompt)
        validation_set = None
        if settings.val_data:
            validation_set = build_dataset(store, DataSelection(data_file=settings.val_data))  # type: ignore[arg-type]
            dataset.images.include(validation_set.images)
            fingerprint = hashlib.sha256(
                (fingerprint + validation_set.fingerprint(profile.chat.system_prompt)).encode()
            ).hexdigest()
        if saved is not None and saved.get("fingerprint") != fingerprint:
            raise AssistantError(
                "the training data changed since the interrupted run (chats added, edited, rated or corrected); "
                "start over without --resume (add --overwrite)"
            )
        if validation_set is not None:
            train, held_out = list(dataset.examples), list(validation_set.examples)
        else:
            train, held_out = split_examples(dataset.examples, settings.eval_split, settings.seed)
        return _train(settings, path, profile, dataset, train, held_out, fingerprint, saved, report, should_stop,
                      config.stop_after_steps)
    finally:
        if own_store and store is not None:
            store.close()


def _train(
    settings: TrainSettings,
    path: Path,
    profile: "Profile",
    dataset: Any,
    train: list[Example],
    held_out: list[Example],
    fingerprint: str,
    saved: dict[str, Any] | None,
    report: ProgressFn,
    should_stop: Callable[[], bool] | None,
    stop_after: int | None,
) -> TrainResult:
    from .collate import Encoder
    from .modeling import load_for_training, translate_out_of_memory

    resumable = saved is not None
    report(TrainProgress("loading", f"loading {profile.model_label}"))
    with translate_out_of_memory(settings.batch_size, settings.four_bit, resumable):
        loaded = load_for_training(profile, settings.four_bit, lambda message: report(TrainProgress("loading", message)))
    encoder = Encoder(loaded, dataset.images.open, profile.chat.system_prompt)
    stats: DatasetStats = dataset.stats
    train, learned = _measure(encoder, train, stats, loaded.context_limit)
    held_out, _ = _measure(encoder, held_out, stats, loaded.context_limit)
    if not train:
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(stats.skipped.items()))
        raise AssistantError(f"no usable training examples left ({reasons}); pick other chats or a bigger model context")
    kept = train + (held_out if not settings.val_data else [])  # a --val-data file is not training data
    stats.conversations = len(kept)
    stats.turns = sum(len(example.targets) for example in kept)
    stats.images = sum(len(example_images(example)) for example in kept)
    report(TrainProgress("data", stats.summary(), stats=stats))
    run = _Run(settings, path, profile, train, held_out, learned, stats, fingerprint, report)
    if saved is None:
        shutil.rmtree(path, ignore_errors=True)
        base = BaseModelRef.from_profile(profile, loaded.family)
        write_meta(path, new_meta(settings.name, base, hyperparameters=settings.hyperparameters(),
                                  data=_data_section(run), trainer="lora"))
    with translate_out_of_memory(settings.batch_size, settings.four_bit, True):
        model = _peft_model(loaded, settings)
        return _loop(run, loaded, encoder, model, saved, should_stop, stop_after)


def _measure(
    encoder: Any, examples: list[Example], stats: DatasetStats, limit: int
) -> tuple[list[Example], list[int]]:
    """Examples that fit the context, with their learned-token counts (tokens are added to `stats`)."""
    kept, learned = [], []
    for example in examples:
        tokens, targets = encoder.count(example)
        if tokens > limit:
            stats.skip(TOO_LONG)
            continue
        if targets == 0:
            stats.skip(NOTHING_LEARNED)
            continue
        skipped_turns = encoder.rendered(example).skipped_turns
        if skipped_turns:
            stats.exclude(NOTHING_LEARNED, skipped_turns)
        stats.tokens += tokens
        stats.target_tokens += targets
        kept.append(example)
        learned.append(targets)
    return kept, learned


def _peft_model(loaded: Any, settings: TrainSettings) -> Any:
    import torch
    from peft import LoraConfig, get_peft_model

    from .modeling import lora_targets

    model = loaded.model
    pattern, _ = lora_targets(model, settings.target_modules, settings.include_vision, settings.include_connector)
    if settings.four_bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=settings.grad_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    elif settings.grad_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    torch.manual_seed(settings.seed)  # LoRA's initial A matrices, and the dropout that follows
    lora = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=pattern,
        bias="none",
    )
    peft_model = get_peft_model(model, lora)
    peft_model.train()
    return peft_model


class Objective:
    """What one stage of training optimises: SFT here, DPO in dpo.py. `_loop` runs either."""

    stage = "sft"
    held_out_what = "held-out chats"
    count: int
    """Training items (examples, pairs) the step plan shuffles."""
    held_out: bool
    """Whether there is anything to validate on."""

    def step(self, model: Any, batches: list[list[int]]) -> float:
        """Forward and backward for one optimizer step's micro-batches; returns the step's loss."""
        raise NotImplementedError

    def validate(self, step: int, model: Any) -> Any:
        """A `Validation` of the model as it is now."""
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """What a checkpoint must keep for this stage to resume (JSON)."""
        return {}

    def final_metrics(self, first: Any, best: Any) -> dict[str, Any]:
        """Extra metrics for the adapter's metadata from the first and the kept validation."""
        return {}


class SFTObjective(Objective):
    """Cross-entropy on the learned reply tokens, summed and divided by the learned tokens of the whole step."""

    def __init__(self, run: _Run, loaded: Any, encoder: Any) -> None:
        self.run, self.loaded, self.encoder = run, loaded, encoder
        self.count = len(run.train)
        self.held_out = bool(run.held_out)

    def step(self, model: Any, batches: list[list[int]]) -> float:
        from .modeling import batch_loss

        run = self.run
        step_tokens = sum(run.learned_tokens[index] for batch in batches for index in batch)
        loss_sum = 0.0
        for batch_indices in batches:
            batch = self.encoder.encode([run.train[index] for index in batch_indices]).to(self.loaded.device)
            loss, _ = batch_loss(model, batch, self.loaded)
            (loss / max(1, step_tokens)).backward()
            loss_sum += float(loss.detach())
        return loss_sum / max(1, step_tokens)

    def validate(self, step: int, model: Any) -> Any:
        from .validation import validate

        return validate(step, model, self.loaded, self.encoder, self.run.held_out, self.run.settings.batch_size)


def _loop(
    run: _Run,
    loaded: Any,
    encoder: Any,
    model: Any,
    saved: dict[str, Any] | None,
    should_stop: Callable[[], bool] | None,
    stop_after: int | None,
    objective: Objective | None = None,
    step_offset: int = 0,
    on_done: Callable[..., TrainResult] | None = None,
) -> TrainResult:
    """The training loop of one stage: steps, validation, best weights, early stopping, checkpoints, resume.

    `objective` is what is optimised (default: SFT on `run.train`). A later stage of a multi-stage run
    (sft-then-dpo) numbers its checkpoints after `step_offset`, so the newest checkpoint is always the one to
    resume. `on_done(run, model, loaded, done, total, history, metrics, validations, duration, samples)` replaces
    saving the adapter (`_finish`), for a stage that is followed by another.
    """
    import torch
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    from .checkpoint import load_best, restore_rng
    from .validation import EarlyStopping, Validation

    settings = run.settings
    objective = objective or SFTObjective(run, loaded, encoder)
    parameters = [parameter for _, parameter in model.named_parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=settings.weight_decay)
    epochs = settings.epochs or auto_epochs(objective.count)
    plan = plan_steps(objective.count, settings.batch_size, settings.grad_accum, epochs, settings.seed)
    total = len(plan)
    warmup = math.ceil(total * settings.warmup_ratio) if settings.warmup_ratio else 0
    eval_every = settings.eval_every or auto_eval_every(total)
    history: list[float] = []
    metrics: dict[str, Any] = {"epochs": epochs, "planned_steps": total, "eval_every": eval_every}
    validations: list[Validation] = []
    stopper = EarlyStopping(settings.patience)
    best_state: dict[str, Any] | None = None
    start = 0

    def snapshot() -> dict[str, Any]:
        return {key: value.detach().clone() for key, value in get_peft_model_state_dict(model).items()}

    def evaluate(step: int) -> Validation:
        nonlocal best_state
        what = ("the base model" if objective.stage == "sft" else "the start") if step == 0 else f"step {step}"
        run.report(TrainProgress("eval", f"validating {what} on {len(run.held_out)} {objective.held_out_what}",
                                 step=step, total_steps=total, epochs=epochs))
        result = objective.validate(step, model)
        validations.append(result)
        improved = step > 0 and stopper.update(result)  # the untrained base is a reference, never "best"
        if improved:
            best_state = snapshot()
        note = " · best so far" if improved else f" · best: step {stopper.best.step}" if stopper.best else ""
        run.report(TrainProgress("eval", result.describe() + note, step=step, total_steps=total, epochs=epochs,
                                 eval_loss=result.loss, eval_accuracy=result.accuracy))
        return result

    if saved is not None:
        checkpoint = latest_checkpoint(run.path)
        assert checkpoint is not None
        adapter_state, optimizer_state, rng, state = load_checkpoint(checkpoint, loaded.device)
        set_peft_model_state_dict(model, adapter_state)
        optimizer.load_state_dict(optimizer_state)
        restore_rng(rng)
        start = int(state["step"]) - step_offset
        history = list(state.get("history") or [])
        metrics.update(state.get("metrics") or {})
        validations = [Validation.from_dict(item) for item in state.get("validations") or []]
        best_step = state.get("best_step")
        stopper.best = next((item for item in validations if item.step == best_step), None)
        stopper.stale = int(state.get("stale_evaluations") or 0)
        best_state = load_best(checkpoint, loaded.device)
        run.report(TrainProgress("training", f"resuming at step {start}/{total}", step=start, total_steps=total,
                                 epochs=epochs))
        if objective.held_out and start % eval_every == 0 and not any(item.step == start for item in validations):
            evaluate(start)  # interrupted during this validation
    elif objective.held_out:
        evaluate(0)

    def checkpoint_state(step: int) -> dict[str, Any]:
        return {
            "step": step_offset + step,
            "stage": objective.stage,
            "stage_state": objective.state(),
            "total_steps": total,
            "history": history,
            "metrics": metrics,
            "validations": [item.to_dict() for item in validations],
            "best_step": stopper.best.step if stopper.best else None,
            "stale_evaluations": stopper.stale,
            "fingerprint": run.fingerprint,
            "settings": {
                "profile": settings.profile,
                "selection": settings.selection.to_dict(),
                "hyperparameters": settings.hyperparameters(),
            },
        }

    def save(step: int, rng: dict[str, Any]) -> None:
        run.report(TrainProgress("saving", f"checkpoint at step {step}", step=step, total_steps=total))
        save_checkpoint(run.path, step_offset + step, get_peft_model_state_dict(model), optimizer, rng,
                        checkpoint_state(step), best_state)

    started = time.perf_counter()
    samples = 0
    done = start
    updating = False
    rng_at_done = rng_tensors()
    stopped_early = False
    try:
        for step in range(start, total):
            if should_stop is not None and should_stop():
                save(done, rng_at_done)
                return _stopped(run, done, total, metrics)
            epoch, batches = plan[step]
            rate = learning_rate(step, total, settings.lr, warmup, settings.schedule)
            for group in optimizer.param_groups:
                group["lr"] = rate
            step_loss = objective.step(model, batches)
            samples += sum(len(batch) for batch in batches)
            updating = True
            if settings.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(parameters, settings.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            done = step + 1
            history.append(round(step_loss, 6))
            rng_at_done = rng_tensors()
            updating = False
            if objective.held_out and (done % eval_every == 0 or done == total):
                evaluate(done)
                stopped_early = stopper.exhausted and done < total
            elapsed = time.perf_counter() - started
            speed = samples / elapsed if elapsed > 0 else None
            eta = elapsed / (done - start) * (total - done) if done > start else None
            if done % settings.checkpoint_every == 0 and done < total and not stopped_early:
                save(done, rng_at_done)
            latest = validations[-1] if validations else None
            run.report(TrainProgress(
                "training", step=done, total_steps=total, epoch=epoch + 1, epochs=epochs,
                loss=history[-1], lr=rate, samples_per_s=speed, eta_s=eta,
                eval_loss=latest.loss if latest else None, eval_accuracy=latest.accuracy if latest else None,
            ))
            if stopped_early:
                assert stopper.best is not None
                run.report(TrainProgress(
                    "eval", f"stopping early at step {done}/{total}: no progress in {settings.patience} "
                    f"validations (best at step {stopper.best.step})", step=done, total_steps=total,
                ))
                break
            if stop_after is not None and done >= stop_after and done < total:
                save(done, rng_at_done)
                return _stopped(run, done, total, metrics)
    except KeyboardInterrupt:
        if not updating:  # the state after `done` steps is intact: keep it
            save(done, rng_at_done)
            raise AssistantError(
                f"training interrupted at step {done}/{total}; a checkpoint was saved: continue with "
                f"`assistant train --name {settings.name} --resume`"
            ) from None
        raise AssistantError(
            f"training interrupted at step {done}/{total}; continue from the last checkpoint with "
            f"`assistant train --name {settings.name} --resume`"
        ) from None
    duration = time.perf_counter() - started
    if best_state is not None:
        set_peft_model_state_dict(model, best_state)
    first = validations[0] if validations and validations[0].step == 0 else None
    best = stopper.best
    metrics.update(
        eval_loss_before=first.loss if first else None,
        val_accuracy_before=first.accuracy if first else None,
        eval_loss=best.loss if best else None,
        val_accuracy=best.accuracy if best else None,
        best_step=best.step if best else None,
        stopped_early=stopped_early,
        **objective.final_metrics(first, best),
    )
    finish = on_done or _finish
    return finish(run, model, loaded, done, total, history, metrics, validations, duration, samples)


def _stopped(run: _Run, step: int, total: int, metrics: dict[str, Any]) -> TrainResult:
    message = (
        f"stopped at step {step}/{total}; continue with `assistant train --name {run.settings.name} --resume`"
    )
    run.report(TrainProgress("done", message, step=step, total_steps=total))
    return TrainResult(run.settings.name, run.path, "stopped", step, total, dict(metrics), run.stats, message)


def _data_section(run: _Run) -> dict[str, Any]:
    stats = run.stats
    held = list(dict.fromkeys(example.conversation_id for example in run.held_out
                              if example.conversation_id is not None))
    validation: dict[str, Any] = {"chats": held, "sources": [example.source for example in run.held_out],
                                  "conversations": len(run.held_out),
                                  "turns": sum(len(example.targets) for example in run.held_out)}
    if run.settings.val_data:
        validation["data_file"] = run.settings.val_data
    else:
        validation["split"] = run.settings.eval_split
    return {
        "fingerprint": run.fingerprint,
        "selection": run.settings.selection.to_dict(),
        "conversations": len(run.train),
        "turns": sum(len(example.targets) for example in run.train),
        "images": sum(len(example_images(example)) for example in run.train),
        "tokens": stats.tokens,
        "learned_tokens": stats.target_tokens,
        "skipped": dict(stats.skipped),
        "turns_excluded": dict(stats.turns_excluded),
        "held_out": validation,
    }


def _finish(
    run: _Run, model: Any, loaded: Any, done: int, total: int, history: list[float], metrics: dict[str, Any],
    validations: list[Any], duration: float, samples: int,
) -> TrainResult:
    import peft
    import torch
    import transformers

    settings = run.settings
    run.report(TrainProgress("saving", f"saving adapter {settings.name}", step=done, total_steps=total))
    model.save_pretrained(str(run.path), safe_serialization=True)
    per_epoch = max(1, total // max(1, int(metrics.get("epochs") or 1)))
    last_epoch = history[-per_epoch:] if history else []
    metrics.update(
        steps=done,
        train_loss_first=history[0] if history else None,
        train_loss_last_epoch=sum(last_epoch) / len(last_epoch) if last_epoch else None,
        duration_s=round(duration, 3),
        samples_per_s=round(samples / duration, 3) if duration > 0 else None,
        train_examples=len(run.train),
        eval_examples=len(run.held_out),
    )
    meta = read_meta(run.path) or new_meta(settings.name, BaseModelRef.from_profile(run.profile, loaded.family))
    meta.update(
        status="complete",
        completed_at=time.time(),
        hyperparameters=settings.hyperparameters(),
        data=_data_section(run),
        metrics=metrics,
        history=history,
        validations=[item.to_dict() for item in validations],
        trainer="lora",
        versions={"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
    )
    meta["base"]["family"] = loaded.family
    write_meta(run.path, meta)
    remove_checkpoints(run.path)
    kept = f" (best validation: step {metrics['best_step']})" if metrics.get("best_step") is not None else ""
    message = f"adapter {settings.name} saved in {run.path}{kept}"
    run.report(TrainProgress("done", message, step=done, total_steps=total, loss=history[-1] if history else None,
                             eval_loss=metrics.get("eval_loss"), eval_accuracy=metrics.get("val_accuracy")))
    return TrainResult(settings.name, run.path, "complete", done, total, metrics, run.stats, message)
