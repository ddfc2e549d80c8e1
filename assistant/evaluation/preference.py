"""Preference pairs (TRL's `prompt`/`chosen`/`rejected` + `images` JSONL): does the adapter raise the chosen reply
over the rejected one, relative to its base? Reward accuracy and mean margin as TRL's DPO reports them.

The pair reader, the reply log-probabilities and the metrics are the fine-tuning plugin's own
(`assistant_plugins.finetune.pairs` / `.preference`, the code DPO trains with): one definition of what a pair and
a reward are. Both sides run on one loaded model, the base being the adapter switched off.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from ..errors import AssistantError
from .metrics import mcnemar_exact, significance_note

METRIC = "reward accuracy"


class PreferenceFormat:
    """Marker for `get_format("preference")`: this format scores log-probabilities, not generated replies, so the
    command runs `run_preference_eval` instead of the generation runner."""

    name = "preference"
    metric = METRIC
    binary = True
    max_new_tokens = 0
    ground = False


def read_pairs(path: Path) -> tuple[Any, list[dict[str, str]]]:
    """The pairs of a TRL preference JSONL (the fine-tuning plugin's parser, line by line) and the lines that could
    not be used ({"line", "error"}): a bad line is counted and left out, the others are evaluated."""
    from assistant.conversation import Conversation
    from assistant_plugins.finetune.dataset import DataSelection, ImageLibrary
    from assistant_plugins.finetune.formats import library_sink, parse_record, to_messages
    from assistant_plugins.finetune.pairs import PairSet, conversation_pairs

    from .items import read_text

    library = ImageLibrary()
    sink = library_sink(library, path.parent)
    pairs: list[Any] = []
    bad: list[dict[str, str]] = []
    lines = read_text(path).splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path.name} line {number}"
        try:
            record = json.loads(line)
        except ValueError as error:
            bad.append({"line": where, "error": f"{where} is not JSON ({error})"})
            continue
        try:
            found = conversation_pairs(Conversation(messages=to_messages(parse_record(record, "trl-preference", where), sink)))
        except AssistantError as error:
            message = str(error)
            bad.append({"line": where, "error": message if where in message else f"{where}: {message}"})
            continue
        if not found:
            bad.append({"line": where, "error": f"{where}: chosen and rejected are the same reply"})
        for pair in found:
            pair.source = pair.examples[0].source = pair.examples[1].source = where
            pairs.append(pair)
    if not pairs:
        first = bad[0]["error"] if bad else "no lines"
        raise AssistantError(f"no usable preference pair in {path} ({first}); each line needs prompt, chosen and rejected")
    return PairSet(pairs, library, len(lines), DataSelection(data_file=str(path), data_format="trl-preference")), bad


def run_preference_eval(file: Path, info: Any, profile_name: str | None, limit: int | None,
                        json_out: Path | None) -> dict[str, Any]:
    if info is None:
        raise AssistantError("--format preference measures an adapter against its base model; add --adapter NAME")
    from ..adapters import activate_adapter, check_compatible
    from ..engine.engine import Engine
    from ..profiles import load_profile

    try:
        from assistant_plugins.finetune.collate import Encoder
        from assistant_plugins.finetune.modeling import load_for_training
        from assistant_plugins.finetune.preference import DEFAULT_BETA, adapter_disabled, pair_logprobs, preference_metrics
    except ImportError:
        raise AssistantError("--format preference needs the built-in fine-tuning plugin (assistant_plugins.finetune); "
                             "reinstall vlm-assistant") from None

    pair_set, bad_lines = read_pairs(Path(file))
    pairs = pair_set.pairs[:limit] if limit else pair_set.pairs
    profile = load_profile(profile_name or info.base.profile or None)
    check_compatible(info, profile)
    say = lambda message: click.echo(f"eval: {message}", err=True)  # noqa: E731
    say(f"{len(pairs)} preference pairs ({len(bad_lines)} unusable lines) from {Path(file).name}, "
        f"loading {profile.model_label}")
    started = time.perf_counter()
    loaded = load_for_training(profile, four_bit=False)
    engine = Engine(loaded)
    encoder = Encoder(loaded, pair_set.images.open, profile.chat.system_prompt)
    activate_adapter(engine, info.name)
    say("scoring the pairs with the base model (adapter off)")
    with adapter_disabled(loaded.model):
        reference = pair_logprobs(loaded.model, encoder, pairs, batch_size=1)
    say(f"scoring the pairs with adapter {info.name}")
    policy = pair_logprobs(loaded.model, encoder, pairs, batch_size=1)
    metrics = preference_metrics(policy, reference, DEFAULT_BETA)
    sys.stderr.flush()

    base_prefers = [chosen > rejected for chosen, rejected in reference]
    tuned_prefers = [chosen > rejected for chosen, rejected in policy]
    only_base = sum(1 for a, b in zip(base_prefers, tuned_prefers) if a and not b)
    only_adapter = sum(1 for a, b in zip(base_prefers, tuned_prefers) if b and not a)
    p_value = mcnemar_exact(only_base, only_adapter)
    base_share = sum(base_prefers) / len(pairs)
    tuned_share = sum(tuned_prefers) / len(pairs)
    summary: dict[str, Any] = {
        "format": "preference", "file": Path(file).name, "profile": profile.name, "metric": METRIC,
        "adapter": info.name, "items": len(pairs), "units": len(pairs), "limit": limit, "created_at": time.time(),
        "beta": DEFAULT_BETA,
        "sides": {
            "base": {"label": "base", "prefers_chosen": base_share, "units": len(pairs), "errors": 0},
            info.name: {"label": info.name, "score": metrics.accuracy, "prefers_chosen": tuned_share,
                        "units": len(pairs), "errors": 0, "seconds": round(time.perf_counter() - started, 2)},
        },
        "errors": len(bad_lines),
        "error_lines": bad_lines,
        "reward_accuracy": metrics.accuracy,
        "margin": metrics.margin,
        "preference_metrics": metrics.to_dict(),
        "comparison": {"pairs": len(pairs), "difference": tuned_share - base_share, "test": "McNemar exact test",
                       "p_value": p_value, "only_base": only_base, "only_adapter": only_adapter,
                       "of": "prefers chosen"},
    }
    name_width = max(9, len(info.name))
    click.echo(f"preference · {Path(file).name} · {len(pairs)} pairs · profile {profile.name} · beta {DEFAULT_BETA}")
    click.echo(f"{'':<16} {'base':>9} {info.name:>{name_width}}      diff")
    click.echo(f"{'prefers chosen':<16} {base_share:>9.1%} {tuned_share:>{name_width}.1%} "
               f"{(tuned_share - base_share) * 100:>+6.1f} pts")
    click.echo(f"{'reward accuracy':<16} {'':>9} {metrics.accuracy:>{name_width}.1%}")
    click.echo(f"{'mean margin':<16} {'':>9} {metrics.margin:>+{name_width}.3f}")
    if bad_lines:
        click.echo(f"{'errors (not scored)':<16} {len(bad_lines)} lines (first: {bad_lines[0]['error']})")
    click.echo(significance_note(p_value, "McNemar exact test") + f" ({only_base + only_adapter} discordant pairs)")
    if json_out is not None:
        rows = [{"source": pair.source, "base": {"chosen": rc, "rejected": rr}, info.name: {"chosen": pc, "rejected": pr}}
                for pair, (rc, rr), (pc, pr) in zip(pairs, reference, policy)]
        try:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps({**summary, "item_results": rows}, indent=2) + "\n", encoding="utf-8")
        except OSError as error:
            raise AssistantError(f"cannot write {json_out} ({error.strerror or error}); choose a writable --json path") from None
        say(f"wrote {json_out}")
    from .saved import save_adapter_eval

    save_adapter_eval(info.name, summary)
    say(f"kept with adapter {info.name} (assistant adapters show {info.name})")
    return summary
