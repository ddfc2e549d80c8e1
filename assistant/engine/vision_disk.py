"""Encoded image features on disk, so a new process about the same screen or page skips the vision encoder.

The in-memory cache (engine/vision_cache.py) lives as long as the process: `assistant ask` run twice about the
same PDF page, or a batch run again tomorrow, encodes every image again. This tier keeps the same features as
safetensors files in the user's cache directory, bounded in bytes (least recently used removed first).

Opt-in (`ASSISTANT_VISION_DISK_MB`, default 0 = off): the features are derived from what was on the user's
screen or in their documents, and a private tool should not keep such data on disk unasked. Only used while no
adapter is active (an adapter retrained under the same name would otherwise hit stale features). A file that
cannot be read is a miss and is removed.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..envsettings import megabytes_setting

log = logging.getLogger(__name__)

DISK_ENVIRONMENT = "ASSISTANT_VISION_DISK_MB"
SUFFIX = ".safetensors"


def disk_megabytes() -> float:
    """The on-disk tier's bound from ASSISTANT_VISION_DISK_MB (0 = off, the default)."""
    return megabytes_setting(DISK_ENVIRONMENT, 0.0)


@dataclass
class DiskFeatures:
    """Feature tensors as files named by key, pruned to `max_bytes` by last use (file mtime)."""

    directory: Path
    max_bytes: int

    @classmethod
    def from_environment(cls, cache_dir: Path) -> "DiskFeatures | None":
        megabytes = disk_megabytes()
        return cls(cache_dir / "vision", int(megabytes * 1024 * 1024)) if megabytes > 0 else None

    def path(self, name: str) -> Path:
        return self.directory / f"{name}{SUFFIX}"

    def get(self, name: str) -> Any:
        """The tensor stored under `name`, or None (absent or unreadable: then removed)."""
        path = self.path(name)
        if not path.is_file():
            return None
        from safetensors.torch import load_file

        try:
            tensor = load_file(str(path))["features"]
        except Exception as error:  # a truncated or foreign file: a miss, and out of the way
            log.warning("vision cache file %s is unreadable (%s): removed", path, error)
            path.unlink(missing_ok=True)
            return None
        try:
            os.utime(path)  # its last use, for pruning
        except OSError:
            pass
        return tensor

    def put(self, name: str, tensor: Any) -> None:
        """Store `tensor` (written to a temporary file, then renamed: readers never see half a file)."""
        from safetensors.torch import save_file

        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = self.path(name)
            partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            save_file({"features": tensor.detach().to("cpu").contiguous()}, str(partial))
            os.chmod(partial, 0o600)  # derived from the user's screen or documents: theirs alone, like the store
            os.replace(partial, path)
            self.prune()
        except OSError as error:  # a full or read-only disk costs the speed-up, never the reply
            log.warning("could not write the vision cache file for %s: %s", name, error)

    def prune(self) -> None:
        """Remove the least recently used files until the folder holds at most `max_bytes`."""
        files = []
        for path in self.directory.glob(f"*{SUFFIX}"):
            try:
                stat = path.stat()
            except OSError:
                continue
            files.append((stat.st_mtime_ns, stat.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size

    def size_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.directory.glob(f"*{SUFFIX}")) if self.directory.is_dir() else 0


def disk_name(model_identity: str, kind: str, digest: bytes) -> str:
    """The file name of one unit's features: a hash of the model's identity and the unit's pixel digest."""
    hasher = hashlib.blake2b(digest_size=20)
    hasher.update(model_identity.encode())
    hasher.update(f"|{kind}|".encode())
    hasher.update(digest)
    return hasher.hexdigest()


def model_identity(source: str, model: Any) -> str:
    """What the features depend on that survives the process: where the weights came from (a hub revision,
    or each weights file's size and modification time). The dtype is part of each key (vision_cache)."""
    config = getattr(model, "config", None)
    parts = [str(getattr(config, "_name_or_path", "") or source), str(getattr(config, "_commit_hash", "") or "")]
    directory = Path(source).expanduser()
    if directory.is_dir():
        for weights in sorted(directory.glob("*.safetensors")):
            stat = weights.stat()
            parts.append(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return "|".join(parts)
