"""Resident memory stage by stage for a screenshot question: `python -m assistant.bench_memory [PROFILE]`.

Prints one JSON line per stage (imports, load, fused step, the screenshot question, a follow-up) with the process's
resident memory split into heap (anon) and mapped files, the peak *within* the stage (Linux resets the high-water
mark when 5 is written to /proc/self/clear_refs) and the mapped files grouped by what they are (CUDA libraries,
triton, torch's CPU library, the weights). Run it under each torch build to compare them (docs/performance.md).
"""

from __future__ import annotations

import collections
import json
import os
import sys
import time
from typing import Any

GROUPS = (
    ("weights", (".safetensors",)),
    ("cuda libraries", ("/nvidia/", "libtorch_cuda", "libc10_cuda", "libcudnn", "libcublas", "libnccl", "cusparse")),
    ("triton", ("triton",)),
    ("torch cpu library", ("libtorch_cpu", "libtorch_python", "libc10.so", "libgomp", "libiomp")),
)


def read_status() -> dict[str, int]:
    """VmRSS, RssAnon, RssFile and VmHWM in MB (empty off Linux)."""
    wanted = {"VmRSS": "rss", "RssAnon": "anon", "RssFile": "file", "VmHWM": "peak"}
    values: dict[str, int] = {}
    try:
        with open("/proc/self/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in wanted:
                    values[wanted[key]] = int(value.split()[0]) // 1024
    except OSError:
        pass
    return values


def mapped_groups() -> dict[str, int]:
    """Resident MB of mapped files (and their copy-on-write pages) by group; the rest is 'other files'."""
    sizes: collections.Counter[str] = collections.Counter()
    name = ""
    try:
        with open("/proc/self/smaps") as smaps:
            for line in smaps:
                parts = line.split()
                if not parts:
                    continue
                if not parts[0].endswith(":") and "-" in parts[0]:
                    name = parts[5] if len(parts) > 5 else ""
                elif parts[0] == "Rss:" and name.startswith("/"):
                    group = next((label for label, marks in GROUPS if any(m in name for m in marks)), "other files")
                    sizes[group] += int(parts[1])
    except OSError:
        return {}
    return {group: kb // 1024 for group, kb in sizes.most_common()}


def reset_peak() -> bool:
    """Start a new high-water mark (Linux: 5 > /proc/self/clear_refs); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def stage(name: str, started: float) -> dict[str, Any]:
    row = {"stage": name, **read_status(), "cpu_s": round(time.process_time() - started, 2), "files": mapped_groups()}
    print(json.dumps(row), flush=True)
    reset_peak()
    return row


def main(profile_name: str = "bench-smolvlm-256m-bf16") -> list[dict[str, Any]]:
    import importlib.util

    cpu = time.process_time()
    rows = [stage("start", cpu)]
    from .engine.loading import model_source
    from .profiles import load_profile

    profile = load_profile(profile_name)
    model_source(profile)  # build the local model first: building is not loading
    rows.append(stage("profile, model built", cpu))
    import torch  # noqa: F401

    rows.append(stage("import torch", cpu))
    if importlib.util.find_spec("torchvision") is not None:
        import torchvision  # noqa: F401

        rows.append(stage("import torchvision", cpu))
    from transformers import AutoModelForImageTextToText, AutoProcessor  # noqa: F401

    rows.append(stage("transformers auto classes", cpu))
    from .api import Assistant
    from .bench import QUESTION, FOLLOW_UP, screenshot_like_image
    from .engine import executor
    from .images import image_from_pil
    from .store import Store

    rows.append(stage("assistant modules", cpu))
    work = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"bench-memory-{os.getpid()}")
    bot = Assistant.from_profile(profile_name, store=Store(os.path.join(work, "db.sqlite3"), os.path.join(work, "images")))
    bot.profile.generation.max_new_tokens = bot.profile.generation.min_new_tokens = 32
    bot.profile.generation.temperature = 0.0
    bot.load()
    rows.append(stage(f"model loaded ({type(bot.engine.loaded.processor.image_processor).__name__})", cpu))
    executor.run(lambda: bot.engine.decoder)
    rows.append(stage("fused decode step", cpu))
    screenshot = image_from_pil(screenshot_like_image(), "bench screenshot")
    chat = bot.chat()
    chat.ask(QUESTION, images=[screenshot])
    rows.append(stage("screenshot question answered", cpu))
    chat.ask(FOLLOW_UP)
    rows.append(stage("follow-up answered", cpu))
    return rows


if __name__ == "__main__":
    main(*sys.argv[1:2])
