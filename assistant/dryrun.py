"""Dry runs of desktop actions: one flag that any surface (`ask --agent --dry-run`, `tools run --dry-run`) sets for
the length of a run, and the action tools read before injecting anything.

An environment variable, so a user can also set it for a whole session (`ASSISTANT_ACTIONS_DRY_RUN=1`).
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

DRY_RUN_ENV = "ASSISTANT_ACTIONS_DRY_RUN"


@contextlib.contextmanager
def actions_dry_run(enabled: bool = True) -> Iterator[None]:
    """Within the block (when `enabled`), action tools record and preview what they would do and send nothing."""
    if not enabled:
        yield
        return
    previous = os.environ.get(DRY_RUN_ENV)
    os.environ[DRY_RUN_ENV] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(DRY_RUN_ENV, None)
        else:
            os.environ[DRY_RUN_ENV] = previous
