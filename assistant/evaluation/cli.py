"""The `assistant eval` command: read a benchmark file, ask the model (and with `--compare base` the base model
too), print the side-by-side table, write `--json`, keep the result with the adapter."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import AssistantError
from . import FORMAT_NAMES


def limit_units(items: list[Any], limit: int | None) -> list[Any]:
    """The items of the first `limit` units (MMBench: questions with all their rotations)."""
    if limit is None:
        return items
    kept: set[str] = set()
    chosen = []
    for item in items:
        if item.unit not in kept:
            if len(kept) >= limit:
                continue
            kept.add(item.unit)
        chosen.append(item)
    return chosen


def _check_adapter(adapter: str | None, compare: str | None) -> Any:
    from ..adapters import read_adapter

    if compare is not None and compare != "base":
        raise AssistantError(f"--compare {compare!r} is not supported; use --compare base (with --adapter NAME)")
    if compare and not adapter:
        raise AssistantError("--compare base compares an adapter with its base model; add --adapter NAME")
    if not adapter:
        return None
    info = read_adapter(adapter)
    if info.status != "complete":
        raise AssistantError(
            f"adapter {adapter!r} is not usable ({info.status}); finish it with "
            f"`assistant train --name {adapter} --resume` or train it again"
        )
    return info


def _grounding_prompt(bot: Any) -> str:
    from ..grounding import grounding_formats

    formats = grounding_formats(bot.plugins)
    chosen = formats.get(bot.profile.grounding.format) or formats.get("json1000")
    return chosen.prompt if chosen is not None else ""


@click.command("eval")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--format", "format_name", required=True, metavar="|".join(FORMAT_NAMES),
              help="The file's benchmark format.")
@click.option("--profile", "-p", default=None, help="Profile name or .toml path (default: the adapter's training "
              "profile, else the default profile).")
@click.option("--adapter", "-a", default=None, help="Evaluate with this LoRA adapter on.")
@click.option("--compare", default=None, metavar="base", help="Also run the base model on the same items and compare.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the whole report (every item's replies and scores) to this JSON file.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Evaluate only the first N questions.")
@click.option("--metric", default=None, metavar="exact|contains|anls",
              help="jsonl only: how an answer is scored (default exact).")
@click.option("--batch-size", "batch_size", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Items per generate call (transformers backend).")
@click.option("--max-tokens", "max_tokens", type=click.IntRange(1, 4096), default=None,
              help="Most new tokens per answer (default: the format's).")
def eval_command(file: Path, format_name: str, profile: str | None, adapter: str | None, compare: str | None,
                 json_out: Path | None, limit: int | None, metric: str | None, batch_size: int,
                 max_tokens: int | None) -> None:
    """Score a model (or an adapter against its base) on a benchmark FILE: MMBench TSV (CircularEval), MMMU
    JSON/parquet, DocVQA (ANLS), ScreenSpot (grounding), preference pairs, or JSONL of {"image", "question",
    "answer"}. Greedy answers; progress on stderr, the table on stdout."""
    from . import get_format
    from .base import LoadOptions

    fmt = get_format(format_name)
    if metric is not None and format_name != "jsonl":
        raise AssistantError(f"--metric applies to --format jsonl only (--format {format_name} has its own metric)")
    info = _check_adapter(adapter, compare)
    if json_out is not None:
        _check_writable(json_out)  # before the run: a long eval must not end in "cannot write"
    if format_name == "preference":
        from .preference import run_preference_eval

        run_preference_eval(file, info, profile, limit, json_out)
        return

    from ..api import Assistant, GenerationOptions
    from ..batch import BatchSummary, Progress
    from ..stack import warn_untested_stack
    from .report import EvalReport, table
    from .runner import run_side

    if profile is None and info is not None and info.base.profile:
        profile = info.base.profile
    bot = Assistant.from_profile(profile)
    options = LoadOptions(metric=metric or "exact")
    if fmt.ground:
        options.grounding_prompt = _grounding_prompt(bot)
    items = limit_units(fmt.load(file, options), limit)
    if not items:
        raise AssistantError(f"{file} has no items; give a file with at least one")
    if all(item.error is not None for item in items):
        raise AssistantError(f"no usable item in {file}: {items[0].error}")
    warn_untested_stack()
    sides: list[tuple[str, str | None]] = []
    if compare:
        sides.append(("base", None))
    if adapter:  # an adapter may be called "base" too: its column must not be mistaken for the base model's
        sides.append((adapter if adapter != "base" else "adapter:base", adapter))
    else:
        sides.append(("base", None))
    generation = GenerationOptions(max_new_tokens=max_tokens or fmt.max_new_tokens, temperature=0.0).check()
    progress = Progress(sys.stderr, label="eval")
    summary = BatchSummary(total=len(items) * len(sides))
    bad = sum(1 for item in items if item.error is not None)
    click.echo(f"eval: {len(items)} items ({bad} unreadable) from {file.name}, loading {bot.profile.name}", err=True)
    try:
        bot.load()
        results = [run_side(bot, fmt, items, file, generation, batch_size, label, name, summary, progress)
                   for label, name in sides]
    finally:
        progress.close()
    report = EvalReport(format=format_name, file=file.name, profile=bot.profile.name,
                        metric=_metric_name(fmt, format_name), binary=fmt.binary, sides=results, limit=limit)
    for line in table(report):
        click.echo(line)
    if json_out is not None:
        _write_json(json_out, report.to_dict())
        click.echo(f"eval: wrote {json_out}", err=True)
    if adapter:
        from .saved import save_adapter_eval

        save_adapter_eval(adapter, report.summary_dict())
        click.echo(f"eval: kept with adapter {adapter} (assistant adapters show {adapter})", err=True)


def _metric_name(fmt: Any, format_name: str) -> str:
    if format_name == "jsonl":
        return {"exact": "exact match", "contains": "contains", "anls": "ANLS"}[fmt.metric]
    return str(fmt.metric)


def _check_writable(path: Path) -> None:
    if path.is_dir():
        raise AssistantError(f"--json {path} is a folder; give a file name such as report.json")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        with path.open("a", encoding="utf-8"):
            pass
        if not existed:
            path.unlink()
    except OSError as error:
        raise AssistantError(f"cannot write --json {path} ({error.strerror or error}); choose a writable path") from None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    except OSError as error:
        raise AssistantError(f"cannot write {path} ({error.strerror or error}); choose a writable --json path") from None
