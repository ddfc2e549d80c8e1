"""LoRA adapters on disk (list, read, delete) and switching them on a loaded engine without reloading the base model.

An adapter is a folder `user_paths().adapters_dir / NAME` holding the standard peft files (`adapter_config.json`,
`adapter_model.safetensors`, loadable by `PeftModel.from_pretrained`) plus `assistant_adapter.json`: the base model it
was trained on, the data fingerprint, the hyper-parameters and the metrics. While training runs (or after it was
interrupted) the folder holds `checkpoints/step-NNNNNN/` and the metadata says `"status": "training"`.

Heavy imports (torch, peft) happen only inside `activate_adapter`, through `engine/lora.py`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import AssistantError
from .paths import user_paths

if TYPE_CHECKING:
    from .profiles import Profile

META_FILE = "assistant_adapter.json"
PEFT_CONFIG_FILE = "adapter_config.json"
PEFT_WEIGHTS_FILE = "adapter_model.safetensors"
CHECKPOINTS_DIR = "checkpoints"
META_FORMAT = 1

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_STAMPS_ATTRIBUTE = "_assistant_adapter_stamps"


@dataclass
class BaseModelRef:
    """The base model an adapter belongs to (from the training profile)."""

    profile: str = ""
    model: str = ""
    """Hub id or local directory ('' for locally built models)."""
    local_build: str = ""
    revision: str = ""
    family: str = ""

    @property
    def label(self) -> str:
        return self.local_build or self.model

    @classmethod
    def from_profile(cls, profile: "Profile", family: str = "") -> "BaseModelRef":
        model = profile.model
        return cls(
            profile=profile.name,
            model="" if model.local_build else model.id,
            local_build=model.local_build,
            revision="" if model.local_build else (model.revision or "main"),
            family=family,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BaseModelRef":
        known = {key: str(data.get(key) or "") for key in ("profile", "model", "local_build", "revision", "family")}
        return cls(**known)


@dataclass
class AdapterInfo:
    """What `assistant adapters list/show` prints about one adapter folder."""

    name: str
    path: Path
    status: str
    """complete (usable), training (running or interrupted: resumable) or broken (files missing)."""
    base: BaseModelRef
    created_at: float = 0.0
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    last_checkpoint: int | None = None
    """Step of the newest checkpoint, when there is one."""
    size_bytes: int = 0

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


# --- names and folders -------------------------------------------------------------------------------------------


def validate_adapter_name(name: str) -> str:
    """A name that is safe as a folder name and as a peft adapter key (letters, digits, `-`, `_`; 64 at most)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise AssistantError(
            f"{name!r} is not a usable adapter name; use 1-64 letters, digits, '-' or '_' (e.g. my-style)"
        )
    return name


def adapters_root() -> Path:
    return user_paths().adapters_dir


def adapter_dir(name: str) -> Path:
    """The folder of adapter `name` (it may not exist yet); a symlink there (or in it) is refused."""
    path = adapters_root() / validate_adapter_name(name)
    _refuse_links(path)
    return path


def _refuse_links(path: Path) -> None:
    """Training, --overwrite and delete write and remove inside an adapter folder: through a symbolic link they
    would reach files outside the adapters folder, so a link as the folder, in it or in its checkpoints is refused."""
    suspects = [path]
    for folder in (path, path / CHECKPOINTS_DIR):
        if folder.is_dir() and not folder.is_symlink():
            with contextlib.suppress(OSError):
                suspects.extend(folder.iterdir())
    for suspect in suspects:
        if suspect.is_symlink():
            raise AssistantError(
                f"{suspect} is a symbolic link; adapters must be real folders and files inside "
                f"{adapters_root()} (a link could make training or deleting change files elsewhere): "
                "remove the link, or move the files there"
            )


def checkpoint_steps(path: Path) -> list[int]:
    """Steps of the complete checkpoints in an adapter folder, oldest first."""
    folder = Path(path) / CHECKPOINTS_DIR
    steps = []
    if folder.is_dir():
        for child in folder.iterdir():
            match = re.fullmatch(r"step-(\d+)", child.name)
            if match and (child / "trainer_state.json").is_file():
                steps.append(int(match.group(1)))
    return sorted(steps)


