"""CLI: `assistant train`, `assistant adapters list|show|delete|eval`, `assistant chats import|export-dataset`."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, TextIO

import click

from assistant.errors import AssistantError

from .dataset import DataSelection, parse_ids
from .trainer import TrainConfig, TrainProgress

DATA_FORMATS = ["auto", "trl", "sharegpt", "trl-preference"]
EXPORT_FORMATS = ["trl", "sharegpt", "trl-preference"]


def data_options(with_file: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options that choose training data (shared by train, adapters eval and chats export-dataset)."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            click.option("--chats", "chat_ids", default=None, help="Chat ids, e.g. 3,5,10-12."),
            click.option("--tag", default=None, help="Only chats with this tag."),
            click.option("--rated", is_flag=True, default=False, help="Learn only replies rated up."),
            click.option("--corrected", is_flag=True, default=False, help="Learn only corrected replies."),
        ]
        if with_file:
            options += [
                click.option("--data", "data_file", type=click.Path(dir_okay=False), default=None,
                             help="Use a TRL/ShareGPT (or, for DPO, TRL preference) .jsonl file instead of saved chats."),
                click.option("--data-format", type=click.Choice(DATA_FORMATS), default="auto",
                             help="Format of --data (default: detected per line)."),
            ]
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def selection_from(params: dict[str, Any]) -> DataSelection:
    data_file = params.get("data_file")
    if data_file and (params.get("chat_ids") or params.get("tag") or params.get("rated") or params.get("corrected")):
        raise AssistantError("--data trains on a file; it cannot be combined with --chats, --tag, --rated or --corrected")
    return DataSelection(
        chats=parse_ids(params.get("chat_ids")),
        tag=params.get("tag"),
        rated=bool(params.get("rated")),
        corrected=bool(params.get("corrected")),
        data_file=str(Path(data_file).expanduser().resolve()) if data_file else None,
        data_format=params.get("data_format") or "auto",
    )


def config_from_params(params: dict[str, Any]) -> TrainConfig:
    """A TrainConfig from the parsed options of `train` (the CLI and the TUI's /train share this)."""
    return TrainConfig(
        name=params["name"],
        profile=params.get("profile"),
        selection=selection_from(params),
        epochs=params.get("epochs"),
        lr=params.get("lr"),
        rank=params.get("rank"),
        alpha=params.get("alpha"),
        batch_size=params.get("batch_size"),
        grad_accum=params.get("grad_accum"),
        grad_checkpointing=params.get("grad_checkpointing"),
        include_vision=params.get("include_vision"),
        include_connector=params.get("include_connector"),
        four_bit=params.get("four_bit"),
        seed=params.get("seed"),
        eval_split=params.get("eval_split"),
        val_data=str(Path(params["val_data"]).expanduser().resolve()) if params.get("val_data") else None,
        eval_every=params.get("eval_every"),
        patience=params.get("patience"),
        schedule=params.get("schedule"),
        checkpoint_every=params.get("checkpoint_every"),
        method=params.get("method"),
        beta=params.get("beta"),
        resume=bool(params.get("resume")),
        overwrite=bool(params.get("overwrite")),
        stop_after_steps=params.get("max_steps"),
    )


# --- progress ------------------------------------------------------------------------------------------------------


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_line(event: TrainProgress, width: int = 20) -> str:
    """`step 12/60 [####......] 20% · epoch 1/3 · loss 1.2345 · val 1.5000 80% · 3.2 samples/s · ETA 0:15`."""
    total = max(1, event.total_steps)
    filled = int(width * event.step / total)
    parts = [f"step {event.step}/{event.total_steps} [{'#' * filled}{'.' * (width - filled)}] {100 * event.step // total}%"]
    if event.epochs:
        parts.append(f"epoch {event.epoch}/{event.epochs}")
    if event.loss is not None:
        parts.append(f"loss {event.loss:.4f}")
    if event.eval_loss is not None:
        accuracy = getattr(event, "eval_accuracy", None)
        parts.append(f"val {event.eval_loss:.4f}" + (f" {accuracy:.0%}" if accuracy is not None else ""))
    if event.samples_per_s is not None:
        parts.append(f"{event.samples_per_s:.1f} samples/s")
    parts.append(f"ETA {_duration(event.eta_s)}")
    return " · ".join(parts)


class ProgressPrinter:
    """Progress on stderr: one line redrawn in place on a terminal, about twenty lines otherwise."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._open_line = False
        self._last_printed = -1

    def _end_line(self) -> None:
        if self._open_line:
            self.stream.write("\n")
            self._open_line = False

    def __call__(self, event: TrainProgress) -> None:
        if event.phase == "training" and event.total_steps and not event.message:
            line = progress_line(event)
            if self.tty:
                self.stream.write("\r" + line.ljust(100))
                self._open_line = True
            else:
                every = max(1, event.total_steps // 20)
                if event.step == event.total_steps or event.step - self._last_printed >= every:
                    self.stream.write(line + "\n")
                    self._last_printed = event.step
            self.stream.flush()
            return
        self._end_line()
        if event.phase == "data" and event.stats is not None:
            self.stream.write(f"training data: {event.stats.summary()}\n")
            for warning in event.stats.warnings():
                self.stream.write(f"warning: {warning}\n")
        elif event.message and event.phase != "done":  # the command prints the outcome itself
            self.stream.write(event.message + "\n")
        self.stream.flush()


# --- train ---------------------------------------------------------------------------------------------------------


@click.command("train")
@click.option("--name", required=True, help="Adapter name (letters, digits, - and _).")
@click.option("--profile", "-p", default=None, help="Profile whose model is trained (default: smolvlm-256m).")
@data_options()
@click.option("--epochs", type=click.IntRange(1), default=None,
              help="Passes over the data (default: from the data size, 3 to 20; early stopping may end sooner).")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=None, help="Peak learning rate (default 2e-3).")
@click.option("--rank", type=click.IntRange(1), default=None, help="LoRA rank (default: the profile's, 16).")
@click.option("--alpha", type=click.IntRange(1), default=None, help="LoRA alpha (default: the profile's, 32).")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Conversations per forward pass (default 1).")
@click.option("--grad-accum", type=click.IntRange(1), default=None, help="Batches per optimizer step (default 4).")
@click.option("--grad-checkpointing", is_flag=True, default=None, help="Recompute activations: less memory, slower.")
@click.option("--include-vision", is_flag=True, default=None, help="Adapt the vision tower and connector too.")
@click.option("--connector/--no-connector", "include_connector", default=None,
              help="Adapt the vision-language connector too (default: yes).")
@click.option("--4bit", "four_bit", is_flag=True, default=None, help="QLoRA: 4-bit base weights (CUDA only).")
@click.option("--seed", type=int, default=None, help="Seed for data order and LoRA init (default 0).")
@click.option("--val-split", "--eval-split", "eval_split", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Share of the chats held out for validation (default 0.2; 0: none, no early stopping).")
@click.option("--val-data", type=click.Path(dir_okay=False), default=None,
              help="Validate on this TRL/ShareGPT .jsonl file instead of a split of the training data.")
@click.option("--eval-every", type=click.IntRange(1), default=None,
              help="Steps between validations (default: about ten a run).")
@click.option("--patience", type=click.IntRange(0), default=None,
              help="Stop after this many validations without improvement (default 5; 0: never stop early).")
@click.option("--schedule", type=click.Choice(["linear", "cosine"]), default=None,
              help="Learning-rate decay after the warm-up (default linear).")
@click.option("--checkpoint-every", type=click.IntRange(1), default=None, help="Steps between checkpoints (default 50).")
@click.option("--method", type=click.Choice(["sft", "dpo", "sft-then-dpo"]), default=None,
              help="sft: learn the replies (default); dpo: prefer corrected / rated-up replies over the rejected "
              "ones (preference pairs); sft-then-dpo: both, in turn.")
@click.option("--beta", type=click.FloatRange(0, min_open=True), default=None,
              help="DPO: how far the adapter may move from the reference (default 0.1).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its newest checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace an existing adapter with this name.")
@click.option("--max-steps", type=click.IntRange(1), default=None,
              help="Stop with a checkpoint after this many steps (continue later with --resume).")
@click.option("--trainer", "trainer_name", default="lora", show_default=True, help="Training method (plugins add more).")
def train_command(trainer_name: str, **params: Any) -> None:
    """Train a LoRA adapter from saved chats (or a dataset file); use it with `--adapter NAME`."""
    config = config_from_params(params)
    trainer = _find_trainer(trainer_name)
    click.echo(f"training adapter {config.name} ({trainer.name}) on {config.selection.describe()}", err=True)
    result = trainer.train(config, progress=ProgressPrinter())
    _print_result(result)


def _find_trainer(name: str) -> Any:
    from assistant.plugins import get_plugin_manager

    trainers = {trainer.name: trainer for trainer in get_plugin_manager().collect("register_trainers")}
    if name not in trainers:
        raise AssistantError(f"unknown trainer {name!r}; available: {', '.join(sorted(trainers)) or 'none'}")
    return trainers[name]


def _fmt(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _pct(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, (int, float)) else "-"


def _print_result(result: Any) -> None:
    if getattr(result, "status", "complete") != "complete":
        raise AssistantError(getattr(result, "message", "training stopped"))
    metrics = getattr(result, "metrics", {}) or {}
    click.echo(f"adapter {result.name} saved in {result.path}")
    line = f"steps {metrics.get('steps', '-')} · train loss {_fmt(metrics.get('train_loss_last_epoch'))}"
    if metrics.get("eval_loss") is not None:
        line += f" · val loss {_fmt(metrics.get('eval_loss_before'))} -> {_fmt(metrics.get('eval_loss'))}"
    if metrics.get("reward_accuracy") is not None:
        line += (f" · reward accuracy {_pct(metrics.get('reward_accuracy_before'))} -> "
                 f"{_pct(metrics.get('reward_accuracy'))} · margin {_fmt(metrics.get('reward_margin_before'), 3)} -> "
                 f"{_fmt(metrics.get('reward_margin'), 3)} (held-out pairs)")
    elif metrics.get("val_accuracy") is not None:
        line += f" · val accuracy {_pct(metrics.get('val_accuracy_before'))} -> {_pct(metrics.get('val_accuracy'))}"
    if metrics.get("best_step") is not None:
        line += f" · kept step {metrics['best_step']}" + (" (stopped early)" if metrics.get("stopped_early") else "")
    click.echo(line)
    click.echo(f"use it: assistant ask --adapter {result.name} \"...\"  (or /adapter {result.name} in the app)")


# --- adapters ------------------------------------------------------------------------------------------------------


@click.group("adapters")
def adapters_group() -> None:
    """LoRA adapters trained from your chats: list, show, delete, evaluate."""


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M") if timestamp else "-"


@adapters_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def adapters_list(as_json: bool) -> None:
    """Every adapter with its base model and status."""
    from assistant.adapters import list_adapters

    infos = list_adapters()
    if as_json:
        click.echo(json.dumps([info.to_dict() for info in infos], indent=2, default=str))
        return
    if not infos:
        click.echo("no adapters yet; train one with `assistant train --name NAME`")
        return
    for info in infos:
        status = info.status if info.status != "training" else f"incomplete (step {info.last_checkpoint})"
        eval_loss = info.metrics.get("eval_loss")
        extra = f"  eval loss {eval_loss:.4f}" if isinstance(eval_loss, float) else ""
        click.echo(f"{info.name:<24} {status:<22} {info.base.label or '?':<28} {_when(info.created_at)}{extra}")


@adapters_group.command("show")
@click.argument("name")
def adapters_show(name: str) -> None:
    """An adapter's base model, data, hyper-parameters and metrics."""
    from assistant.adapters import read_adapter

    info = read_adapter(name)
    click.echo(f"adapter   {info.name} ({info.status})")
    click.echo(f"path      {info.path}")
    base = info.base
    click.echo(f"base      {base.label or 'unknown'}" + (f" @ {base.revision}" if base.revision else "")
               + (f" (profile {base.profile})" if base.profile else ""))
    click.echo(f"created   {_when(info.created_at)}   size {info.size_bytes / 1e6:.1f} MB")
    if info.last_checkpoint is not None:
        click.echo(f"checkpoint step {info.last_checkpoint} (continue with `assistant train --name {name} --resume`)")
    data = dict(info.data)
    if data:
        selection = DataSelection.from_dict(data.get("selection") or {})
        if data.get("pairs") is not None:
            click.echo(f"data      {selection.describe()}: {data['pairs']} preference pairs ({data.get('method')}) "
                       f"from {data.get('conversations', 0)} chats, {data.get('tokens', 0)} tokens")
        else:
            click.echo(f"data      {selection.describe()}: {data.get('conversations', 0)} conversations, "
                       f"{data.get('turns', 0)} turns, {data.get('images', 0)} images, {data.get('tokens', 0)} tokens")
        click.echo(f"          fingerprint {str(data.get('fingerprint', ''))[:16]}")
        _show_validation(info.path, data, info.metrics)
    if info.hyperparameters:
        shown = ", ".join(f"{key}={value}" for key, value in info.hyperparameters.items() if key != "target_modules")
        click.echo(f"settings  {shown}")
    if info.metrics:
        click.echo("metrics   " + ", ".join(f"{key}={_fmt(value)}" for key, value in info.metrics.items()))
    from assistant.evaluation.saved import eval_line, read_adapter_evals

    for number, entry in enumerate(read_adapter_evals(name)):  # `assistant eval --adapter NAME`, newest first
        click.echo(("eval      " if number == 0 else "          ") + eval_line(entry))


def _show_validation(path: Path, data: dict[str, Any], metrics: dict[str, Any]) -> None:
    """The training summary: the validation set, the steps run and kept, the validation curve."""
    from assistant.adapters import read_meta

    held = data.get("held_out") or {}
    count = held.get("conversations", len(held.get("sources") or []))
    preference = metrics.get("reward_accuracy") is not None
    if preference:
        where = f"from {held['data_file']}" if held.get("data_file") else f"(split {held.get('split', '?')}, grouped by chat)"
        click.echo(f"validate  {held.get('pairs', count)} held-out preference pairs {where}")
    elif held.get("data_file"):
        click.echo(f"validate  {count} conversations from {held['data_file']}")
    elif count:
        click.echo(f"validate  {count} held-out conversations (split {held.get('split', '?')}, grouped by chat)")
    else:
        click.echo("validate  none (trained with --val-split 0)")
    if metrics.get("steps") is not None:
        line = f"training  {metrics['steps']} of {metrics.get('planned_steps', metrics['steps'])} steps"
        if metrics.get("epochs"):
            line += f" ({metrics['epochs']} epochs planned)"
        if metrics.get("stopped_early"):
            line += ", stopped early"
        if metrics.get("best_step") is not None:
            line += f"; kept the best validation: step {metrics['best_step']}"
        click.echo(line)
    if preference:
        click.echo(f"          DPO loss {_fmt(metrics.get('eval_loss_before'))} -> {_fmt(metrics.get('eval_loss'))} · "
                   f"reward accuracy {_pct(metrics.get('reward_accuracy_before'))} -> {_pct(metrics['reward_accuracy'])}"
                   f" · margin {_fmt(metrics.get('reward_margin_before'), 3)} -> {_fmt(metrics.get('reward_margin'), 3)}"
                   " (held-out pairs)")
    elif metrics.get("eval_loss") is not None:
        line = f"          val loss {_fmt(metrics.get('eval_loss_before'))} -> {_fmt(metrics.get('eval_loss'))}"
        if metrics.get("val_accuracy") is not None:
            line += (f" · val accuracy {_pct(metrics.get('val_accuracy_before'))} -> {_pct(metrics['val_accuracy'])}"
                     " (exact match on short replies)")
        click.echo(line)
    validations = (read_meta(path) or {}).get("validations") or []
    if validations:
        curve = ", ".join(
            f"{item['step']}: {_fmt(item.get('loss'), 3)}"
            + (f"/{item['accuracy']:.0%}" if item.get("accuracy") is not None else "") for item in validations
        )
        what = "reward accuracy" if preference else "accuracy"
        click.echo(f"          step: val loss{'/' + what if validations[0].get('accuracy') is not None else ''}"
                   f" — {curve}")


@adapters_group.command("delete")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def adapters_delete(name: str, yes: bool) -> None:
    """Delete an adapter and its checkpoints."""
    from assistant.adapters import delete_adapter, read_adapter

    info = read_adapter(name)
    if not yes and not click.confirm(f"delete adapter {name} ({info.path})?", default=False):
        raise AssistantError("not deleted (answer y to confirm, or pass --yes)")
    delete_adapter(name)
    click.echo(f"deleted adapter {name}")


@adapters_group.command("eval")
@click.argument("name")
@data_options()
@click.option("--profile", "-p", default=None, help="Profile to load the base model with (default: the training one).")
@click.option("--limit", type=click.IntRange(1), default=None, help="Evaluate at most this many conversations.")
@click.option("--show", "show_cases", is_flag=True, help="Print every expected answer next to both models' answers.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def adapters_eval(name: str, profile: str | None, limit: int | None, show_cases: bool, as_json: bool,
                  **params: Any) -> None:
    """Base model vs adapter on held-out chats (default) or the chosen data: loss and exact match."""
    from .evaluate import evaluate_adapter

    selection = selection_from(params)
    started = time.perf_counter()
    report = evaluate_adapter(name, selection, profile_name=profile, limit=limit,
                              progress=lambda message: click.echo(message, err=True))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    replies = report.base.total
    click.echo(f"adapter {report.adapter} on {report.examples} conversations ({replies} replies), "
               f"profile {report.profile}, {time.perf_counter() - started:.1f} s")
    click.echo(f"{'':<14}{'base':>10}{'adapter':>10}")
    click.echo(f"{'loss':<14}{_fmt(report.base.loss):>10}{_fmt(report.tuned.loss):>10}")
    click.echo(f"{'exact match':<14}{report.base.exact_match:>9.1%}{report.tuned.exact_match:>10.1%}")
    if show_cases:
        for case in report.cases:
            click.echo(f"- {case.source}: {case.question}\n    expected {case.expected!r}\n"
                       f"    base     {case.base!r}\n    adapter  {case.adapter!r}")


# --- chats import / export-dataset --------------------------------------------------------------------------------


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(DATA_FORMATS), default="auto", show_default=True,
              help="TRL conversational (`messages` + `images`), LLaMA-Factory ShareGPT (`conversations`) or TRL "
              "preference (`prompt`/`chosen`/`rejected` + `images`: the chosen reply rated up over the rejected one).")
