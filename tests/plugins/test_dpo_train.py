"""`assistant train --method dpo|sft-then-dpo` end to end: the learning proof (a TRL preference file imported and
trained with the real commands; the adapter's greedy answer becomes the chosen one on held-out images), resume
across the two stages of sft-then-dpo with the same result as an uninterrupted run, and the one-line errors."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from safetensors.torch import load_file

from assistant.adapters import adapter_dir, read_meta
from assistant.cli import main
from test_finetune_support import QUESTION, Task, square, write_task_dataset

COLOURS3 = Task("colour3", QUESTION, ("red", "green", "blue"), square)
"""The colour task with answers that are one token each in the tiny model's 640-token vocabulary."""


def write_preference_file(folder: Path, name: str, task: Task, per_answer: int, seed: int) -> Path:
    """A TRL preference jsonl (conversational form): the right answer chosen, one of the wrong ones rejected."""
    rng = random.Random(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for answer in task.answers:
        for index in range(per_answer):
            relative = f"images/{name}-{answer}-{index}.png"
            task.draw(answer, rng).save(folder / relative)
            wrong = rng.choice([other for other in task.answers if other != answer])
            records.append({
                "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": task.question}]}],
                "chosen": [{"role": "assistant", "content": [{"type": "text", "text": answer}]}],
                "rejected": [{"role": "assistant", "content": [{"type": "text", "text": wrong}]}],
                "images": [relative],
            })
    rng.shuffle(records)
    path = folder / f"{name}.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


