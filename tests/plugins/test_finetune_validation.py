"""Validation while training: the split, the best-checkpoint rule, early stopping, the step budget, --val-data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from assistant.adapters import META_FILE, adapter_dir
from assistant.cli import main
from assistant.conversation import Message, TextPart
from assistant.store import Store
from assistant_plugins.finetune.checkpoint import latest_checkpoint
from assistant_plugins.finetune.dataset import DataSelection, Example
from assistant_plugins.finetune.trainer import (
    MAX_EPOCHS,
    MIN_EPOCHS,
    TrainConfig,
    auto_epochs,
    auto_eval_every,
    learning_rate,
    train_adapter,
)
from assistant_plugins.finetune import validation
from assistant_plugins.finetune.validation import EarlyStopping, Validation, is_short, scored
from test_finetune_support import colour_chats, write_colour_dataset

SMALL = ["--profile", "tiny-smolvlm", "--epochs", "1", "--batch-size", "2", "--grad-accum", "1", "--lr", "1e-3"]


def test_the_best_validation_is_the_most_accurate_then_the_lowest_loss() -> None:
    assert Validation(1, 2.0, correct=3, scored=4).better_than(Validation(0, 1.0, correct=2, scored=4))
    assert Validation(1, 1.0, correct=2, scored=4).better_than(Validation(0, 1.5, correct=2, scored=4))
    assert not Validation(1, 1.49995, correct=2, scored=4).better_than(Validation(0, 1.5, correct=2, scored=4))
    assert Validation(1, 0.5).better_than(Validation(0, 0.7))  # long replies only: the loss decides
    assert Validation(0, 0.5).better_than(None)
    assert Validation(3, 0.5, correct=1, scored=2).accuracy == 0.5 and Validation(3, 0.5).accuracy is None


def test_early_stopping_counts_evaluations_without_progress() -> None:
    stopper = EarlyStopping(patience=2)
    assert stopper.update(Validation(1, 1.0))
    assert not stopper.update(Validation(2, 1.1)) and not stopper.exhausted
    assert stopper.update(Validation(3, 0.9)) and stopper.stale == 0
    assert stopper.update(Validation(4, 0.895))  # a new best to keep, but not progress (less than 1% lower)
    assert not stopper.exhausted and stopper.stale == 1
    assert not stopper.update(Validation(5, 0.9))
    assert stopper.exhausted and stopper.best is not None and stopper.best.step == 4
    # with accuracy measured, a higher accuracy is progress whatever the loss
    accurate = EarlyStopping(patience=1)
    accurate.update(Validation(1, 1.0, correct=1, scored=4))
    assert accurate.update(Validation(2, 1.5, correct=2, scored=4)) and accurate.stale == 0
    assert accurate.update(Validation(3, 1.4, correct=2, scored=4)) and accurate.stale == 0  # 7% lower loss
    assert accurate.update(Validation(4, 1.399, correct=2, scored=4))  # kept, yet no progress
    assert accurate.exhausted and accurate.best is not None and accurate.best.step == 4
    never = EarlyStopping(patience=0)
    never.update(Validation(1, 1.0))
    for step in range(2, 10):
        never.update(Validation(step, 2.0))
    assert not never.exhausted


def test_only_short_replies_are_scored() -> None:
    assert is_short("red") and is_short("two dots here") and not is_short("") and not is_short("a " * 9)

    def example(reply: str) -> Example:
        return Example([Message("user", [TextPart("q")]), Message("assistant", [TextPart(reply)])], [1], "x")

    assert scored(example("blue")) and scored(example("left"))
    assert not scored(example("a long explanation " * 5))

def test_step_budget_follows_the_data_size() -> None:
    assert auto_epochs(1) == MAX_EPOCHS and auto_epochs(100_000) == MIN_EPOCHS
    assert auto_epochs(40) >= auto_epochs(80) >= auto_epochs(400)
    assert auto_eval_every(5) == 1 and auto_eval_every(100) == 10
    # cosine decays from the peak after the warm-up to near zero at the last step, never zero on a running step
    rates = [learning_rate(step, 20, 1.0, 2, "cosine") for step in range(20)]
    assert rates[:3] == [0.5, 1.0, 1.0] and all(b <= a for a, b in zip(rates[2:], rates[3:])) and 0 < rates[-1] < 0.01


@pytest.fixture
def store() -> Store:
    with Store.open_default() as opened:
        yield opened


def test_early_stopping_keeps_the_best_step_not_the_last(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    colour_chats(store, 8)
    # The training is real; the validation figures are scripted so that the best is step 2 for sure: the loop must
    # keep step 2's weights and stop two validations later (validate() itself is tested on real models below).
    losses = {0: 3.0, 1: 2.0, 2: 1.0, 3: 1.5, 4: 1.6, 5: 0.5}
    monkeypatch.setattr(validation, "validate", lambda step, *args: Validation(step, losses[step]))
    values = dict(profile="tiny-smolvlm", selection=DataSelection(tag="colours"), epochs=6, lr=1e-2, batch_size=2,
                  grad_accum=1, eval_split=0.25, eval_every=1, patience=2, seed=0)
    events = []
    result = train_adapter(TrainConfig(name="drift", **values), progress=events.append, store=store)
    metrics = result.metrics
    assert result.status == "complete" and metrics["stopped_early"] and metrics["planned_steps"] == 18
    assert metrics["best_step"] == 2 and metrics["steps"] == 4 and metrics["eval_loss"] == 1.0
    assert metrics["eval_loss_before"] == 3.0
    messages = [event.message for event in events if event.phase == "eval"]
    assert "validation at step 2: loss 1.0000 · best so far" in messages
    assert "validation at step 4: loss 1.6000 · best: step 2" in messages
    assert messages[-1] == "stopping early at step 4/18: no progress in 2 validations (best at step 2)"
    meta = json.loads((adapter_dir("drift") / META_FILE).read_text())
    assert [item["loss"] for item in meta["validations"]] == [3.0, 2.0, 1.0, 1.5, 1.6]
    best, steps = 2, 4
    saved = load_file(str(adapter_dir("drift") / "adapter_model.safetensors"))

    # the same run paused at the best step has exactly the weights the finished adapter kept
    paused = train_adapter(TrainConfig(name="paused", stop_after_steps=best, **values), store=store)
    assert paused.status == "stopped"
    checkpoint = load_file(str(latest_checkpoint(adapter_dir("paused")) / "adapter.safetensors"))
    assert saved.keys() == checkpoint.keys()
    assert all(torch.equal(saved[key], checkpoint[key]) for key in saved)
    # and resuming it ends where the uninterrupted run ended, with the same weights
    resumed = train_adapter(TrainConfig(name="paused", resume=True), store=store)
    assert resumed.metrics["best_step"] == best and resumed.metrics["steps"] == steps
    again = load_file(str(adapter_dir("paused") / "adapter_model.safetensors"))
    assert all(torch.equal(saved[key], again[key]) for key in saved)


def test_val_data_file_validates_and_is_what_eval_uses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = write_colour_dataset(tmp_path, "train", per_colour=1, seed=3)
    held = write_colour_dataset(tmp_path, "held", per_colour=1, seed=4)
    assert main(["train", "--name", "v", "--data", str(train), "--val-data", str(held), *SMALL]) == 0
    out, err = capsys.readouterr()
    assert "training data: 4 conversations" in err
    assert "validation at step 0: loss" in err and "accuracy 0/4" in err  # the random base model: never right
    assert "val loss" in out and "kept step 2" in out
    assert main(["adapters", "show", "v"]) == 0
    shown = capsys.readouterr().out
    assert f"validate  4 conversations from {held}" in shown
    assert "training  2 of 2 steps (1 epochs planned); kept the best validation: step 2" in shown
    assert "step: val loss/accuracy — 0: " in shown
    assert main(["adapters", "eval", "v", "--json"]) == 0
    assert '"total": 4' in capsys.readouterr().out  # the --val-data file, not the training file


def test_val_split_zero_turns_validation_off(capsys: pytest.CaptureFixture[str]) -> None:
    with Store.open_default() as store:
        colour_chats(store, 4)
    assert main(["train", "--name", "none", "--tag", "colours", "--val-split", "0", *SMALL]) == 0
    out, err = capsys.readouterr()
    assert "validation" not in err and "val loss" not in out
    assert main(["adapters", "show", "none"]) == 0
    assert "validate  none (trained with --val-split 0)" in capsys.readouterr().out
