"""The last eval of an adapter, kept in its folder as `eval.json` (one entry per format and data file, the newest
first), for `assistant adapters show` and the TUI's adapter choices. Pure Python."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from ..adapters import PEFT_WEIGHTS_FILE, adapters_root, validate_adapter_name

EVAL_FILE = "eval.json"
KEPT = 20
"""Most datasets remembered per adapter."""


def _weights_stamp(folder: Path) -> str:
    """Changes when the adapter is trained again: an eval of older weights is then marked stale."""
    try:
        stat = (folder / PEFT_WEIGHTS_FILE).stat()
    except OSError:
        return ""
    return f"{stat.st_mtime_ns}:{stat.st_size}"


def save_adapter_eval(name: str, summary: dict[str, Any]) -> Path:
    """Add `summary` (EvalReport.summary_dict) to the adapter's eval.json, replacing the same dataset's entry."""
    folder = adapters_root() / validate_adapter_name(name)
    path = folder / EVAL_FILE
    entries = [entry for entry in read_adapter_evals(name)
               if (entry.get("format"), entry.get("file")) != (summary.get("format"), summary.get("file"))]
    entry = {**summary, "weights": _weights_stamp(folder), "saved_at": time.time()}
    data = {"format": 1, "evals": [entry, *entries][:KEPT]}
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".eval-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=2, ensure_ascii=False)
            file.write("\n")
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def read_adapter_evals(name: str) -> list[dict[str, Any]]:
    """The adapter's saved evals, newest first, each with `stale` (True when the adapter was trained again since).
    Empty when there are none or the file is unreadable (it is only a record)."""
    try:
        folder = adapters_root() / validate_adapter_name(name)
        data = json.loads((folder / EVAL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, Exception):  # noqa: BLE001 - a damaged record shows as no record
        return []
    entries = data.get("evals") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return []
    stamp = _weights_stamp(folder)
    return [{**entry, "stale": bool(entry.get("weights")) and entry.get("weights") != stamp}
            for entry in entries if isinstance(entry, dict)]


def _score(value: Any, binary: bool) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    return f"{value:.1%}" if binary else f"{value:.3f}"


def eval_line(entry: dict[str, Any]) -> str:
    """One line about one saved eval: `mmbench dev.tsv: 62.0% circular accuracy (base 54.0%, +8.0 pts, p = 0.031)`."""
    metric = str(entry.get("metric") or "score")
    binary = metric != "ANLS" and metric != "anls"
    sides = entry.get("sides") or {}
    adapter = entry.get("adapter")
    mine = sides.get(adapter if adapter != "base" else "adapter:base") if adapter else None
    if mine is None and sides:
        mine = list(sides.values())[-1]
    text = f"{entry.get('format', '?')} {entry.get('file', '?')}: {_score((mine or {}).get('score'), binary)} {metric}"
    base = sides.get("base") if adapter else None
    comparison = entry.get("comparison")
    if base is not None and comparison and isinstance(base.get("score"), (int, float)):
        difference = comparison.get("difference", 0.0)
        shown = f"{difference * 100:+.1f} pts" if binary else f"{difference:+.3f}"
        text += f" (base {_score(base.get('score'), binary)}, {shown}, p = {comparison.get('p_value', 1.0):.3g})"
    if isinstance(entry.get("margin"), (int, float)):
        text += f", mean margin {entry['margin']:+.3f}"
    unit = {"mmbench": "questions", "preference": "pairs"}.get(str(entry.get("format")), "items")
    text += f", {entry.get('units', '?')} {unit}"
    when = entry.get("created_at")
    if isinstance(when, (int, float)):
        text += time.strftime(" · %Y-%m-%d %H:%M", time.localtime(when))
    if entry.get("stale"):
        text += " · before the last training"
    return text


def last_eval_line(name: str) -> str:
    """The newest saved eval of adapter `name` as one line, or "" when it has none."""
    entries = read_adapter_evals(name)
    return eval_line(entries[0]) if entries else ""
