"""DPO's pieces against independent computations: the reply log-probability (masked, padded, batched), the loss
and rewards, the metrics, and the reference as the same model with its LoRA layers off (restored exactly after)."""

from __future__ import annotations

import math
import random

import pytest
import torch

from assistant.conversation import Conversation, Message, ReplyMeta, TextPart
from assistant.engine.loading import load_model
from assistant.images import image_from_pil
from assistant.profiles import load_profile
from assistant_plugins.finetune.collate import IGNORE, Encoder
from assistant_plugins.finetune.dataset import ImageLibrary
from assistant_plugins.finetune.pairs import conversation_pairs
from assistant_plugins.finetune.preference import (
    adapter_disabled,
    dpo_loss,
    encode_pairs,
    evaluate_pairs,
    pair_logprobs,
    preference_metrics,
    reply_logprobs,
    sequence_logprobs,
)
from test_finetune_support import QUESTION, square


def test_sequence_logprobs_sums_the_labelled_tokens_only() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[IGNORE, IGNORE, 3, 4, IGNORE], [IGNORE, 1, 2, 6, 0]])
    expected = []
    for row in range(2):
        total = 0.0
        for position in range(1, 5):
            if labels[row, position] != IGNORE:  # token t is predicted at t - 1
                total += float(torch.log_softmax(logits[row, position - 1], -1)[labels[row, position]])
        expected.append(total)
    assert sequence_logprobs(logits, labels).tolist() == pytest.approx(expected, abs=1e-5)


def test_dpo_loss_and_rewards_match_the_formula() -> None:
    policy_c, policy_r = torch.tensor([-1.0, -4.0]), torch.tensor([-3.0, -2.0])
    ref_c, ref_r = torch.tensor([-2.0, -3.0]), torch.tensor([-2.0, -3.0])
    terms = dpo_loss(policy_c, policy_r, ref_c, ref_r, beta=0.5)
    # pair 1: chosen +1, rejected -1 -> logit 0.5 * 2 = 1; pair 2: chosen -1, rejected +1 -> -1
    assert terms.losses.tolist() == pytest.approx([math.log1p(math.exp(-1)), math.log1p(math.exp(1))])
    assert terms.chosen_rewards.tolist() == pytest.approx([0.5, -0.5])
    assert terms.rejected_rewards.tolist() == pytest.approx([-0.5, 0.5])
    same = dpo_loss(ref_c, ref_r, ref_c, ref_r)
    assert same.losses.tolist() == pytest.approx([math.log(2)] * 2)  # the untrained adapter: no preference


def test_preference_metrics() -> None:
    metrics = preference_metrics([(-1.0, -3.0), (-4.0, -2.0)], [(-2.0, -2.0), (-3.0, -3.0)], beta=0.5)
    assert metrics.pairs == 2 and metrics.accuracy == 0.5
    assert metrics.margin == pytest.approx(0.0) and metrics.chosen_reward == pytest.approx(0.0)
    assert metrics.loss == pytest.approx((math.log1p(math.exp(-1)) + math.log1p(math.exp(1))) / 2)
    assert metrics.preferred == 0.5
    tie = preference_metrics([(-1.0, -2.0)], [(-1.0, -2.0)])
    assert tie.accuracy == 0.0 and tie.margin == 0.0  # ties count as wrong, as TRL's rewards/accuracies
    assert preference_metrics([(-1e4, 0.0)], [(0.0, 0.0)]).loss == pytest.approx(1e3)  # no overflow
    with pytest.raises(ValueError):
        preference_metrics([], [])


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, shared_cache):
    mp = pytest.MonkeyPatch()
    mp.setenv("ASSISTANT_HOME", str(tmp_path_factory.mktemp("home")))
    mp.setenv("ASSISTANT_CACHE_DIR", str(shared_cache))
    try:
        yield load_model(load_profile("tiny-smolvlm"))
    finally:
        mp.undo()


def pairs_and_library():
    library = ImageLibrary()
    red = library.add_image(image_from_pil(square("red", random.Random(0)), "red.png"))
    conversation = Conversation(id=1, messages=[
        Message("user", [red, TextPart(QUESTION)]),
        Message("assistant", [TextPart("blue")], correction="red"),
        Message("user", [TextPart("Are you sure about that?")]),
        Message("assistant", [TextPart("yes")], rating=1,
                meta=ReplyMeta(extra={"rejected": [{"text": "no, it is a very different colour"}]})),
    ])
    return conversation_pairs(conversation), library


def test_reply_logprobs_on_the_tiny_model(loaded) -> None:
    from peft import LoraConfig, get_peft_model

    pairs, library = pairs_and_library()
    encoder = Encoder(loaded, library.open)
    base = pair_logprobs(loaded.model, encoder, pairs, batch_size=1)
    assert pair_logprobs(loaded.model, encoder, pairs, batch_size=2) == pytest.approx(base, abs=1e-4)  # padding

    # independently: the reply's tokens scored one by one from the full logits of the chosen side alone
    batch = encoder.encode([pairs[0].examples[0]])
    with torch.no_grad():
        logits = loaded.model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0]
    labels = batch["labels"][0]
    manual = sum(float(torch.log_softmax(logits[t - 1], -1)[labels[t]]) for t in range(1, len(labels))
                 if labels[t] != IGNORE)
    assert base[0][0] == pytest.approx(manual, abs=1e-4)
    assert int((labels != IGNORE).sum()) >= 2  # the reply and its end-of-turn marker

    model = get_peft_model(loaded.model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                    init_lora_weights=False))  # random B: not the base any more
    try:
        trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
        tuned = pair_logprobs(model, encoder, pairs)
        assert tuned != pytest.approx(base, abs=1e-3)
        with adapter_disabled(model):
            assert pair_logprobs(model, encoder, pairs) == pytest.approx(base, abs=1e-4)  # the reference
        assert pair_logprobs(model, encoder, pairs) == pytest.approx(tuned, abs=1e-5)  # restored
        assert {name for name, parameter in model.named_parameters() if parameter.requires_grad} == trainable

        model.train()
        logprobs = reply_logprobs(model, encode_pairs(encoder, pairs), loaded)
        reference = torch.tensor(base)
        terms = dpo_loss(logprobs[:2], logprobs[2:], reference[:, 0], reference[:, 1], beta=0.1)
        terms.losses.sum().backward()
        grads = [parameter.grad for name, parameter in model.named_parameters() if name in trainable]
        assert grads and all(grad is not None for grad in grads) and sum(float(g.abs().sum()) for g in grads) > 0
        assert model.training  # pair_logprobs kept the mode it found

        metrics = evaluate_pairs(model, encoder, pairs, beta=0.1)
        assert metrics.pairs == 2 and 0 <= metrics.accuracy <= 1
        assert metrics.margin == pytest.approx(
            sum(0.1 * ((tc - bc) - (tr - br)) for (tc, tr), (bc, br) in zip(tuned, base)) / 2, abs=1e-3)
    finally:
        model.unload()
