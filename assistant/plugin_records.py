"""Run-time plugin failures kept in the data dir, so `assistant plugins list` shows what failed in other processes.

One small JSON file: {plugin: {stage: {"error", "count", "first", "last"}}}. Written atomically under a lock;
a file that cannot be read or written never breaks the call whose failure it records.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FILE_NAME = "plugin-failures.json"
_lock = threading.Lock()


@dataclass(frozen=True)
class FailureRecord:
    plugin: str
    stage: str
    """The hook or the returned callable that failed (e.g. `tool shout`, `grounding format boxes`)."""
    error: str
    """The latest error, one line."""
    count: int
    first: float
    last: float


def records_file() -> Path:
    from .paths import user_paths

    return user_paths().data / FILE_NAME


def _read(path: Path) -> dict[str, dict[str, dict]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record_failure(plugin: str, stage: str, error: str, when: float | None = None) -> None:
    """Add one failure of `plugin` in `stage` (count + 1, latest error and time)."""
    now = time.time() if when is None else when
    with _lock:
        try:
            path = records_file()
            data = _read(path)
            entry = data.setdefault(plugin, {}).setdefault(stage, {"count": 0, "first": now})
            entry.update(error=error, count=int(entry.get("count", 0)) + 1, last=now)
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".plugin-failures.", suffix=".json")
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(data, file, indent=1)
            os.replace(temporary, path)
        except OSError as problem:
            log.warning("could not record the failure of plugin %s: %s", plugin, problem)


def read_failures() -> list[FailureRecord]:
    """Every recorded failure, most recent first."""
    records = []
    for plugin, stages in _read(records_file()).items():
        if not isinstance(stages, dict):
            continue
        for stage, entry in stages.items():
            try:
                records.append(FailureRecord(plugin, stage, str(entry["error"]), int(entry["count"]),
                                             float(entry.get("first", entry["last"])), float(entry["last"])))
            except (KeyError, TypeError, ValueError):
                continue
    return sorted(records, key=lambda record: record.last, reverse=True)


def clear_failures(plugin: str | None = None) -> int:
    """Forget the recorded failures (of one plugin, or all); returns how many records were dropped."""
    with _lock:
        path = records_file()
        data = _read(path)
        if plugin is None:
            dropped = sum(len(stages) for stages in data.values() if isinstance(stages, dict))
            data = {}
        else:
            stages = data.pop(plugin, {})
            dropped = len(stages) if isinstance(stages, dict) else 0
        try:
            if data:
                path.write_text(json.dumps(data, indent=1), encoding="utf-8")
            elif path.exists():
                path.unlink()
        except OSError as problem:
            log.warning("could not clear the plugin failure records: %s", problem)
        return dropped