@pytest.mark.slow
def test_dpo_adapter_answers_the_chosen_reply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The base has no preference (a random model: it never answers a colour); after DPO on 27 pairs the greedy
    answer is the chosen colour on held-out images, and the held-out pairs' reward accuracy and margin say so."""
    train_file = write_preference_file(tmp_path / "data", "train", COLOURS3, per_answer=10, seed=1)
    test_file = write_task_dataset(tmp_path / "data", "test", COLOURS3, per_answer=4, seed=2)  # the chosen answers
    assert main(["chats", "import", str(train_file), "--tag", "prefs"]) == 0
    assert main(["chats", "import", str(test_file), "--tag", "prefs-test"]) == 0
    capsys.readouterr()

    status = main(["train", "--name", "prefs", "--profile", "tiny-smolvlm", "--tag", "prefs", "--method", "dpo",
                   "--beta", "1", "--lr", "4e-3", "--epochs", "6", "--batch-size", "4", "--grad-accum", "1",
                   "--val-split", "0.1", "--patience", "0", "--seed", "0"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "training data: 30 preference pairs from 30 chats, 30 images" in err
    assert "reference log-probabilities of 30 pairs from the base model (adapter off)" in err
    assert "validation at step 0: loss 0.6931 · reward accuracy 0/3 (0%) · margin +0.000" in err
    assert "step 42/42" in err  # 27 training pairs, 4 a step, 6 epochs
    assert "adapter prefs saved in" in out and "reward accuracy 0% -> " in out

    meta = read_meta(adapter_dir("prefs"))
    metrics = meta["metrics"]
    assert meta["hyperparameters"]["method"] == "dpo" and meta["hyperparameters"]["beta"] == 1.0
    assert meta["data"]["pairs"] == 27 and meta["data"]["held_out"]["pairs"] == 3
    assert metrics["reward_accuracy_before"] == 0 and metrics["reward_margin_before"] == 0
    assert metrics["reward_accuracy"] == 1.0, metrics  # every held-out pair: chosen over rejected
    assert metrics["reward_margin"] > 1.0, metrics  # about 4 (beta 1: log-odds of the pair moved by that much)
    assert 0 <= metrics["base_preferred"] <= 1
    assert main(["adapters", "show", "prefs"]) == 0
    shown = capsys.readouterr().out
    assert "27 preference pairs (dpo) from 27 chats" in shown
    assert "validate  3 held-out preference pairs (split 0.1, grouped by chat)" in shown
    assert "reward accuracy 0% -> 100% · margin 0.000 -> " in shown

    assert main(["adapters", "eval", "prefs", "--tag", "prefs-test", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    base, tuned = report["base"], report["tuned"]
    assert base["total"] == tuned["total"] == 12
    assert base["exact_match"] <= 1 / 3, report  # no preference for the chosen answer: it never says it
    assert tuned["exact_match"] >= 0.75, report  # 1.0 measured (0.92-1.0 over seeds 0-2)


def text_pairs(folder: Path, count: int) -> Path:
    """A small text-only preference file (plain-string form): quick to train."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [{"prompt": f"Pick a colour for item {index}.", "chosen": "red", "rejected": "blue"} for index in range(count)]
    path = folder / "text.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def adapter_weights(name: str) -> dict:
    return load_file(str(adapter_dir(name) / "adapter_model.safetensors"))


@pytest.mark.slow
def test_sft_then_dpo_resumes_in_either_stage_with_the_same_result(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    data = text_pairs(tmp_path / "data", 4)
    common = ["--profile", "tiny-smolvlm", "--data", str(data), "--method", "sft-then-dpo", "--epochs", "2",
              "--batch-size", "2", "--grad-accum", "1", "--val-split", "0", "--lr", "2e-3", "--seed", "3"]
    assert main(["train", "--name", "whole", *common]) == 0
    out, err = capsys.readouterr()
    assert "SFT stage on 4 conversations" in err and "DPO stage on 4 preference pairs" in err
    assert "reference log-probabilities of 4 pairs from the SFT adapter" in err
    meta = read_meta(adapter_dir("whole"))
    assert meta["metrics"]["sft_steps"] == 4 and meta["metrics"]["steps"] == 4 and meta["status"] == "complete"

    assert main(["train", "--name", "pieces", *common, "--max-steps", "3"]) == 2  # stopped in the SFT stage
    assert "stopped at step 3/4" in capsys.readouterr().err
    assert main(["train", "--name", "pieces", "--resume", "--max-steps", "5"]) == 2  # stopped in the DPO stage
    assert "stopped at step 1/4" in capsys.readouterr().err
    assert main(["train", "--name", "pieces", "--resume"]) == 0
    capsys.readouterr()
    whole, pieces = adapter_weights("whole"), adapter_weights("pieces")
    assert whole.keys() == pieces.keys()
    for key in whole:
        assert (whole[key] - pieces[key]).abs().max() < 1e-5, key
    assert read_meta(adapter_dir("pieces"))["metrics"]["sft_steps"] == 4


def test_dpo_without_pairs_is_one_actionable_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = write_task_dataset(tmp_path / "data", "plain", COLOURS3, per_answer=1, seed=0)  # replies, no pairs
    assert main(["chats", "import", str(dataset)]) == 0
    capsys.readouterr()
    assert main(["train", "--name", "p", "--profile", "tiny-smolvlm", "--method", "dpo"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("error: no preference pairs: rate a reply down and regenerate, or correct one in the 3 "
                       "selected chats; or import a TRL preference file with `assistant chats import FILE.jsonl`")
    assert main(["train", "--name", "p", "--profile", "tiny-smolvlm", "--method", "dpo", "--data", str(dataset)]) == 2
    assert "holds no preference pairs" in capsys.readouterr().err
    assert main(["train", "--name", "p", "--profile", "tiny-smolvlm", "--method", "dpo", "--corrected"]) == 2
    assert "--method dpo learns from every preference pair" in capsys.readouterr().err
    assert main(["train", "--name", "p", "--method", "dpo", "--beta", "0"]) == 2
    assert "--beta" in capsys.readouterr().err
    assert main(["train", "--name", "p", "--method", "ipo"]) == 2
    assert "--method" in capsys.readouterr().err


def test_slash_train_takes_the_method_and_reports_both_stages() -> None:
    from assistant.errors import AssistantError
    from assistant_plugins.finetune.slash import ProgressNotifier, parse_train_argument
    from assistant_plugins.finetune.trainer import TrainProgress

    config = parse_train_argument("--name p --method sft-then-dpo --beta 0.5 --tag mine")
    assert (config.method, config.beta, config.selection.tag) == ("sft-then-dpo", 0.5, "mine")
    with pytest.raises(AssistantError, match="/train: .*--method"):
        parse_train_argument("--name p --method ipo")

    seen: list[str] = []
    notifier = ProgressNotifier(lambda message, severity: seen.append(message))
    for stage in range(2):  # sft-then-dpo: the DPO stage counts its steps from 0 again
        for step in range(1, 5):
            notifier(TrainProgress("training", step=step, total_steps=4, loss=0.5))
    assert len(seen) == 6 and all(line.startswith(("step 1/4", "step 2/4", "step 3/4")) for line in seen)
