"""DPO's pieces: the log-probability of a reply given its prompt, the loss, and reward accuracy and margin.

Implemented here rather than through TRL's DPOTrainer: that needs `datasets` (and pandas, pyarrow) and its own
Trainer loop, while our adapters are peft LoRA layers we switch through `peft.functional`, our labels are masked
to the reply tokens by our own renderer (collate.py), and checkpoints/resume/validation are ours. The loss itself
is a few lines (Rafailov et al. 2023, eq. 7), and TRL's metrics are reproduced with the same names and meaning.

The reference model is the policy with its LoRA layers switched off (`adapter_disabled`): no second copy of the
model is ever loaded. Heavy imports happen inside the functions.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Iterator, Sequence

if TYPE_CHECKING:
    from assistant.engine.loading import LoadedModel

    from .collate import Encoder
    from .pairs import PreferencePair

DEFAULT_BETA = 0.1
"""How far the policy may move from the reference (TRL's default)."""


def sequence_logprobs(logits: Any, labels: Any) -> Any:
    """Summed log-probability of the labelled tokens of each row: logits (B, T, V), labels (B, T) with IGNORE
    (-100) on the tokens not scored. Label t is predicted by the logits at t-1."""
    import torch

    from .collate import IGNORE

    logits = logits[:, :-1, :].float()
    targets = labels[:, 1:].to(logits.device)
    scored = targets != IGNORE
    picked = torch.gather(logits, -1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    token_logprobs = picked - torch.logsumexp(logits, dim=-1)
    return (token_logprobs * scored).sum(-1)


def reply_logprobs(model: Any, batch: Any, loaded: "LoadedModel | None" = None) -> Any:
    """log p(reply | prompt) per row of an encoded batch (`Encoder.encode`: its `labels` mark the reply tokens,
    end-of-turn marker included): a (B,) tensor, with gradients unless called under `torch.no_grad()`."""
    from .modeling import autocast

    inputs = dict(batch)
    labels = inputs.pop("labels")
    context = autocast(loaded) if loaded is not None else contextlib.nullcontext()
    with context:
        logits = model(**inputs, use_cache=False).logits
    return sequence_logprobs(logits, labels)


@dataclass
class DPOTerms:
    """Per-pair loss and implicit rewards (beta * (log pi - log ref)) of one batch of pairs."""

    losses: Any
    chosen_rewards: Any
    rejected_rewards: Any


def dpo_loss(
    policy_chosen: Any, policy_rejected: Any, reference_chosen: Any, reference_rejected: Any,
    beta: float = DEFAULT_BETA,
) -> DPOTerms:
    """The sigmoid DPO loss per pair: -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))).

    Arguments are (B,) tensors of summed reply log-probabilities (`reply_logprobs`); the references carry no
    gradient. The rewards are detached (for metrics only).
    """
    import torch

    chosen = policy_chosen - reference_chosen.to(policy_chosen.device)
    rejected = policy_rejected - reference_rejected.to(policy_rejected.device)
    losses = -torch.nn.functional.logsigmoid(beta * (chosen - rejected))
    return DPOTerms(losses, (beta * chosen).detach(), (beta * rejected).detach())


@dataclass
class PreferenceMetrics:
    """What DPO reports on a set of pairs (TRL's rewards/accuracies and rewards/margins, and the loss)."""

    pairs: int
    accuracy: float
    """Share of pairs whose chosen reply gets the higher reward (the policy moved it up relative to the rejected
    one, compared with the reference); ties count as wrong, so the untrained adapter scores 0."""
    margin: float
    """Mean of chosen reward - rejected reward."""
    loss: float
    chosen_reward: float
    rejected_reward: float
    preferred: float
    """Share of pairs where the policy itself gives the chosen reply the higher log-probability."""

    def describe(self) -> str:
        return (f"reward accuracy {self.accuracy:.0%} · margin {self.margin:+.3f} · loss {self.loss:.4f} "
                f"({self.pairs} pairs)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def preference_metrics(
    policy: Sequence[tuple[float, float]], reference: Sequence[tuple[float, float]], beta: float = DEFAULT_BETA
) -> PreferenceMetrics:
    """Metrics from (chosen, rejected) log-probabilities of the same pairs under the policy and the reference."""
    import math

    if len(policy) != len(reference) or not policy:
        raise ValueError("preference_metrics needs the same, non-empty list of pairs for policy and reference")
    chosen = [beta * (pc - rc) for (pc, _), (rc, _) in zip(policy, reference)]
    rejected = [beta * (pr - rr) for (_, pr), (_, rr) in zip(policy, reference)]
    margins = [c - r for c, r in zip(chosen, rejected)]
    losses = [math.log1p(math.exp(-m)) if m > -30 else -m for m in margins]  # -log sigmoid(m), overflow-safe
    count = len(margins)
    return PreferenceMetrics(
        pairs=count,
        accuracy=sum(1 for m in margins if m > 0) / count,
        margin=sum(margins) / count,
        loss=sum(losses) / count,
        chosen_reward=sum(chosen) / count,
        rejected_reward=sum(rejected) / count,
        preferred=sum(1 for pc, pr in policy if pc > pr) / count,
    )


@contextlib.contextmanager
def adapter_disabled(model: Any) -> Iterator[Any]:
    """Run `model` as its base: every LoRA layer passes its input through, then is restored exactly as it was
    (enabled or not, and which weights were trainable). Works on a PeftModel and on a model with adapters
    injected through peft.functional (assistant/engine/lora.py)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [module for module in model.modules() if isinstance(module, BaseTunerLayer)]
    states = [(layer, layer.disable_adapters) for layer in layers]
    trainable = [(parameter, parameter.requires_grad) for layer in layers for parameter in layer.parameters()]
    try:
        for layer in layers:
            layer.enable_adapters(False)
        yield model
    finally:
        for layer, disabled in states:
            layer.enable_adapters(not disabled)
        for parameter, flag in trainable:
            parameter.requires_grad_(flag)


def encode_pairs(encoder: "Encoder", pairs: Sequence["PreferencePair"]) -> Any:
    """One batch of 2 * len(pairs) rows: every chosen reply, then every rejected one (labels on the replies)."""
    return encoder.encode([pair.examples[0] for pair in pairs] + [pair.examples[1] for pair in pairs])


def pair_logprobs(
    model: Any, encoder: "Encoder", pairs: Sequence["PreferencePair"], batch_size: int = 1,
) -> list[tuple[float, float]]:
    """(log p(chosen), log p(rejected)) of every pair under `model` as it is (eval mode, no gradients; the
    model's train/eval mode is kept). Wrap in `adapter_disabled(model)` for the reference."""
    import torch

    loaded = encoder.loaded
    results: list[tuple[float, float]] = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(pairs), max(1, batch_size)):
                chunk = pairs[start : start + max(1, batch_size)]
                values = reply_logprobs(model, encode_pairs(encoder, chunk).to(loaded.device), loaded).tolist()
                half = len(chunk)
                results.extend(zip(values[:half], values[half:]))
    finally:
        model.train(was_training)
    return results


def evaluate_pairs(
    model: Any, encoder: "Encoder", pairs: Sequence["PreferencePair"], beta: float = DEFAULT_BETA,
    batch_size: int = 1, reference: Sequence[tuple[float, float]] | None = None,
) -> PreferenceMetrics:
    """Reward accuracy and margin of the adapter active in `model` over the base (the same model with its
    adapters disabled) on `pairs`; pass `reference` when the base's log-probabilities are already known."""
    if reference is None:
        with adapter_disabled(model):
            reference = pair_logprobs(model, encoder, pairs, batch_size)
    policy = pair_logprobs(model, encoder, pairs, batch_size)
    return preference_metrics(policy, reference, beta)