@click.option("--tag", "tags", multiple=True, help="Extra tag for the imported chats (repeatable).")
def chats_import(file: str, fmt: str, tags: tuple[str, ...]) -> None:
    """Import a .jsonl dataset as saved chats (image paths are relative to the file)."""
    from assistant.store import Store

    from .formats import import_file

    with Store.open_default() as store:
        result = import_file(store, Path(file), fmt, tags)
    ids = result.conversation_ids
    click.echo(
        f"imported {len(ids)} chats ({result.messages} messages, {result.images} images, {result.format}) "
        f"as chats {ids[0]}-{ids[-1]}, tagged {', '.join(result.tags)}"
    )
    if result.format == "trl-preference":
        click.echo(f"train on their preference pairs: assistant train --method dpo --tag {result.tags[0]} --name NAME")


@click.command("export-dataset")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="trl", show_default=True,
              help="Dataset format (trl-preference: the chats' preference pairs, what --method dpo trains on).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .jsonl file to write.")
@click.option("--force", is_flag=True, help="Replace an existing file.")
@data_options(with_file=False)
def chats_export_dataset(fmt: str, output: str, force: bool, **params: Any) -> None:
    """Export chats as a training dataset (corrections applied, rated-down replies left out) with their images."""
    from assistant.outputs import check_output
    from assistant.store import Store

    check_output(output, force)  # before the work: a refusal costs nothing

    from .dataset import build_dataset
    from .formats import write_dataset

    from assistant.plugins import get_plugin_manager

    selection = selection_from(params)
    if fmt == "trl-preference":
        from .formats import write_preference_dataset
        from .pairs import pairs_from_store

        with Store.open_default() as store:
            pair_set = pairs_from_store(store, selection)  # the pairs --method dpo would use
            lines, images = write_preference_dataset(pair_set.pairs, pair_set.images, Path(output), force=force)
        click.echo(f"wrote {lines} preference pairs and {images} images to {output} ({fmt})")
        return
    with Store.open_default() as store:
        dataset = build_dataset(store, selection, get_plugin_manager())  # the same examples training would use
        lines, images = write_dataset(dataset.examples, dataset.images, Path(output), fmt, force=force)
    click.echo(f"wrote {lines} conversations and {images} images to {output} ({fmt})")
    for warning in dataset.stats.warnings():
        click.echo(f"warning: {warning}", err=True)


def register(cli: click.Group) -> None:
    """Add the fine-tuning commands to the `assistant` CLI (and `import` / `export-dataset` to `chats`)."""
    cli.add_command(train_command)
    cli.add_command(adapters_group)
    chats = cli.commands.get("chats")
    if isinstance(chats, click.Group):
        chats.add_command(chats_import)
        chats.add_command(chats_export_dataset)
