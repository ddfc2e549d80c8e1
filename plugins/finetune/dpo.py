"""`assistant train --method dpo|sft-then-dpo`: preference pairs in, the same LoRA adapter out.

DPO runs through the trainer's own loop (loop.run_stage), so checkpoints, `--resume`, `--max-steps`, progress,
validation with early stopping, the best-weights rule and the saved adapter are those of SFT. What differs is the
objective (`DPOObjective`) and the validation: reward accuracy and margin on held-out pairs (as TRL reports them).

The reference log-probabilities are computed once, before the first DPO step, and kept in every checkpoint:
- `dpo`: the base model, i.e. the policy with its LoRA layers switched off (`adapter_disabled`); no second model;
- `sft-then-dpo`: the adapter as the SFT stage left it (the usual DPO recipe: the reference is the SFT model), so
  DPO moves the replies relative to what SFT learned. The SFT stage trains on the same chats (the chosen replies),
  holds out the chats whose pairs are held out, and its checkpoints come first in the same folder.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from assistant.adapters import BaseModelRef, new_meta, read_meta, write_meta
from assistant.errors import AssistantError
from assistant.hooktypes import TrainProgress, TrainResult

from .dataset import TOO_LONG, VIDEO, DataSelection, build_dataset, split_examples
from .pairs import PairSet, PreferencePair, describe_pairs, pairs_from_file, pairs_from_store, split_pairs
from .loop import Objective, Run, SFTObjective, StageOutcome, run_stage
from .settings import TrainSettings
from .trainer import check_same_data, data_section, lora_model, measure_examples, save_adapter

if TYPE_CHECKING:
    from assistant.profiles import Profile

    from .collate import Encoder

NOTHING_TO_COMPARE = "a side with no reply tokens the template can separate"


@dataclass
class PairStats:
    """What the preference data holds (the `stats` of the data progress report)."""

    pairs: int = 0
    chats: int = 0
    images: int = 0
    tokens: int = 0
    target_tokens: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    turns_excluded: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def summary(self) -> str:
        line = (f"{self.pairs} preference pair{'s' if self.pairs != 1 else ''} from {self.chats} "
                f"chat{'s' if self.chats != 1 else ''}, {self.images} image{'s' if self.images != 1 else ''}")
        return line + (f", {self.tokens} tokens" if self.tokens else "")

    def warnings(self) -> list[str]:
        lines = []
        if self.skipped.get(VIDEO):
            count = self.skipped[VIDEO]
            lines.append(f"{count} chat{'s' if count != 1 else ''} with videos skipped: training on videos is not "
                         "supported yet")
        return lines + [f"skipped {count} pair{'s' if count != 1 else ''}: {reason}" for reason, count in
                        sorted(self.skipped.items()) if reason != VIDEO]


def _group(pair: PreferencePair) -> Any:
    return ("chat", pair.conversation_id) if pair.conversation_id is not None else ("source", pair.source)


def _measure_pairs(encoder: "Encoder", pairs: Sequence[PreferencePair], stats: PairStats, limit: int) -> list[PreferencePair]:
    """Pairs whose two sides fit the context and both have reply tokens to score."""
    kept = []
    for pair in pairs:
        counts = [encoder.count(example) for example in pair.examples]
        if any(tokens > limit for tokens, _ in counts):
            stats.skip(TOO_LONG)
            continue
        if any(learned == 0 for _, learned in counts):
            stats.skip(NOTHING_TO_COMPARE)
            continue
        stats.tokens += sum(tokens for tokens, _ in counts)
        stats.target_tokens += sum(learned for _, learned in counts)
        kept.append(pair)
    return kept


def reference_logprobs(
    model: Any, encoder: "Encoder", pairs: Sequence[PreferencePair], batch_size: int, base: bool
) -> list[list[float]]:
    """(chosen, rejected) log-probabilities of the reference: the base (`base`: adapters off) or the adapter."""
    from .preference import adapter_disabled, pair_logprobs

    if not pairs:
        return []
    if base:
        with adapter_disabled(model):
            values = pair_logprobs(model, encoder, pairs, batch_size)
    else:
        values = pair_logprobs(model, encoder, pairs, batch_size)
    return [[chosen, rejected] for chosen, rejected in values]


class DPOObjective(Objective):
    """The DPO loss on the training pairs (mean over the pairs of a step); validation on the held-out ones."""

    stage = "dpo"
    held_out_what = "held-out preference pairs"

    def __init__(
        self, train: list[PreferencePair], held_out: list[PreferencePair], loaded: Any, encoder: "Encoder",
        settings: TrainSettings, reference: dict[str, list[list[float]]], step_offset: int = 0,
        earlier: dict[str, Any] | None = None,
    ) -> None:
        self.train, self.held, self.loaded, self.encoder = train, held_out, loaded, encoder
        self.settings = settings
        self.reference = reference
        self.step_offset = step_offset
        self.earlier = earlier or {}
        self.count = len(train)
        self.held_out = bool(held_out)

    def step(self, model: Any, batches: list[list[int]]) -> float:
        import torch

        from .preference import dpo_loss, encode_pairs, reply_logprobs

        pairs_in_step = sum(len(batch) for batch in batches)
        total = 0.0
        for batch in batches:
            chunk = [self.train[index] for index in batch]
            logprobs = reply_logprobs(model, encode_pairs(self.encoder, chunk).to(self.loaded.device), self.loaded)
            reference = torch.tensor([self.reference["train"][index] for index in batch], dtype=torch.float32)
            half = len(chunk)
            terms = dpo_loss(logprobs[:half], logprobs[half:], reference[:, 0], reference[:, 1], self.settings.beta)
            (terms.losses.sum() / pairs_in_step).backward()
            total += float(terms.losses.detach().sum())
        return total / max(1, pairs_in_step)

    def validate(self, step: int, model: Any) -> Any:
        from .preference import pair_logprobs, preference_metrics
        from .validation import Validation

        policy = pair_logprobs(model, self.encoder, self.held, self.settings.batch_size)
        reference = [(chosen, rejected) for chosen, rejected in self.reference["held_out"]]
        metrics = preference_metrics(policy, reference, self.settings.beta)
        correct = round(metrics.accuracy * metrics.pairs)
        return Validation(step, metrics.loss, correct, metrics.pairs, margin=metrics.margin)

    def state(self) -> dict[str, Any]:
        return {"reference": self.reference, "step_offset": self.step_offset, "earlier": self.earlier}

    def reference_preferred(self) -> float | None:
        """Share of held-out pairs whose chosen reply the reference already finds likelier (0.5: no preference)."""
        held = self.reference["held_out"]
        return sum(1 for chosen, rejected in held if chosen > rejected) / len(held) if held else None

    def final_metrics(self, first: Any, best: Any) -> dict[str, Any]:
        return {
            "method": self.settings.method,
            "beta": self.settings.beta,
            "train_pairs": len(self.train),
            "eval_pairs": len(self.held),
            "reward_accuracy_before": first.accuracy if first else None,
            "reward_margin_before": first.margin if first else None,
            "reward_accuracy": best.accuracy if best else None,
            "reward_margin": best.margin if best else None,
            "base_preferred": self.reference_preferred(),
            **self.earlier,
        }


def _pairs(store: Any, selection: DataSelection) -> PairSet:
    if selection.data_file:
        return pairs_from_file(Path(selection.data_file))
    return pairs_from_store(store, selection)


def _fingerprint(*parts: str) -> str:
    return hashlib.sha256("+".join(parts).encode()).hexdigest()


def train_with_preferences(
    settings: TrainSettings, path: Path, profile: "Profile", store: Any, plugins: Any, saved: dict[str, Any] | None,
    report: Callable[[TrainProgress], None], should_stop: Callable[[], bool] | None, stop_after: int | None,
) -> TrainResult:
    """`train_adapter` for --method dpo and sft-then-dpo (settings resolved, the adapter folder checked)."""
    from .collate import Encoder
    from .modeling import load_for_training, translate_out_of_memory

    system_prompt = profile.chat.system_prompt
    two_stages = settings.method == "sft-then-dpo"
    if not two_stages and (settings.selection.rated or settings.selection.corrected):
        raise AssistantError(
            "--rated and --corrected choose replies to learn (SFT); --method dpo learns from every preference pair "
            "of the chosen chats: drop them, or use --method sft-then-dpo"
        )
    pair_set = _pairs(store, settings.selection)
    fingerprint = pair_set.fingerprint(system_prompt)
    validation_set = None
    if settings.val_data:
        validation_set = pairs_from_file(Path(settings.val_data))
        pair_set.images.include(validation_set.images)
        fingerprint = _fingerprint(fingerprint, validation_set.fingerprint(system_prompt))
    dataset = None
    if two_stages:
        dataset = build_dataset(store, settings.selection, plugins)
        pair_set.images.include(dataset.images)
        fingerprint = _fingerprint(fingerprint, dataset.fingerprint(system_prompt))
    check_same_data(saved, fingerprint)
    if validation_set is not None:
        train_pairs, held_pairs = list(pair_set.pairs), list(validation_set.pairs)
    else:
        train_pairs, held_pairs = split_pairs(pair_set.pairs, settings.eval_split, settings.seed)

    report(TrainProgress("loading", f"loading {profile.model_label}"))
    with translate_out_of_memory(settings.batch_size, settings.four_bit, saved is not None):
        loaded = load_for_training(profile, settings.four_bit, lambda message: report(TrainProgress("loading", message)))
    encoder = Encoder(loaded, pair_set.images.open, system_prompt)
    stats = PairStats(skipped=dict(pair_set.skipped))
    train_pairs = _measure_pairs(encoder, train_pairs, stats, loaded.context_limit)
    held_pairs = _measure_pairs(encoder, held_pairs, stats, loaded.context_limit)
    if not train_pairs:
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(stats.skipped.items()))
        raise AssistantError(f"no usable preference pairs left ({reasons}); pick other chats or a bigger model context")
    counted = train_pairs + (held_pairs if not settings.val_data else [])
    stats.pairs = len(counted)
    stats.chats = len({_group(pair) for pair in counted})
    stats.images = sum(len(pair.images) for pair in counted)
    report(TrainProgress("data", stats.summary(), stats=stats))

    run = Run(settings, path, profile, [pair.examples[0] for pair in train_pairs],
               [pair.examples[0] for pair in held_pairs], [], stats, fingerprint, report)  # type: ignore[arg-type]
    if saved is None:
        import shutil

        shutil.rmtree(path, ignore_errors=True)
        base = BaseModelRef.from_profile(profile, loaded.family)
        write_meta(path, new_meta(settings.name, base, hyperparameters=settings.hyperparameters(),
                                  data=_preference_data(run, train_pairs, held_pairs), trainer="lora"))
    stage = (saved or {}).get("stage", "sft")
    with translate_out_of_memory(settings.batch_size, settings.four_bit, True):
        model = lora_model(loaded, settings)
        earlier: dict[str, Any] = {}
        offset = 0
        if two_stages and stage == "sft":
            assert dataset is not None
            result = _sft_stage(run, dataset, held_pairs, loaded, encoder, model, saved, should_stop, stop_after)
            if result.status != "sft-done":
                return result
            offset = result.total_steps
            earlier = {f"sft_{key}": result.metrics.get(key) for key in
                       ("steps", "eval_loss_before", "eval_loss", "val_accuracy_before", "val_accuracy", "best_step")}
            saved = None
        if saved is not None:
            stage_state = saved.get("stage_state") or {}
            reference = stage_state["reference"]
            offset = int(stage_state.get("step_offset") or 0)
            earlier = dict(stage_state.get("earlier") or {})
        else:
            what = "the base model (adapter off)" if not two_stages else "the SFT adapter"
            report(TrainProgress("eval", f"reference log-probabilities of {len(train_pairs) + len(held_pairs)} "
                                         f"pairs from {what}"))
            reference = {
                "train": reference_logprobs(model, encoder, train_pairs, settings.batch_size, base=not two_stages),
                "held_out": reference_logprobs(model, encoder, held_pairs, settings.batch_size, base=not two_stages),
            }
            if two_stages:
                report(TrainProgress("training", f"DPO stage on {describe_pairs(train_pairs)}"))
        objective = DPOObjective(train_pairs, held_pairs, loaded, encoder, settings, reference, offset, earlier)
        remaining = None if stop_after is None else max(1, stop_after - offset)

        def finish(run_: Run, model_: Any, loaded_: Any, outcome: StageOutcome) -> TrainResult:
            result = save_adapter(run_, model_, loaded_, outcome)
            meta = read_meta(path) or {}
            meta["data"] = _preference_data(run, train_pairs, held_pairs, meta.get("data"))
            write_meta(path, meta)
            return result

        return run_stage(run, loaded, model, objective, finish, saved, should_stop, remaining, offset)


def _sft_stage(
    run: Run, dataset: Any, held_pairs: Sequence[PreferencePair], loaded: Any, encoder: "Encoder", model: Any,
    saved: dict[str, Any] | None, should_stop: Callable[[], bool] | None, stop_after: int | None,
) -> TrainResult:
    """The SFT stage of sft-then-dpo: the chats' replies, the held-out pairs' chats held out; the adapter stays
    in `model` (its best validation) for the DPO stage, nothing is saved but checkpoints."""
    settings = run.settings
    held_groups = {_group(pair) for pair in held_pairs}

    def group(example: Any) -> Any:
        return ("chat", example.conversation_id) if example.conversation_id is not None else ("source", example.source)

    if settings.val_data or held_groups:
        train = [example for example in dataset.examples if group(example) not in held_groups]
        held = [example for example in dataset.examples if group(example) in held_groups]
    else:
        train, held = split_examples(dataset.examples, 0, settings.seed)
    train, learned = measure_examples(encoder, train, dataset.stats, loaded.context_limit)
    held, _ = measure_examples(encoder, held, dataset.stats, loaded.context_limit)
    if not train:
        raise AssistantError("no usable SFT examples for the first stage of sft-then-dpo; use --method dpo")
    run.report(TrainProgress("training", f"SFT stage on {dataset.stats.summary()}"))
    sft_run = Run(settings, run.path, run.profile, train, held, learned, dataset.stats, run.fingerprint, run.report)

    def done(run_: Run, model_: Any, loaded_: Any, outcome: StageOutcome) -> TrainResult:
        return TrainResult(settings.name, run.path, "sft-done", outcome.done, outcome.total,
                           dict(outcome.metrics, steps=outcome.done))

    return run_stage(sft_run, loaded, model, SFTObjective(sft_run, loaded, encoder), done, saved, should_stop,
                     stop_after)


def _preference_data(
    run: Run, train: Sequence[PreferencePair], held: Sequence[PreferencePair], data: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The adapter metadata's data section for a preference run (pairs, not conversations, are the unit)."""
    section = dict(data or data_section(run))
    section.update(
        method=run.settings.method,
        pairs=len(train),
        conversations=len({_group(pair) for pair in train}),
        turns=len(train),
    )
    held_out = dict(section.get("held_out") or {})
    held_out.update(pairs=len(held), sources=[pair.source for pair in held],
                    chats=sorted({pair.conversation_id for pair in held if pair.conversation_id is not None}),
                    conversations=len({_group(pair) for pair in held}))
    section["held_out"] = held_out
    return section
