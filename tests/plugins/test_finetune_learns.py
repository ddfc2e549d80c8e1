"""The proof that training works: synthetic image tasks, imported and trained with the real commands on the tiny
random SmolVLM, go from chance to high exact match on held-out images: the colour task with explicit settings,
a task of the defaults sweep (docs/finetuning.md) with `assistant train` and no tuning flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.cli import main
from test_finetune_support import COLOURS, QUESTION, TASKS, write_colour_dataset, write_task_dataset

CHANCE = 1 / len(COLOURS)


@pytest.mark.slow
def test_adapter_learns_the_colour_of_the_square(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train_file = write_colour_dataset(tmp_path / "data", "train", per_colour=16, seed=1)
    test_file = write_colour_dataset(tmp_path / "data", "test", per_colour=5, seed=2)
    assert main(["chats", "import", str(train_file), "--tag", "colours-train"]) == 0
    assert main(["chats", "import", str(test_file), "--tag", "colours-test"]) == 0
    capsys.readouterr()

    status = main(["train", "--name", "colours", "--profile", "tiny-smolvlm", "--tag", "colours-train",
                   "--epochs", "3", "--lr", "2e-3", "--batch-size", "4", "--grad-accum", "1", "--seed", "0",
                   "--val-split", "0.1", "--patience", "0"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "training data: 64 conversations, 64 assistant turns, 64 images" in err
    assert "step 45/45" in err and "samples/s" in err  # 58 chats after the 10% split: 15 steps an epoch
    assert "adapter colours saved in" in out

    assert main(["adapters", "eval", "colours", "--tag", "colours-test", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    base, tuned = report["base"], report["tuned"]
    assert base["total"] == tuned["total"] == 20
    assert base["exact_match"] <= CHANCE + 0.15, report  # a random model is at (or below) chance
    assert tuned["exact_match"] >= 0.75, report
    assert tuned["loss"] < base["loss"]

    # the adapter answers through the ordinary `ask` path too
    case = report["cases"][0]
    first_chat = int(case["source"].split()[-1])
    lines = test_file.read_text().splitlines()
    record = json.loads(lines[first_chat - 65])  # the 64 training chats came first
    assert record["messages"][1]["content"][0]["text"] == case["expected"]
    image = test_file.parent / record["images"][0]
    assert main(["ask", "--profile", "tiny-smolvlm", "--adapter", "colours", "-i", str(image), QUESTION]) == 0
    assert capsys.readouterr().out.strip() == case["adapter"]


@pytest.mark.slow
def test_default_settings_learn_which_half_is_brighter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A sweep task (docs/finetuning.md) trained with no tuning flags: validation, best step and early stopping."""
    task = TASKS["brighter"]
    train_file = write_task_dataset(tmp_path / "data", "train", task, per_answer=16, seed=21)
    test_file = write_task_dataset(tmp_path / "data", "test", task, per_answer=10, seed=22)
    assert main(["chats", "import", str(train_file), "--tag", "brighter-train"]) == 0
    assert main(["chats", "import", str(test_file), "--tag", "brighter-test"]) == 0
    capsys.readouterr()

    status = main(["train", "--name", "brighter", "--profile", "tiny-smolvlm", "--tag", "brighter-train"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "training data: 32 conversations, 32 assistant turns, 32 images" in err
    assert "validation at step 0: loss" in err and "accuracy" in err  # 6 of the 32 chats held out (20%)
    assert "adapter brighter saved in" in out and "kept step" in out

    assert main(["adapters", "show", "brighter"]) == 0
    shown = capsys.readouterr().out
    assert "validate  6 held-out conversations (split 0.2, grouped by chat)" in shown
    assert "kept the best validation: step" in shown and "val accuracy" in shown

    assert main(["adapters", "eval", "brighter", "--tag", "brighter-test", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    base, tuned = report["base"], report["tuned"]
    assert base["total"] == tuned["total"] == 20
    assert base["exact_match"] <= 1 / len(task.answers) + 0.15, report
    assert tuned["exact_match"] >= 0.85, report

    case = report["cases"][0]
    record = json.loads(test_file.read_text().splitlines()[int(case["source"].split()[-1]) - 33])
    image = test_file.parent / record["images"][0]
    assert main(["ask", "--profile", "tiny-smolvlm", "--adapter", "brighter", "-i", str(image), task.question]) == 0
    assert capsys.readouterr().out.strip() == case["adapter"]
