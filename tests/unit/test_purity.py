"""Core data modules never import torch, transformers or textual (checked in a clean subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

DATA_MODULES = [
    "assistant",
    "assistant.errors",
    "assistant.paths",
    "assistant.profiles",
    "assistant.conversation",
    "assistant.geometry",
    "assistant.screenmap",
    "assistant.dryrun",
    "assistant.hooktypes",
    "assistant.hookspecs",
    "assistant.plugins",
    "assistant.store",
    "assistant.images",
    "assistant.documents",
    "assistant.api",
    "assistant.namedpaths",
    "assistant.permissions",
    "assistant.tui.config",
    "assistant.tui.clipboard",
]
HEAVY = ["torch", "transformers", "textual"]


def test_data_modules_stay_light():
    code = (
        "import importlib, json, sys\n"
        f"for name in {DATA_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(output.strip().splitlines()[-1]) == []


def test_plugin_manager_with_builtins_stays_light():
    code = (
        "import json, sys\n"
        "from assistant.plugins import create_plugin_manager\n"
        "create_plugin_manager(load_entry_points=False)\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(output.strip().splitlines()[-1]) == []