def read_meta(path: Path) -> dict[str, Any] | None:
    """The metadata JSON of an adapter folder, or None when absent or unreadable."""
    try:
        data = json.loads((Path(path) / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_meta(path: Path, meta: dict[str, Any]) -> None:
    """Write the metadata JSON atomically (a crash never leaves half a file)."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".meta-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(meta, file, indent=2, ensure_ascii=False)
            file.write("\n")
        os.replace(temporary, folder / META_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _folder_size(path: Path) -> int:
    total = 0
    for file in path.rglob("*"):
        with contextlib.suppress(OSError):
            if file.is_file():
                total += file.stat().st_size
    return total


def _info(path: Path) -> AdapterInfo:
    meta = read_meta(path) or {}
    steps = checkpoint_steps(path)
    has_weights = (path / PEFT_CONFIG_FILE).is_file() and (path / PEFT_WEIGHTS_FILE).is_file()
    if meta.get("status") == "complete" and has_weights:
        status = "complete"
    elif steps or meta.get("status") == "training":
        status = "training"
    elif has_weights:
        status = "complete"  # a peft adapter copied in by hand: usable, base unknown
    else:
        status = "broken"
    return AdapterInfo(
        name=path.name,
        path=path,
        status=status,
        base=BaseModelRef.from_dict(meta.get("base") or {}),
        created_at=float(meta.get("created_at") or 0.0),
        hyperparameters=dict(meta.get("hyperparameters") or {}),
        data=dict(meta.get("data") or {}),
        metrics=dict(meta.get("metrics") or {}),
        last_checkpoint=steps[-1] if steps else None,
        size_bytes=_folder_size(path),
    )


def list_adapters() -> list[AdapterInfo]:
    """Every adapter folder, by name."""
    root = adapters_root()
    if not root.is_dir():
        return []
    return [
        _info(child)
        for child in sorted(root.iterdir())
        if child.is_dir() and not child.is_symlink() and _NAME.fullmatch(child.name)
    ]


def read_adapter(name: str) -> AdapterInfo:
    """One adapter's info; an unknown name is an error that lists the known ones."""
    path = adapter_dir(name)
    if not path.is_dir():
        known = ", ".join(info.name for info in list_adapters()) or "none yet"
        raise AssistantError(
            f"no adapter named {name!r} (known: {known}); train one with `assistant train --name {name}`"
        )
    return _info(path)


def delete_adapter(name: str) -> None:
    """Remove an adapter folder with its checkpoints."""
    path = read_adapter(name).path
    try:
        shutil.rmtree(path)
    except OSError as error:
        raise AssistantError(f"cannot delete adapter {name!r} ({path}): {error.strerror or error}") from None


# --- compatibility and activation --------------------------------------------------------------------------------


def check_compatible(info: AdapterInfo, profile: "Profile") -> None:
    """Refuse an adapter trained on another base model, naming the base it needs."""
    base = info.base
    if not base.label:
        return  # hand-made adapter without our metadata: peft itself refuses mismatched shapes
    current = BaseModelRef.from_profile(profile)
    same_model = base.label == current.label
    same_revision = not base.revision or not current.revision or base.revision == current.revision
    if same_model and same_revision:
        return
    needed = base.label + (f" (revision {base.revision})" if base.revision and base.revision != "main" else "")
    hint = f", e.g. `--profile {base.profile}`" if base.profile else ""
    raise AssistantError(
        f"adapter {info.name!r} was trained on {needed}, but the loaded model is {current.label}"
        + (f" (revision {current.revision})" if same_model else "")
        + f"; use a profile that runs {base.label}{hint}"
    )


def _stamp(info: AdapterInfo) -> str:
    """Changes whenever the adapter is trained again (so a loaded copy is replaced, not reused)."""
    weights = info.path / PEFT_WEIGHTS_FILE
    try:
        stat = weights.stat()
    except OSError:
        return ""
    return f"{stat.st_mtime_ns}:{stat.st_size}:{info.created_at}"


def activate_adapter(engine: Any, name: str | None) -> None:
    """Make adapter `name` the active one on `engine.loaded.model` (None: back to the base model).

    Adapters are injected once into the base model (peft's functional API, see `engine/lora.py`) and switched
    by flipping the active adapter, so switching never reloads the base weights.
    """
    from .engine import lora

    loaded = engine.loaded
    model = loaded.model
    if name is None:
        lora.disable(model)
        loaded.adapter = None
        _invalidate(engine)
        return
    info = read_adapter(name)
    if info.status == "training":
        raise AssistantError(
            f"adapter {name!r} is not finished (training stopped"
            + (f" at step {info.last_checkpoint}" if info.last_checkpoint is not None else "")
            + f"); finish it with `assistant train --name {name} --resume`"
        )
    if info.status != "complete":
        raise AssistantError(
            f"adapter {name!r} in {info.path} has no {PEFT_WEIGHTS_FILE}; delete it with "
            f"`assistant adapters delete {name}` and train it again"
        )
    check_compatible(info, loaded.profile)
    stamps: dict[str, str] = getattr(model, _STAMPS_ATTRIBUTE, None) or {}
    stamp = _stamp(info)
    present = lora.loaded_names(model)
    if name in present and stamps.get(name) != stamp:
        lora.delete(model, name)  # trained again since it was loaded
        present.discard(name)
    if name not in present:
        try:
            problem = lora.load(model, info.path, name).problem()
        except lora.BrokenAdapterFile as error:
            _forget_failed(model, name, loaded.adapter)
            raise AssistantError(
                f"adapter {name!r} is broken: {error}; train it again with `assistant train --name {name} "
                f"--overwrite`, or delete it with `assistant adapters delete {name}`"
            ) from None
        except (ValueError, RuntimeError, OSError, KeyError, TypeError) as error:
            problem = str(error).splitlines()[0] if str(error) else type(error).__name__
        if problem:
            _forget_failed(model, name, loaded.adapter)
            raise AssistantError(
                f"cannot load adapter {name!r} into {loaded.profile.model_label}: {problem}; "
                f"it may belong to another model (trained on {info.base.label or 'an unknown base'})"
            )
        stamps[name] = stamp
        setattr(model, _STAMPS_ATTRIBUTE, stamps)
    lora.activate(model, name)
    loaded.adapter = name
    _invalidate(engine)


def _forget_failed(model: Any, name: str, previous: str | None) -> None:
    """After a failed load: drop what was injected and put back the adapter that was active before."""
    from .engine import lora

    with contextlib.suppress(Exception):
        if name in lora.loaded_names(model):
            lora.delete(model, name)
    with contextlib.suppress(Exception):
        if previous is None:
            lora.disable(model)
        else:
            lora.activate(model, previous)


def _invalidate(engine: Any) -> None:
    invalidate = getattr(engine, "invalidate_cache", None)
    if callable(invalidate):  # a conversation KV cache built with other weights is stale
        invalidate()


def new_meta(name: str, base: BaseModelRef, **sections: Any) -> dict[str, Any]:
    """The metadata dict written next to an adapter (sections: hyperparameters, data, metrics, ...)."""
    meta: dict[str, Any] = {
        "format": META_FORMAT,
        "name": name,
        "status": "training",
        "created_at": time.time(),
        "base": asdict(base),
    }
    meta.update(sections)
    return meta
