"""Numbers from ASSISTANT_* environment variables, read one way everywhere.

A value that is not a number (or is below its minimum) keeps the default and says so once per process, as a
notice: the CLI prints it on stderr, the TUI shows it. Tuning knobs should never fail a reply, nor be ignored
without a word.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def read_number(name: str, expected: str, default_text: str, *, whole: bool = False, minimum: float = 0) -> float | None:
    """The value of `name`, or None when it is unset or unusable; then a notice says it is not `expected` (e.g.
    "a size in megabytes, 0 or more") and that `default_text` is used."""
    wanted = os.environ.get(name, "").strip()
    if not wanted:
        return None
    try:
        value: float | None = float(int(wanted)) if whole else float(wanted)
    except ValueError:
        value = None
    if value is not None and value >= minimum:
        return value
    from .guard import announce

    line = f"warning: {name}={wanted!r} is not {expected}, so {default_text} is used"
    log.warning("%s", line)
    announce("assistant", name, line)
    return None


def megabytes_setting(name: str, default: float) -> float:
    """A size in MB from the environment variable `name`; unset or unusable: `default` (the latter said once)."""
    value = read_number(name, "a size in megabytes, 0 or more", f"{default:g}")
    return default if value is None else value
