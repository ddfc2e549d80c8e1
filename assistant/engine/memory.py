"""Give freed tensor memory back to the operating system, so resident memory stays near what is in use.

Measured with `bench-smolvlm-256m-bf16` on the 2-core bench machine (glibc): after one screenshot question the
process stayed at 1745 MB resident, because glibc keeps the vision encoder's freed activations in its heap.
`malloc_trim` after each reply hands that free heap back (`trim_freed_memory`). A fixed mmap threshold
(`ASSISTANT_MALLOC_MMAP_THRESHOLD`, opt-in) also lowers the peak (1558 MB against 1648 MB) but maps fresh,
zeroed pages for every large activation: turn-1 TTFT rose from 5.4 s to 7.0 s, so it is not the default.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import sys
from typing import Any

from ..envsettings import read_number

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3
"""mallopt's parameter number for the mmap threshold (glibc's malloc.h)."""


@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    """The C library, found once (find_library runs ldconfig; the trim runs after every reply)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def apply_mmap_threshold() -> bool:
    """Honour `ASSISTANT_MALLOC_MMAP_THRESHOLD=BYTES` (blocks that large are unmapped when freed); False if unset."""
    wanted = read_number("ASSISTANT_MALLOC_MMAP_THRESHOLD", "a whole number of bytes, 0 or more",
                         "glibc's own threshold", whole=True)
    if not wanted:
        return False
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False
    return mallopt(_M_MMAP_THRESHOLD, int(wanted)) == 1


_M_ARENA_MAX = -8
"""mallopt's parameter number for the most malloc arenas (glibc's malloc.h)."""


def limit_malloc_arenas() -> bool:
    """Let glibc's malloc use at most `ASSISTANT_MALLOC_ARENAS` arenas (default 1; 0 keeps glibc's 8 a core).

    Each thread that allocates while another holds the lock gets its own arena, whose freed blocks stay in it:
    the engine thread, its OpenMP workers and the main thread then hold separate free heaps. Measured with the
    CPU-only torch build (docs/performance.md, round 3): one arena lowered the screenshot question's peak from
    1059 to 1002 MB and the follow-up's from 1156 to 1114 MB, with no slower turn. The limit applies to arenas
    created afterwards, so it is set before the engine thread starts (engine/executor.py); False where unset.
    """
    wanted = read_number("ASSISTANT_MALLOC_ARENAS", "a whole number of arenas, 0 or more", "1", whole=True)
    wanted = 1 if wanted is None else wanted
    if not wanted:
        return False
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False
    return mallopt(_M_ARENA_MAX, int(wanted)) == 1


def trim_freed_memory() -> bool:
    """Return the allocator's free heap memory to the system (glibc's malloc_trim); False where unavailable."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:
        return False
    trim(0)
    return True


_MADV_DONTNEED = 4
"""madvise advice number (Linux): drop these pages from the process; a file mapping reads them again if touched."""


def release_file_pages(tensors: list[Any], suffix: str = ".safetensors") -> int:
    """Drop the resident pages of tensors that live in a memory-mapped weights file and are no longer used.

    transformers maps safetensors files instead of copying them (bf16 on the CPU: the weights are the file's
    pages). When the fused decode step copies q/k/v and gate/up into one matrix each, the old tensors' pages,
    just read for the copy, would stay resident next to the copy (~140 MB for SmolVLM-256M in bf16). Only
    whole pages inside a tensor that lies in a private mapping of a `suffix` file are dropped (the caller no
    longer uses those tensors: even a page it had changed would only read the file's bytes again); the file
    stays mapped and unchanged. Returns the bytes released (0 where the weights are not mapped, not on Linux).
    """
    madvise = getattr(_libc(), "madvise", None)
    if madvise is None or not tensors:
        return 0
    mappings = _file_mappings(suffix)
    if not mappings:
        return 0
    page = os.sysconf("SC_PAGE_SIZE")
    released = 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    for tensor in tensors:
        start = tensor.data_ptr()
        end = start + tensor.numel() * tensor.element_size()
        if not any(low <= start and end <= high for low, high in mappings):
            continue
        first, last = -(-start // page) * page, end // page * page
        if last > first and madvise(first, last - first, _MADV_DONTNEED) == 0:
            released += last - first
    return released


def _file_mappings(suffix: str) -> list[tuple[int, int]]:
    """Address ranges of this process's private (copy-on-write) mappings of files whose name ends with `suffix`."""
    ranges = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and fields[5].strip().endswith(suffix) and fields[1].endswith("p"):
                    low, high = fields[0].split("-")
                    ranges.append((int(low, 16), int(high, 16)))
    except OSError:
        return []
    return ranges
