"""How many threads the fused decode loop uses: one for int8 on small machines, where waking a second costs more.

With OpenMP's passive wait (assistant/openmp.py) each of a token's ~150 parallel regions wakes the sleeping
threads (~50 µs a wake). torch's int8 kernel gains nothing from a second thread on 2 cores (22.3 ms a token with
one or two), so for the int8 step the wakes are pure cost, and worst beside busy programs: measured in one
`assistant bench --decode --hog 2` run each (docs/performance.md, round 5), int8 with one decode thread 18.1
tokens/s idle and 14.7 beside two busy processes, with two 16.8 and 9.4. bf16's products are compute-bound and do
gain from the second thread (47 against 60 ms), so float steps keep torch's count, as do larger machines. The
prefill and the vision encoder always use every thread. ASSISTANT_DECODE_THREADS=N overrides both.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

DECODE_THREADS_SETTING = "ASSISTANT_DECODE_THREADS"
SMALL_MACHINE_THREADS = 2
"""At or below this many torch threads, the int8 step decodes with one."""


def decode_thread_count(quantized: bool) -> int:
    """ASSISTANT_DECODE_THREADS; else 1 for an int8 step where torch runs SMALL_MACHINE_THREADS threads or fewer;
    else torch's own count."""
    import torch

    from ..envsettings import read_number

    current = torch.get_num_threads()
    default = 1 if quantized and current <= SMALL_MACHINE_THREADS else current
    count = read_number(DECODE_THREADS_SETTING, "a whole number of threads, 1 or more", str(default),
                        whole=True, minimum=1)
    return int(count) if count is not None else default


@contextlib.contextmanager
def decode_threads(quantized: bool) -> Iterator[None]:
    """torch's thread count (this thread's) set for decoding within the block, then restored."""
    import torch

    before = torch.get_num_threads()
    count = decode_thread_count(quantized)
    if count != before:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
