"""LoRA training from saved chats: collect the data, load the model, run the stages, save the adapter.

`train_adapter(config, progress=...)` is the one entry point; the CLI, the TUI's /train and third-party code call
it. It is deterministic given the seed: the data order of every epoch comes from the seed, LoRA's initial weights
too, and a checkpoint keeps the RNG state, so `resume=True` ends with the same adapter as an uninterrupted run.

By default a share of the chats is held out for validation: the loop evaluates on them every few steps (loss,
and exact-match accuracy on short replies), keeps the best weights, stops early when `patience` evaluations in a
row did not improve, and saves the best weights, not the last. Without `epochs` the step budget follows the data
size. The defaults were chosen by the sweep in docs/finetuning.md.

The settings and the step plan live in settings.py and the loop of one stage in loop.py (dpo.py adds the DPO
stage); their public names are re-exported here, the module other code imports.
"""

from __future__ import annotations

import hashlib
import shutil
import time
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

from .checkpoint import latest_checkpoint, read_state, remove_checkpoints
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
from .loop import Objective, Run, SFTObjective, StageOutcome, run_stage
from .settings import (  # re-exported: the settings and the step plan are part of the trainer's API
    DEFAULTS,
    EVALUATIONS,
    MAX_EPOCHS,
    METHODS,
    MIN_EPOCHS,
    SCHEDULES,
    TARGET_SAMPLES,
    ProgressFn,
    TrainConfig,
    TrainSettings,
    auto_epochs,
    auto_eval_every,
    learning_rate,
    plan_steps,
    resolve_settings,
)

if TYPE_CHECKING:
    from assistant.profiles import Profile
    from assistant.store import Store

__all__ = [
    "DEFAULTS", "EVALUATIONS", "MAX_EPOCHS", "METHODS", "MIN_EPOCHS", "SCHEDULES", "TARGET_SAMPLES", "Objective",
    "ProgressFn", "Run", "SFTObjective", "StageOutcome", "TrainConfig", "TrainProgress", "TrainResult",
    "TrainSettings", "auto_epochs", "auto_eval_every", "learning_rate", "plan_steps", "resolve_settings",
    "train_adapter",
]


# --- the run -------------------------------------------------------------------------------------------------------


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
        check_same_data(saved, fingerprint)
        if validation_set is not None:
            train, held_out = list(dataset.examples), list(validation_set.examples)
        else:
            train, held_out = split_examples(dataset.examples, settings.eval_split, settings.seed)
        return _train(settings, path, profile, dataset, train, held_out, fingerprint, saved, report, should_stop,
                      config.stop_after_steps)
    finally:
        if own_store and store is not None:
            store.close()


def check_same_data(saved: dict[str, Any] | None, fingerprint: str) -> None:
    """A resumed run must train on the data the interrupted one had (its fingerprint)."""
    if saved is not None and saved.get("fingerprint") != fingerprint:
        raise AssistantError(
            "the training data changed since the interrupted run (chats added, edited, rated or corrected); "
            "start over without --resume (add --overwrite)"
        )


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
    train, learned = measure_examples(encoder, train, stats, loaded.context_limit)
    held_out, _ = measure_examples(encoder, held_out, stats, loaded.context_limit)
    if not train:
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(stats.skipped.items()))
        raise AssistantError(f"no usable training examples left ({reasons}); pick other chats or a bigger model context")
    kept = train + (held_out if not settings.val_data else [])  # a --val-data file is not training data
    stats.conversations = len(kept)
    stats.turns = sum(len(example.targets) for example in kept)
    stats.images = sum(len(example_images(example)) for example in kept)
    report(TrainProgress("data", stats.summary(), stats=stats))
    run = Run(settings, path, profile, train, held_out, learned, stats, fingerprint, report)
    if saved is None:
        shutil.rmtree(path, ignore_errors=True)
        base = BaseModelRef.from_profile(profile, loaded.family)
        write_meta(path, new_meta(settings.name, base, hyperparameters=settings.hyperparameters(),
                                  data=data_section(run), trainer="lora"))
    with translate_out_of_memory(settings.batch_size, settings.four_bit, True):
        model = lora_model(loaded, settings)
        objective = SFTObjective(run, loaded, encoder)
        return run_stage(run, loaded, model, objective, save_adapter, saved, should_stop, stop_after)


def measure_examples(
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


def lora_model(loaded: Any, settings: TrainSettings) -> Any:
    """The loaded model with fresh LoRA layers on the settings' targets (seeded), ready to train."""
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


def data_section(run: Run) -> dict[str, Any]:
    """The adapter metadata's data section: what was trained on and what was held out."""
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


def save_adapter(run: Run, model: Any, loaded: Any, outcome: StageOutcome) -> TrainResult:
    """Save a finished run's adapter (peft format, safetensors) with its metadata, and drop the checkpoints."""
    import peft
    import torch
    import transformers

    settings = run.settings
    done, total, history, metrics = outcome.done, outcome.total, outcome.history, outcome.metrics
    duration, samples, validations = outcome.duration, outcome.samples, outcome.validations
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
        data=data_section(run),
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
