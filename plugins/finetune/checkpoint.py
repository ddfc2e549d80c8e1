"""Training checkpoints as safetensors + JSON (never pickle): adapter weights, optimizer, RNG and loop state.

A checkpoint is a folder `checkpoints/step-NNNNNN/` written under a temporary name and renamed when complete,
so a crash while saving leaves the previous checkpoint intact. Resuming from one restores everything the
following steps depend on, so the run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from assistant.adapters import CHECKPOINTS_DIR, checkpoint_steps

ADAPTER_FILE = "adapter.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
RNG_FILE = "rng.safetensors"
STATE_FILE = "trainer_state.json"
BEST_FILE = "best.safetensors"
"""The adapter weights of the best validation so far (what the finished adapter will be)."""
KEEP = 2
"""Checkpoints kept (the newest ones)."""


def checkpoint_dir(adapter_path: Path, step: int) -> Path:
    return Path(adapter_path) / CHECKPOINTS_DIR / f"step-{step:06d}"


def latest_checkpoint(adapter_path: Path) -> Path | None:
    steps = checkpoint_steps(Path(adapter_path))
    return checkpoint_dir(adapter_path, steps[-1]) if steps else None


def optimizer_to_safetensors(optimizer: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """(tensors, metadata) of an optimizer's state dict: per-parameter tensors flattened, groups as JSON."""
    import torch

    state = optimizer.state_dict()
    tensors: dict[str, Any] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"state.{index}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    metadata = {"param_groups": json.dumps(state["param_groups"]), "scalars": json.dumps(scalars)}
    return tensors, metadata


def optimizer_from_safetensors(tensors: dict[str, Any], metadata: dict[str, str]) -> dict[str, Any]:
    """The inverse of optimizer_to_safetensors: a state dict for `optimizer.load_state_dict`."""
    groups = json.loads(metadata["param_groups"])
    for group in groups:
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = tensor
    for index, values in json.loads(metadata.get("scalars", "{}")).items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": groups}


def rng_tensors() -> dict[str, Any]:
    import torch

    tensors = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for index, value in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{index}"] = value
    return tensors


def restore_rng(tensors: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(tensors["cpu"])
    if torch.cuda.is_available():
        states = [tensors[f"cuda.{index}"] for index in range(torch.cuda.device_count()) if f"cuda.{index}" in tensors]
        if states:
            torch.cuda.set_rng_state_all(states)


def save_checkpoint(
    adapter_path: Path,
    step: int,
    adapter_state: dict[str, Any],
    optimizer: Any,
    rng: dict[str, Any],
    state: dict[str, Any],
    best_state: dict[str, Any] | None = None,
) -> Path:
    """Write checkpoint `step` atomically and drop all but the newest KEEP; returns its folder.

    `best_state`: the adapter weights of the best validation so far, kept with the checkpoint for `--resume`.
    """
    from safetensors.torch import save_file

    final = checkpoint_dir(adapter_path, step)
    temporary = final.with_name(f".{final.name}.incomplete")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    save_file({key: value.detach().to("cpu").contiguous() for key, value in adapter_state.items()},
              str(temporary / ADAPTER_FILE))
    tensors, metadata = optimizer_to_safetensors(optimizer)
    save_file(tensors, str(temporary / OPTIMIZER_FILE), metadata=metadata)
    save_file({key: value.contiguous() for key, value in rng.items()}, str(temporary / RNG_FILE))
    if best_state is not None:
        save_file({key: value.detach().to("cpu").contiguous() for key, value in best_state.items()},
                  str(temporary / BEST_FILE))
    (temporary / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(temporary, final)
    for old in checkpoint_steps(Path(adapter_path))[:-KEEP]:
        shutil.rmtree(checkpoint_dir(adapter_path, old), ignore_errors=True)
    return final


def read_state(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / STATE_FILE).read_text(encoding="utf-8"))


def load_checkpoint(folder: Path, device: str = "cpu") -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(adapter weights, optimizer state dict, RNG tensors, loop state) of a checkpoint folder."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    folder = Path(folder)
    adapter = load_file(str(folder / ADAPTER_FILE), device=device)
    # Optimizer tensors load on the CPU: load_state_dict moves moments to the parameters' device and keeps
    # AdamW's `step` counters on the CPU, where non-capturable AdamW needs them.
    with safe_open(str(folder / OPTIMIZER_FILE), framework="pt", device="cpu") as handle:
        metadata = handle.metadata() or {}
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    optimizer_state = optimizer_from_safetensors(tensors, metadata)
    rng = load_file(str(folder / RNG_FILE))
    return adapter, optimizer_state, rng, read_state(folder)


def load_best(folder: Path, device: str = "cpu") -> dict[str, Any] | None:
    """The best-validation adapter weights kept with a checkpoint (None: it has none)."""
    from safetensors.torch import load_file

    path = Path(folder) / BEST_FILE
    return load_file(str(path), device=device) if path.is_file() else None


def remove_checkpoints(adapter_path: Path) -> None:
    shutil.rmtree(Path(adapter_path) / CHECKPOINTS_DIR, ignore_errors=True)
