"""Consent for `trust_remote_code = true`: say once per model which of its own code files will run, and record it.

A model directory (or hub repository) with custom code runs that Python inside the assistant with the user's
rights. The profile's `trust_remote_code = true` is the user's opt-in; this module makes it informed: the first
load names the files (the `.py` files in the model's folder and the modules its configs' `auto_map` points to),
and the consent is recorded in the config dir (CONSENT_FILE) with the files' hashes, so the notice comes again
only for a new model or changed code. Pure Python.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

CONSENT_FILE = "trusted-model-code.json"
_CONFIGS = ("config.json", "processor_config.json", "preprocessor_config.json", "tokenizer_config.json")


def _auto_map_modules(folder: Path) -> set[str]:
    """Module files named by the `auto_map` of the model's configs (`modeling_x.Cls` -> `modeling_x.py`)."""
    modules: set[str] = set()
    for name in _CONFIGS:
        try:
            data = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        auto_map = data.get("auto_map") if isinstance(data, dict) else None
        if not isinstance(auto_map, dict):
            continue
        for value in auto_map.values():
            for reference in value if isinstance(value, list) else [value]:
                if isinstance(reference, str) and "." in reference:
                    module = reference.rsplit(".", 1)[0]
                    modules.add(module.replace("--", ": ") + ".py")  # "other/repo--modeling_x" names another repo
    return modules


def code_files(folder: str | Path) -> dict[str, str]:
    """The code that trusting this model may run: file name -> sha256 ("" for a module fetched from the hub)."""
    folder = Path(folder)
    files: dict[str, str] = {}
    if folder.is_dir():
        for path in sorted(folder.rglob("*.py")):
            if path.is_file():
                files[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    for module in _auto_map_modules(folder):
        files.setdefault(module, "")
    return dict(sorted(files.items()))


def _read(record_file: Path) -> dict[str, Any]:
    try:
        data = json.loads(record_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def consent_notice(source: str, revision: str, folder: str | Path, record_file: Path | None = None) -> str | None:
    """The line to show before loading `source` with its own code, or None when this exact code was shown before.

    Records the consent (file names and hashes) so the same code is not announced again.
    """
    from .paths import make_private_dir, user_paths, write_private

    record_file = record_file or user_paths().config / CONSENT_FILE
    key = f"{source}@{revision}"
    files = code_files(folder)
    records = _read(record_file)
    if isinstance(records.get(key), dict) and records[key].get("files") == files:
        return None
    changed = key in records
    records[key] = {"files": files, "consented_at": time.time()}
    try:
        make_private_dir(record_file.parent)
        write_private(record_file, json.dumps(records, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass  # the notice is still shown; it comes again next time
    names = ", ".join(files) if files else "code the model's configuration names (none found in its folder)"
    what = "its code changed since you last loaded it" if changed else "first load with trust_remote_code = true"
    return (
        f"notice: model {source} runs its own Python code with your rights ({what}): {names}; review it, or set "
        f"trust_remote_code = false in the profile; consent recorded in {record_file}"
    )
