"""LoRA training from saved chats: settings, the step plan, the loop with checkpoints, resume, eval and saving.

`train_adapter(config, progress=...)` is the one entry point; the CLI, the TUI's /train and third-party code call
it. It is deterministic given the seed: the data order of every epoch comes from the seed, LoRA's initial weights
too, and a checkpoint keeps the RNG state, so `resume=True` ends with the same adapter as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
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
    "epochs": 3,
    "lr": 2e-4,
    "batch_size": 1,
    "grad_accum": 4,
    "grad_checkpointing": False,
    "include_vision": False,
    "four_bit": False,
    "seed": 0,
    "eval_split": 0.1,
    "checkpoint_every": 50,
    "warmup_ratio": 0.05,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
}
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
    four_bit: bool | None = None
    seed: int | None = None
    eval_split: float | None = None
    checkpoint_every: int | None = None
    warmup_ratio: float | None = None
    weight_decay: float | None = None
    max_grad_norm: float | None = None
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
    four_bit: bool
    seed: int
    eval_split: float
    checkpoint_every: int
    warmup_ratio: float
    weight_decay: float
    max_grad_norm: float

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
        (settings.epochs >= 1, "--epochs must be at least 1"),
        (settings.lr > 0, "--lr must be positive (e.g. 2e-4)"),
        (settings.rank >= 1, "--rank must be at least 1"),
        (settings.alpha >= 1, "the LoRA alpha must be at least 1"),
        (0 <= settings.dropout < 1, "the LoRA dropout must be at least 0 and below 1"),
        (settings.batch_size >= 1, "--batch-size must be at least 1"),
        (settings.grad_accum >= 1, "--grad-accum must be at least 1"),
        (settings.checkpoint_every >= 1, "--checkpoint-every must be at least 1"),
        (0 <= settings.eval_split < 1, "--eval-split must be at least 0 and below 1 (e.g. 0.1)"),
        (0 <= settings.warmup_ratio < 1, "the warmup ratio must be at least 0 and below 1"),
        (bool(settings.target_modules), "the profile's [lora] target_modules is empty; name the layers to adapt"),
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


def learning_rate(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up over `warmup` steps, then linear decay; never zero on a step that runs."""
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    remaining = max(1, total - warmup)
    return peak * max(0.0, (total - step) / remaining)


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
        dataset = build_dataset(store, settings.selection, plugins)  # type: ignore[arg-type]
        fingerprint = dataset.fingerprint(profile.chat.system_prompt)
        if saved is not None and saved.get("fingerprint") != fingerprint:
            raise AssistantError(
                "the training data changed since the interrupted run (chats added, edited, rated or corrected); "
                "start over without --resume (add --overwrite)"
            )
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
    kept = train + held_out
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
    pattern, _ = lora_targets(model, settings.target_modules, settings.include_vision)
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


