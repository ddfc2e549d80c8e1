"""Returning freed memory to the system (engine.memory)."""

from __future__ import annotations

import sys

import pytest

from assistant.engine import memory

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim / mallopt")


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


@linux_only
def test_trim_returns_freed_heap_memory():
    """Many small blocks (heap, not mmap) freed except the last: resident until trimmed."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(64 * 1024) for _ in range(3000)]  # 190 MB below the mmap threshold
    for block in blocks:
        ctypes.memset(block, 1, 64 * 1024)
    keeper = blocks.pop()  # the top of the heap stays in use, so free() alone cannot shrink it
    for block in blocks:
        libc.free(block)
    before = _rss_mb()
    assert memory.trim_freed_memory() is True
    after = _rss_mb()
    libc.free(keeper)
    assert before - after > 100


@linux_only
def test_mmap_threshold_is_opt_in(monkeypatch):
    monkeypatch.delenv("ASSISTANT_MALLOC_MMAP_THRESHOLD", raising=False)
    assert memory.apply_mmap_threshold() is False
    monkeypatch.setenv("ASSISTANT_MALLOC_MMAP_THRESHOLD", "0")
    assert memory.apply_mmap_threshold() is False
    monkeypatch.setenv("ASSISTANT_MALLOC_MMAP_THRESHOLD", str(32 << 20))  # glibc's own maximum: harmless here
    assert memory.apply_mmap_threshold() is True


def _rss_file_kb() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    return 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and /proc are Linux's")
def test_release_file_pages_drops_mapped_weights_and_keeps_their_values(tmp_path):
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    from assistant.engine.memory import release_file_pages

    values = torch.arange(8 * 1024 * 1024, dtype=torch.float32)  # 32 MB
    save_file({"w": values}, str(tmp_path / "model.safetensors"))
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as weights:
        mapped = weights.get_tensor("w")
    assert float(mapped.sum()) == float(values.sum())  # every page read, now resident
    before = _rss_file_kb()
    released = release_file_pages([mapped])
    assert released >= 31 * 1024 * 1024
    assert before - _rss_file_kb() >= 24 * 1024  # at least 24 MB fewer resident file pages
    assert torch.equal(mapped, values)  # read again from the file: the same values

    anonymous = values.clone()
    assert release_file_pages([anonymous]) == 0  # not in a mapped weights file: left alone
    assert torch.equal(anonymous, values)


ARENA_SCRIPT = """
import ctypes, threading
from assistant.engine import memory
print(memory.limit_malloc_arenas())
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
threads = [threading.Thread(target=lambda: libc.free(libc.malloc(4096))) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc.malloc_stats()
"""


@linux_only
@pytest.mark.parametrize("setting, limited", [("1", True), ("0", False)])
def test_malloc_arenas_limited_unless_turned_off(setting, limited):
    """A fresh interpreter whose threads allocate: one arena in all under the default limit, several without."""
    import os
    import subprocess

    env = dict(os.environ, ASSISTANT_MALLOC_ARENAS=setting)
    done = subprocess.run([sys.executable, "-c", ARENA_SCRIPT], env=env, capture_output=True, text=True, check=True)
    arenas = done.stderr.count("Arena ")
    assert done.stdout.strip() == str(limited)
    assert (arenas == 1) if limited else (arenas > 1)
