"""Where each profile's model is on disk (built locally, a local directory, or the Hugging Face cache) and its size.

Read-only and offline: it looks at directories, never at the network, and imports no torch or transformers.
`assistant models` lists these; `assistant pull` downloads what is missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .paths import user_paths
from .profiles import Profile, looks_like_path


@dataclass
class ModelState:
    """One profile's model and whether it can run offline now."""

    profile: str
    model: str
    kind: str
    """local_build (built on this machine), directory (a local path), hub (a Hugging Face hub id) or remote (a
    backend that serves the model elsewhere, e.g. an OpenAI-compatible server)."""
    state: str
    """built locally, not built yet, local directory, missing directory, downloaded, partly downloaded or
    not downloaded."""
    size_bytes: int
    path: str
    """Where the files are (or would be)."""

    @property
    def ready(self) -> bool:
        return self.state in ("built locally", "local directory", "downloaded")


def hub_cache_dir() -> Path:
    """huggingface_hub's cache directory (HF_HUB_CACHE, else HF_HOME/hub, else its default), read now."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def directory_size(path: Path) -> int:
    """Bytes of the regular files under `path` (links are not followed, so hub snapshots are not counted twice)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                info = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if not os.path.islink(os.path.join(root, name)):
                total += info.st_size
    return total


def model_state(profile: Profile) -> ModelState:
    """Where this profile's model is and whether it is complete."""
    settings = profile.model
    if settings.backend != "transformers":
        return ModelState(profile.name, settings.id, "remote", f"served by the {settings.backend} backend", 0, "")
    if settings.local_build:
        target = user_paths().models_dir / settings.local_build
        built = (target / "config.json").is_file()
        return ModelState(
            profile.name,
            settings.local_build,
            "local_build",
            "built locally" if built else "not built yet",
            directory_size(target) if built else 0,
            str(target),
        )
    path = Path(settings.id).expanduser()
    if looks_like_path(settings.id) or path.is_dir():
        present = path.is_dir()
        return ModelState(
            profile.name,
            settings.id,
            "directory",
            "local directory" if present else "missing directory",
            directory_size(path) if present else 0,
            str(path),
        )
    repo = hub_cache_dir() / ("models--" + settings.id.replace("/", "--"))
    return ModelState(profile.name, settings.id, "hub", _hub_state(repo, settings.revision or "main"),
                      directory_size(repo / "blobs") if repo.is_dir() else 0, str(repo))


def _hub_state(repo: Path, revision: str) -> str:
    if not repo.is_dir():
        return "not downloaded"
    ref = repo / "refs" / revision
    commit = ref.read_text(encoding="utf-8").strip() if ref.is_file() else revision
    snapshot = repo / "snapshots" / commit
    complete = (snapshot / "config.json").exists() and any(snapshot.glob("*.safetensors"))
    unfinished = any((repo / "blobs").glob("*.incomplete"))
    return "downloaded" if complete and not unfinished else "partly downloaded"


def human_size(size: int) -> str:
    """1536 -> '1.5 KB' (decimal units, as download sizes are usually given)."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"  # pragma: no cover
