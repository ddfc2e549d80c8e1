"""LoRA adapters on a loaded model through peft's public functional API (load, switch, disable, delete).

Why not transformers' own `model.load_adapter`: that PEFT integration refuses to run unless peft is at least the
version its release was written against (transformers 5.24 wants peft >= 0.22, which did not exist when it came
out), so a routine transformers upgrade broke every adapter. `peft.functional` is the API peft publishes for
exactly this use ("integration with non-PeftModel models"): inject the LoRA layers into the model in place,
fill their weights, and flip the active adapter on every tuner layer. The model object stays the same, so
generation, the KV cache and the fused decode step keep working on it.

Only safetensors files are read (never pickles). Heavy imports happen inside the functions.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WEIGHTS_FILE = "adapter_model.safetensors"
SAVED_PREFIX = "base_model.model."
"""`PeftModel.save_pretrained` writes keys relative to the PeftModel wrapper; ours are relative to the model."""


@dataclass
class LoadReport:
    """What did not fit when an adapter's weights went into the model (all empty: it fits)."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def problem(self) -> str:
        """One clause for an error message, or '' when the adapter fits."""
        parts = []
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} of its weights have no layer to go to")
        if self.missing:
            parts.append(f"{len(self.missing)} adapter weights were not in the file")
        return ", ".join(parts)


class BrokenAdapterFile(ValueError):
    """An adapter file is damaged (truncated, overwritten, not what its name says): the adapter is broken."""


def loaded_names(model: Any) -> set[str]:
    """Names of the adapters injected into `model`."""
    return set(getattr(model, "peft_config", None) or {})


def load(model: Any, folder: Path, name: str) -> LoadReport:
    """Inject adapter `name` from a peft folder (adapter_config.json + adapter_model.safetensors) into `model`.

    Raises ValueError/OSError/KeyError/RuntimeError when the files cannot be read or do not describe a LoRA
    adapter; a shape mismatch surfaces as RuntimeError from torch.
    """
    from peft import LoraConfig, PeftType
    from peft.functional import inject_adapter_in_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        config = LoraConfig.from_pretrained(str(folder))
    except ValueError as error:  # not JSON, or not a peft config
        raise BrokenAdapterFile(f"adapter_config.json cannot be read ({str(error).splitlines()[0]})") from None
    if getattr(config, "peft_type", None) != PeftType.LORA:
        raise ValueError(f"it is a {getattr(config, 'peft_type', 'unknown')} adapter, not LoRA")
    config.inference_mode = True
    try:
        saved = load_file(str(folder / WEIGHTS_FILE), device="cpu")
    except Exception as error:  # noqa: BLE001 - safetensors raises its own SafetensorError for damaged files
        why = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise BrokenAdapterFile(f"{WEIGHTS_FILE} cannot be read ({why})") from None
    state = {key.removeprefix(SAVED_PREFIX): value for key, value in saved.items()}
    with warnings.catch_warnings():
        # peft warns that a model with a `peft_config` gets another adapter: several adapters is the point here
        warnings.filterwarnings("ignore", message="Already found a `peft_config`", category=UserWarning)
        inject_adapter_in_model(config, model, adapter_name=name)
    result = set_peft_model_state_dict(model, state, adapter_name=name)
    return LoadReport(
        # peft lists every LoRA parameter it did not fill, other adapters' included: keep this one's
        missing=[key for key in getattr(result, "missing_keys", ()) or () if f".{name}." in f"{key}."],
        unexpected=list(getattr(result, "unexpected_keys", ()) or ()),
    )


def activate(model: Any, name: str) -> None:
    """Make `name` the only active adapter (layers enabled, frozen, eval mode)."""
    from peft.functional import set_adapter

    _enable_layers(model, True)
    set_adapter(model, name, inference_mode=True)
    model.eval()


def disable(model: Any) -> None:
    """Run the base model: every LoRA layer passes its input through unchanged."""
    _enable_layers(model, False)


def delete(model: Any, name: str) -> None:
    """Remove adapter `name`'s layers and config from `model` (the others stay)."""
    from peft.functional import delete_adapter

    config = (getattr(model, "peft_config", None) or {}).get(name)
    prefix = f"{config.peft_type.value.lower()}_" if config is not None else "lora_"
    with warnings.catch_warnings():
        # "Adapter X was active which is now deleted": we set the active adapter ourselves right after
        warnings.filterwarnings("ignore", message="Adapter .* was active", category=UserWarning)
        delete_adapter(model, name, prefix=prefix)
    with contextlib.suppress(AttributeError, KeyError):
        del model.peft_config[name]


def _enable_layers(model: Any, enabled: bool) -> None:
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            module.enable_adapters(enabled)
