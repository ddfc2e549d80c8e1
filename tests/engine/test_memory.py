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
