"""The fine-tuning commands end to end: train, adapters list/show/eval/delete, --data files, the TUI's /train."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from assistant.cli import main
from assistant.errors import AssistantError
from assistant.plugins import create_plugin_manager
from assistant.testing import SlashRecorder
from assistant.store import Store
from assistant_plugins.finetune.commands import ProgressPrinter, progress_line
from assistant_plugins.finetune.trainer import TrainProgress
from test_finetune_support import colour_chats, write_colour_dataset

SMALL = ["--profile", "tiny-smolvlm", "--epochs", "1", "--batch-size", "2", "--grad-accum", "1", "--lr", "1e-3"]


def saved_colour_chats(count: int) -> list[int]:
    with Store.open_default() as store:
        return colour_chats(store, count)


def test_train_without_chats_is_one_actionable_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--name", "nothing", "--profile", "tiny-smolvlm"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: no chats saved to train on;") and "assistant chats import" in err[-1]
    assert main(["train", "--name", "bad name", "--profile", "tiny-smolvlm"]) == 2
    assert "not a usable adapter name" in capsys.readouterr().err
    assert main(["train", "--name", "x", "--data", "f.jsonl", "--tag", "t"]) == 2
    assert "cannot be combined" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_train_4bit_on_cpu_says_it_needs_cuda(capsys: pytest.CaptureFixture[str]) -> None:
    saved_colour_chats(2)
    assert main(["train", "--name", "q", "--4bit", *SMALL]) == 2
    assert "--4bit needs a CUDA GPU" in capsys.readouterr().err


def test_train_list_show_eval_delete(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["adapters", "list"]) == 0
    assert "no adapters yet" in capsys.readouterr().out
    chats = saved_colour_chats(5)
    assert main(["train", "--name", "mine", "--tag", "colours", "--eval-split", "0.2", *SMALL]) == 0
    out, err = capsys.readouterr()
    assert "training data: 5 conversations, 5 assistant turns, 5 images" in err
    assert "step 2/2" in err and "ETA" in err
    assert "adapter mine saved in" in out and "val loss" in out and "--adapter mine" in out

    assert main(["adapters", "list"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("mine") and "complete" in line and "tiny-smolvlm" in line

    assert main(["adapters", "show", "mine"]) == 0
    shown = capsys.readouterr().out
    assert "base      tiny-smolvlm (profile tiny-smolvlm)" in shown
    assert "data      tag 'colours': 4 conversations, 4 turns, 4 images" in shown
    assert "lr=0.001" in shown and "eval_loss=" in shown

    # default: the chat held out when training
    assert main(["adapters", "eval", "mine", "--show"]) == 0
    out = capsys.readouterr().out
    assert "adapter mine on 1 conversations (1 replies)" in out
    assert "exact match" in out and "expected" in out and "loss" in out
    assert main(["adapters", "eval", "mine", "--chats", f"{chats[0]}-{chats[2]}"]) == 0
    assert "on 3 conversations" in capsys.readouterr().out

    assert main(["adapters", "delete", "mine", "--yes"]) == 0
    assert main(["adapters", "show", "mine"]) == 2
    assert "no adapter named 'mine'" in capsys.readouterr().err


def test_train_straight_from_a_dataset_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_colour_dataset(tmp_path, "set", per_colour=1, seed=3)
    assert main(["train", "--name", "from-file", "--data", str(data), "--eval-split", "0.25", *SMALL]) == 0
    assert "training data: 4 conversations" in capsys.readouterr().err
    with Store.open_default() as store:
        assert store.list_conversations() == []  # nothing was imported
    assert main(["adapters", "eval", "from-file", "--json"]) == 0
    assert '"total": 1' in capsys.readouterr().out  # the held-out line of the file


def test_resume_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    saved_colour_chats(4)
    assert main(["train", "--name", "chunked", "--tag", "colours", "--eval-split", "0", "--max-steps", "1",
                 *SMALL]) == 2
    assert "stopped at step 1/2; continue with `assistant train --name chunked --resume`" in capsys.readouterr().err
    assert main(["adapters", "list"]) == 0
    assert "incomplete (step 1)" in capsys.readouterr().out
    assert main(["ask", "--profile", "tiny-smolvlm", "--adapter", "chunked", "hi"]) == 2
    assert "not finished" in capsys.readouterr().err
    assert main(["train", "--name", "chunked", "--resume"]) == 0
    assert "resuming at step 1/2" in capsys.readouterr().err
    assert main(["adapters", "eval", "chunked"]) == 2
    assert "has no held-out chats" in capsys.readouterr().err


def test_progress_printer_lines() -> None:
    event = TrainProgress("training", step=12, total_steps=60, epoch=1, epochs=3, loss=1.23456, samples_per_s=3.21,
                          eta_s=75)
    assert progress_line(event, width=10) == (
        "step 12/60 [##........] 20% · epoch 1/3 · loss 1.2346 · 3.2 samples/s · ETA 1:15")
    validated = TrainProgress("training", step=12, total_steps=60, loss=1.0, eval_loss=0.5, eval_accuracy=0.85)
    assert "loss 1.0000 · val 0.5000 85% · ETA" in progress_line(validated)
    stream = io.StringIO()
    printer = ProgressPrinter(stream)
    for step in range(1, 41):
        printer(TrainProgress("training", step=step, total_steps=40, loss=1.0))
    printer(TrainProgress("done", "adapter saved"))
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("step 1/40") and lines[-1].startswith("step 40/40")
    assert len(lines) == 21  # the first step, every second one, the last: not one line per step


def test_train_slash_command_and_trainer_registration() -> None:
    manager = create_plugin_manager(load_entry_points=False)
    commands = {command.name: command for command in manager.collect("register_slash_commands")}
    trainers = {trainer.name: trainer for trainer in manager.collect("register_trainers")}
    assert "lora" in trainers and "train" in commands
    saved_colour_chats(4)
    context = SlashRecorder(plugin_manager=manager)  # the authors' kit: background work runs at once
    commands["train"].run(context, "--name slashed --tag colours --eval-split 0 " + " ".join(SMALL))
    messages = [message for message, _ in context.notes]
    assert messages[0].startswith("training adapter slashed in the background…")
    assert any(message.startswith("training data: 4 conversations") for message in messages)
    assert messages[-1].startswith("adapter slashed is ready") and "/adapter slashed" in messages[-1]
    with pytest.raises(AssistantError, match="/train: No such option .--colour."):
        commands["train"].run(context, "--name x --colour red")
    with pytest.raises(AssistantError, match="usage: /train --name NAME"):
        commands["train"].run(context, "")


def test_cli_side_modules_stay_light() -> None:
    """`assistant --help`, `chats import` and `adapters list` must not pay for torch: heavy imports are lazy."""
    import json
    import subprocess
    import sys

    modules = ["assistant.adapters", "assistant_plugins.finetune.plugin", "assistant_plugins.finetune.commands",
               "assistant_plugins.finetune.slash", "assistant_plugins.finetune.trainer",
               "assistant_plugins.finetune.formats", "assistant_plugins.finetune.dataset",
               "assistant_plugins.finetune.checkpoint", "assistant_plugins.finetune.evaluate"]
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps([m for m in ('torch', 'transformers', 'peft', 'textual') if m in sys.modules]))\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(output.strip().splitlines()[-1]) == []


def test_train_slash_status_and_stop() -> None:
    from assistant_plugins.finetune import slash

    saved_colour_chats(4)
    manager = create_plugin_manager(load_entry_points=False)
    train = {command.name: command for command in manager.collect("register_slash_commands")}["train"]

    class StoppingContext(SlashRecorder):
        """Asks for the status, then stops the run, when the first progress notification arrives."""

        def notify(self, message: str, severity: str = "information") -> None:
            super().notify(message, severity)
            if message.startswith("step 1/2"):
                train.run(self, "status paused")
                train.run(self, "stop paused")

    context = StoppingContext(plugin_manager=manager)
    train.run(context, "status")
    assert context.notes[-1][0].startswith("no training is running")
    train.run(context, "--name paused --tag colours --eval-split 0 " + " ".join(SMALL))
    messages = [message for message, _ in context.notes]
    assert any(message.startswith("paused: step 1/2") for message in messages)
    assert any(message.startswith("stopping paused after the current step") for message in messages)
    assert messages[-1] == "stopped at step 1/2; continue with `assistant train --name paused --resume`"
    assert slash.RUNNING == {}
