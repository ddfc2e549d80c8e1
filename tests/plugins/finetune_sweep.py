"""The defaults sweep of docs/finetuning.md: synthetic tasks x training settings -> held-out accuracy, steps, time.

Not a test (pytest does not collect it): run it by hand, in the background, on the tiny random SmolVLM:

    ASSISTANT_HOME=/tmp/sweep python tests/plugins/finetune_sweep.py --out sweep.jsonl [--tasks ...] [--settings ...]

Each task gets a training file and a separate test file (other seeds); each setting trains an adapter on the
training file with `train_adapter` (what `assistant train --data FILE` calls) and is scored on the test file with
the validation code's exact match (the model's top token right at every position of the reply and its end
marker, which is when greedy decoding answers exactly that). One JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from test_finetune_support import TASKS, write_task_dataset  # noqa: E402

TRAIN_SIZE = 48
"""Examples per task file (the size of a small personal dataset); `assistant train` holds 20% out to validate."""
TEST_SIZE = 30
FAST = {"batch_size": 4, "grad_accum": 1}
"""Same result as the default 1 x 4 (the loss is summed over the step's tokens), faster on a CPU."""

SETTINGS: dict[str, dict[str, Any]] = {
    "text-lr2e-4": {"lr": 2e-4, "include_connector": False},
    "text-lr5e-3": {"lr": 5e-3, "include_connector": False},
    "conn-lr5e-3": {"lr": 5e-3, "include_connector": True},
    "conn-lr1e-2": {"lr": 1e-2, "include_connector": True},
    "conn-lr2e-2": {"lr": 2e-2, "include_connector": True},
    "conn-lr2e-2-p6": {"lr": 2e-2, "include_connector": True, "patience": 6},
    "vision-lr5e-3": {"lr": 5e-3, "include_vision": True},
    "defaults": {},
    "long": {"epochs": 20, "patience": 0},
}
for _lr in ("2e-3", "5e-3", "1e-2"):
    for _layers, _connector in (("text", False), ("conn", True)):
        SETTINGS[f"{_layers}-lr{_lr}-p3"] = {"lr": float(_lr), "include_connector": _connector}
        SETTINGS[f"{_layers}-lr{_lr}-long"] = {"lr": float(_lr), "include_connector": _connector, "epochs": 20,
                                               "patience": 0}
SETTINGS["text-lr5e-3-r64-long"] = {"lr": 5e-3, "include_connector": False, "rank": 64, "alpha": 128, "epochs": 20,
                                    "patience": 0}
SETTINGS["vision-lr5e-3-long"] = {"lr": 5e-3, "include_vision": True, "epochs": 20, "patience": 0}
SETTINGS["text-lr5e-3-cosine-long"] = {"lr": 5e-3, "include_connector": False, "schedule": "cosine", "epochs": 20,
                                       "patience": 0}
"""Named settings (TrainConfig fields) on top of the defaults; "defaults" is `assistant train` with no flags."""

_LOADED: dict[str, Any] = {}


def held_out_accuracy(name: str | None, test_file: Path) -> float | None:
    """Exact match on the test file (teacher-forced top-token match: what greedy decoding would answer)."""
    from assistant.adapters import activate_adapter
    from assistant.engine.engine import Engine
    from assistant.profiles import load_profile
    from assistant_plugins.finetune.collate import Encoder
    from assistant_plugins.finetune.dataset import DataSelection, build_dataset
    from assistant_plugins.finetune.modeling import load_for_training
    from assistant_plugins.finetune.validation import validate

    if not _LOADED:
        profile = load_profile("tiny-smolvlm")
        loaded = load_for_training(profile, four_bit=False)
        _LOADED.update(profile=profile, loaded=loaded, engine=Engine(loaded))
    loaded = _LOADED["loaded"]
    activate_adapter(_LOADED["engine"], name)
    dataset = build_dataset(None, DataSelection(data_file=str(test_file)))  # type: ignore[arg-type]
    encoder = Encoder(loaded, dataset.images.open, _LOADED["profile"].chat.system_prompt)
    return validate(0, loaded.model, loaded, encoder, dataset.examples, 4).accuracy


def run(task: str, setting: str, folder: Path, overrides: dict[str, Any], train_size: int = TRAIN_SIZE) -> dict[str, Any]:
    from assistant.adapters import adapter_dir, read_meta
    from assistant_plugins.finetune.dataset import DataSelection
    from assistant_plugins.finetune.trainer import TrainConfig, train_adapter

    spec = TASKS[task]
    train_file = write_task_dataset(folder, f"{task}-train{train_size}", spec, train_size // len(spec.answers), seed=11)
    test_file = write_task_dataset(folder, f"{task}-test", spec, TEST_SIZE // len(spec.answers), seed=12)
    name = f"sweep-{task}-{setting}" + (f"-n{train_size}" if train_size != TRAIN_SIZE else "")
    values = dict(FAST, **SETTINGS[setting])
    values.update(overrides)
    config = TrainConfig(name=name, profile="tiny-smolvlm", selection=DataSelection(data_file=str(train_file)),
                         overwrite=True, **values)
    started = time.perf_counter()
    result = train_adapter(config, progress=lambda event: event.phase == "eval" and print(
        f"{name}: {event.message}", flush=True))
    seconds = time.perf_counter() - started
    metrics = result.metrics
    curve = [(item["step"], item["accuracy"]) for item in (read_meta(adapter_dir(name)) or {}).get("validations", [])]
    return {
        "task": task, "setting": setting, "settings": values, "train_size": train_size, "chance": round(1 / len(spec.answers), 3),
        "base_accuracy": held_out_accuracy(None, test_file), "accuracy": held_out_accuracy(name, test_file),
        "steps": metrics.get("steps"), "planned_steps": metrics.get("planned_steps"),
        "best_step": metrics.get("best_step"), "train_s": round(seconds, 1),
        "val_accuracy": metrics.get("val_accuracy"), "val_curve": curve,
    }


def pad_training_images(seed: int = 0, max_pad: float = 0.15) -> None:
    """The augmentation experiment of docs/finetuning.md (not adopted): while the model trains, every image the
    encoder opens gets 0-15% of its width/height added on each side, repeating its edge pixels (a small shift and
    zoom that keeps every pixel: the count, colours and left/right stay as they were). Validation is untouched."""
    import numpy as np
    from PIL import Image

    from assistant_plugins.finetune import collate

    encode = collate.Encoder.encode
    rng = random.Random(seed)

    def pad(image: Any) -> Any:
        width, height = image.size
        left, right = (rng.randint(0, int(width * max_pad)) for _ in range(2))
        top, bottom = (rng.randint(0, int(height * max_pad)) for _ in range(2))
        pixels = np.pad(np.asarray(image.convert("RGB")), ((top, bottom), (left, right), (0, 0)), mode="edge")
        return Image.fromarray(pixels)

    def augmented(self: Any, examples: Any) -> Any:
        if not self.loaded.model.training:
            return encode(self, examples)
        opener = self.open_image
        self.open_image = lambda part: pad(opener(part))
        try:
            return encode(self, examples)
        finally:
            self.open_image = opener

    collate.Encoder.encode = augmented  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="JSON lines file (appended to).")
    parser.add_argument("--tasks", nargs="+", default=["brighter", "larger", "count"], choices=sorted(TASKS))
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=sorted(SETTINGS))
    parser.add_argument("--data", type=Path, default=Path("sweep-data"), help="Where the task files are written.")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="Override a TrainConfig field for every run (e.g. --set eval_split=0.2).")
    parser.add_argument("--train-size", type=int, default=TRAIN_SIZE, help="Examples in each training file.")
    parser.add_argument("--pad-images", action="store_true",
                        help="Augment training images by edge padding (pad_training_images; not a default).")
    args = parser.parse_args()
    overrides = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set)}
    # Import the whole plugin now: edits to its files while the sweep runs do not mix into later runs.
    import assistant_plugins.finetune.validation  # noqa: F401
    import assistant.engine.engine  # noqa: F401
    import assistant_plugins.finetune.formats  # noqa: F401
    import assistant_plugins.finetune.modeling  # noqa: F401
    import assistant_plugins.finetune.trainer  # noqa: F401

    if args.pad_images:
        pad_training_images()

    for setting in args.settings:
        for task in args.tasks:
            row = run(task, setting, args.data, overrides, args.train_size)
            if args.pad_images:
                row["pad_images"] = True
            with args.out.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
