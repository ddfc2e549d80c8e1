"""What the TUI does around its start: the log file, the first-paint benchmark line, start-up notices.

Kept apart from app.py so the app class only composes and routes; nothing here imports Textual.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ..errors import AssistantError
from ..paths import user_paths

log = logging.getLogger(__name__)

HEAVY_MODULES = ("torch", "transformers")
BENCH_FILE = "tui_first_paint.json"


def record_first_paint(seconds: float, heavy: list[str]) -> None:
    """Write the start-to-first-paint time for the benchmark when ASSISTANT_BENCH_OUT names a folder or .json file."""
    target = os.environ.get("ASSISTANT_BENCH_OUT")
    if not target:
        return
    path = Path(target)
    try:
        if path.suffix != ".json":
            path.mkdir(parents=True, exist_ok=True)
            path = path / BENCH_FILE
        path.write_text(
            json.dumps({"metric": "tui_first_paint_s", "value": seconds, "heavy_modules_imported": heavy}) + "\n",
            encoding="utf-8",
        )
    except OSError as error:
        log.warning("cannot write the first-paint benchmark to %s: %s", path, error)


def home_relative(path: Path) -> str:
    """`~/…` for a path under the home folder (how the help screen names the config file)."""
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


def setup_logging() -> None:
    """Log to the user data dir (Textual owns the terminal; tracebacks go to the file)."""
    from ..paths import touch_private

    try:
        paths = user_paths().ensure()
        handler = logging.FileHandler(touch_private(paths.log_file), encoding="utf-8")
    except (OSError, AssistantError):
        return
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    if not any(isinstance(h, logging.FileHandler) for h in root.handlers):
        root.addHandler(handler)
    root.setLevel(logging.INFO)


def startup_notices() -> list[str]:
    """Warnings to show once the app has painted: files an older install left readable to others (made private),
    and installed dependency versions outside the tested ranges (the CLI prints those on stderr; the TUI owns
    the terminal, so it shows them as notices)."""
    from ..paths import take_notices
    from ..stack import stack_problems

    lines = list(take_notices())
    try:
        problems = stack_problems()
    except Exception:  # noqa: BLE001 - a metadata oddity must never stop the app
        log.exception("could not check the installed versions")
        problems = []
    for problem in problems:
        log.warning("untested dependency: %s", problem)
        lines.append(f"{problem} (see `assistant doctor`)")
    return lines