def _loop(
    run: _Run,
    loaded: Any,
    encoder: Any,
    model: Any,
    saved: dict[str, Any] | None,
    should_stop: Callable[[], bool] | None,
    stop_after: int | None,
) -> TrainResult:
    import torch
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    from .checkpoint import restore_rng
    from .modeling import batch_loss, mean_loss

    settings = run.settings
    parameters = [parameter for _, parameter in model.named_parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=settings.weight_decay)
    plan = plan_steps(len(run.train), settings.batch_size, settings.grad_accum, settings.epochs, settings.seed)
    total = len(plan)
    warmup = math.ceil(total * settings.warmup_ratio) if settings.warmup_ratio else 0
    history: list[float] = []
    metrics: dict[str, Any] = {}
    start = 0
    if saved is not None:
        checkpoint = latest_checkpoint(run.path)
        assert checkpoint is not None
        adapter_state, optimizer_state, rng, state = load_checkpoint(checkpoint, loaded.device)
        set_peft_model_state_dict(model, adapter_state)
        optimizer.load_state_dict(optimizer_state)
        restore_rng(rng)
        start = int(state["step"])
        history = list(state.get("history") or [])
        metrics = dict(state.get("metrics") or {})
        run.report(TrainProgress("training", f"resuming at step {start}/{total}", step=start, total_steps=total,
                                 epochs=settings.epochs))
    elif run.held_out:
        run.report(TrainProgress("eval", f"eval loss of the base model on {len(run.held_out)} held-out chats"))
        metrics["eval_loss_before"] = mean_loss(model, encoder, run.held_out, settings.batch_size)

    def checkpoint_state(step: int) -> dict[str, Any]:
        return {
            "step": step,
            "total_steps": total,
            "history": history,
            "metrics": metrics,
            "fingerprint": run.fingerprint,
            "settings": {
                "profile": settings.profile,
                "selection": settings.selection.to_dict(),
                "hyperparameters": settings.hyperparameters(),
            },
        }

    def save(step: int, rng: dict[str, Any]) -> None:
        run.report(TrainProgress("saving", f"checkpoint at step {step}", step=step, total_steps=total))
        save_checkpoint(run.path, step, get_peft_model_state_dict(model), optimizer, rng, checkpoint_state(step))

    started = time.perf_counter()
    samples = 0
    done = start
    updating = False
    rng_at_done = rng_tensors()
    try:
        for step in range(start, total):
            if should_stop is not None and should_stop():
                save(done, rng_at_done)
                return _stopped(run, done, total, metrics)
            epoch, batches = plan[step]
            step_tokens = sum(run.learned_tokens[index] for batch in batches for index in batch)
            rate = learning_rate(step, total, settings.lr, warmup)
            for group in optimizer.param_groups:
                group["lr"] = rate
            loss_sum = 0.0
            for batch_indices in batches:
                batch = encoder.encode([run.train[index] for index in batch_indices]).to(loaded.device)
                loss, _ = batch_loss(model, batch, loaded)
                (loss / max(1, step_tokens)).backward()
                loss_sum += float(loss.detach())
                samples += len(batch_indices)
            updating = True
            if settings.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(parameters, settings.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            done = step + 1
            history.append(round(loss_sum / max(1, step_tokens), 6))
            rng_at_done = rng_tensors()
            updating = False
            elapsed = time.perf_counter() - started
            speed = samples / elapsed if elapsed > 0 else None
            eta = elapsed / (done - start) * (total - done) if done > start else None
            if done % settings.checkpoint_every == 0 and done < total:
                save(done, rng_at_done)
            run.report(TrainProgress(
                "training", step=done, total_steps=total, epoch=epoch + 1, epochs=settings.epochs,
                loss=history[-1], lr=rate, samples_per_s=speed, eta_s=eta,
            ))
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
    if run.held_out:
        run.report(TrainProgress("eval", f"eval loss on {len(run.held_out)} held-out chats", step=total,
                                 total_steps=total))
        metrics["eval_loss"] = mean_loss(model, encoder, run.held_out, settings.batch_size)
    return _finish(run, model, loaded, total, history, metrics, duration, samples)


def _stopped(run: _Run, step: int, total: int, metrics: dict[str, Any]) -> TrainResult:
    message = (
        f"stopped at step {step}/{total}; continue with `assistant train --name {run.settings.name} --resume`"
    )
    run.report(TrainProgress("done", message, step=step, total_steps=total))
    return TrainResult(run.settings.name, run.path, "stopped", step, total, dict(metrics), run.stats, message)


def _data_section(run: _Run) -> dict[str, Any]:
    stats = run.stats
    held = [example.conversation_id for example in run.held_out if example.conversation_id is not None]
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
        "held_out": {"chats": held, "sources": [example.source for example in run.held_out]},
    }


def _finish(
    run: _Run, model: Any, loaded: Any, total: int, history: list[float], metrics: dict[str, Any],
    duration: float, samples: int,
) -> TrainResult:
    import peft
    import torch
    import transformers

    settings = run.settings
    run.report(TrainProgress("saving", f"saving adapter {settings.name}", step=total, total_steps=total))
    model.save_pretrained(str(run.path), safe_serialization=True)
    last_epoch = history[-max(1, total // settings.epochs):] if history else []
    metrics.update(
        steps=total,
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
        trainer="lora",
        versions={"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
    )
    meta["base"]["family"] = loaded.family
    write_meta(run.path, meta)
    remove_checkpoints(run.path)
    message = f"adapter {settings.name} saved in {run.path}"
    run.report(TrainProgress("done", message, step=total, total_steps=total, loss=history[-1] if history else None,
                             eval_loss=metrics.get("eval_loss")))
    return TrainResult(settings.name, run.path, "complete", total, total, metrics, run.stats, message)
