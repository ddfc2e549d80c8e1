"""OpenMP waits passively by default, so decoding degrades gracefully when other programs use the cores.

Measured on the 2-core bench machine while other processes kept it busy (load average 7-11), SmolVLM-256M
bf16, 2 torch threads: libgomp's default (threads spin between parallel regions) decoded 0.5-0.7 tokens/s,
1 thread 4.7-5.7, 2 threads with OMP_WAIT_POLICY=PASSIVE 6.6-6.8 (GOMP_SPINCOUNT=20000: 1.7-2.5); at load 1-2.7,
ACTIVE 2.5-8.7 against PASSIVE 13-18 (an idle machine was not available to measure). A spinning
thread burns the time slice the other one needs to finish its half of the product. The setting only takes
effect before torch starts OpenMP, hence here, at `import assistant`; a value the user set is kept
(`OMP_WAIT_POLICY=ACTIVE` restores the default). docs/performance.md has the numbers.
"""

from __future__ import annotations

import os
import sys


_MARK = "ASSISTANT_SET_OMP_WAIT_POLICY"
"""Exported beside the policy we set, so that this process and its children (an `assistant bench` started by an
assistant) can tell the value is ours, not the user's: the two are equal only when we set both."""


def prefer_passive_wait() -> bool:
    """Set OMP_WAIT_POLICY=PASSIVE unless it is set or torch is already imported; True when set here."""
    if "OMP_WAIT_POLICY" in os.environ or "torch" in sys.modules:
        return False
    os.environ["OMP_WAIT_POLICY"] = os.environ[_MARK] = "PASSIVE"
    return True


def user_environment() -> dict[str, str]:
    """The environment without what `import assistant` set: for other programs started beside ours.

    Child processes inherit our environment, and other OpenMP programs read the same variable: llama.cpp's
    `llama-bench` decoded 32 tokens/s with PASSIVE against 76 with its own default (same machine, minutes apart),
    so a benchmark that compares against it must run it as the user would (docs/performance.md, round 5).
    """
    env = dict(os.environ)
    if env.get(_MARK) == env.get("OMP_WAIT_POLICY"):
        env.pop("OMP_WAIT_POLICY", None)
    env.pop(_MARK, None)
    return env
