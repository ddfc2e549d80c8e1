"""Give freed tensor memory back to the operating system, so resident memory stays near what is in use.

Measured with `bench-smolvlm-256m-bf16` on the 2-core bench machine: glibc's malloc raises its mmap threshold
after the first large free (up to 32 MB), then serves the vision encoder's activations from the heap and keeps
them after they are freed: 1745 MB resident after one screenshot question, peak 1885 MB. With a fixed 1 MiB
threshold (fixing it also stops the adjustment) large blocks are mapped and unmapped: 1485 MB, peak 1558 MB.
Blocks under 1 MiB (a token's activations and logits) still come from the heap, so decode pays no extra calls.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

MMAP_THRESHOLD = 1 << 20
"""Bytes; allocations this large are mapped on their own and returned to the system when freed."""
_M_MMAP_THRESHOLD = -3
"""mallopt's parameter number for the threshold (glibc's malloc.h)."""


def release_large_blocks() -> bool:
    """Fix glibc's mmap threshold (Linux only); False when not applied (other systems, other libc, disabled).

    `ASSISTANT_MALLOC_MMAP_THRESHOLD` overrides the threshold in bytes; 0 leaves the allocator alone.
    """
    wanted = os.environ.get("ASSISTANT_MALLOC_MMAP_THRESHOLD", "").strip()
    threshold = int(wanted) if wanted.isdigit() else MMAP_THRESHOLD
    if threshold == 0 or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    applied = mallopt(_M_MMAP_THRESHOLD, threshold) == 1
    if not applied:
        log.info("could not set malloc's mmap threshold; freed memory may stay resident")
    return applied
