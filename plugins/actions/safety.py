"""The guard rails around desktop actions: settings, the corner failsafe, pacing, the per-request limit, the log.

Approval itself is not here: every action tool declares side effects, so the agent's permission policy
(assistant.permissions) asks the user before each call. These rails work after approval, on every call.
"""

from __future__ import annotations

import datetime
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from assistant.dryrun import DRY_RUN_ENV  # one name for every surface that sets it
from assistant.errors import AssistantError

if TYPE_CHECKING:
    from assistant.conversation import Message

ACTION_TOOLS: frozenset[str] = frozenset({"click", "move", "drag", "scroll", "type_text", "press_keys"})
"""The tools that inject input (wait does not, and is not counted)."""
DEFAULT_MAX_ACTIONS = 20
DEFAULT_DELAY_S = 0.5
MAX_DELAY_S = 10.0
FAILSAFE_PX = 2
"""The pointer within this many pixels of a monitor corner trips the failsafe."""
COORDINATE_SYSTEMS = ("image", "pixel", "norm1000", "norm1", "percent", "model")


@dataclass(frozen=True)
class ActionSettings:
    """[agent] settings of desktop actions (the user config file)."""

    max_actions: int = DEFAULT_MAX_ACTIONS
    """Most actions one request (one question to the agent) may make."""
    delay_s: float = DEFAULT_DELAY_S
    """Least time between two actions (pacing: the user can see, and stop, what happens)."""
    dry_run: bool = False
    """Record and preview every action, inject nothing."""
    coordinates: str = "image"
    """What x, y mean: "image" (pixels of the screenshot as stored, default), "model" (the profile's grounding
    coordinates), or one system by name: pixel, norm1000, norm1, percent."""
    failsafe: bool = True


def load_settings(config_file: Path | None = None) -> ActionSettings:
    """The action settings from [agent] (defaults for keys not set); AssistantError naming a wrong value."""
    from assistant.paths import user_paths
    from assistant.permissions import read_agent_config

    path = config_file or user_paths().config_file
    table = read_agent_config(path)

    def number(key: str, default: float, low: float, high: float, whole: bool) -> Any:
        value = table.get(key, default)
        kinds = (int,) if whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
            kind = "a whole number" if whole else "a number"
            raise AssistantError(f"{path}: [agent] {key} must be {kind} from {low:g} to {high:g}, not {value!r}")
        return value

    def flag(key: str, default: bool) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            raise AssistantError(f"{path}: [agent] {key} must be true or false, not {value!r}")
        return value

    coordinates = table.get("action_coordinates", "image")
    if coordinates not in COORDINATE_SYSTEMS:
        raise AssistantError(
            f"{path}: [agent] action_coordinates must be one of {', '.join(COORDINATE_SYSTEMS)}, not {coordinates!r}"
        )
    dry_run = flag("actions_dry_run", False) or os.environ.get(DRY_RUN_ENV, "").strip().lower() in ("1", "true", "yes")
    return ActionSettings(
        max_actions=int(number("max_actions", DEFAULT_MAX_ACTIONS, 1, 1000, True)),
        delay_s=float(number("action_delay_s", DEFAULT_DELAY_S, 0, MAX_DELAY_S, False)),
        dry_run=dry_run,
        coordinates=str(coordinates),
        failsafe=flag("action_failsafe", True),
    )


# --- the corner failsafe -------------------------------------------------------------------------------------------


def corner_of(x: int, y: int, monitors: Sequence[tuple[int, int, int, int]]) -> str | None:
    """Which monitor corner desktop pixel (x, y) is in (within FAILSAFE_PX), e.g. "top-left of monitor 2"."""
    for index, (left, top, width, height) in enumerate(monitors, start=1):
        right, bottom = left + width - 1, top + height - 1
        for name, cx, cy in (("top-left", left, top), ("top-right", right, top),
                             ("bottom-left", left, bottom), ("bottom-right", right, bottom)):
            if abs(x - cx) <= FAILSAFE_PX and abs(y - cy) <= FAILSAFE_PX:
                return f"{name} corner of monitor {index}"
    return None


def failsafe_message(corner: str) -> str:
    return (
        f"stopped by the failsafe: the mouse pointer is in the {corner}, so no more actions run; "
        "move it away from the corner and ask again"
    )


# --- pacing ----------------------------------------------------------------------------------------------------------

_last_action = 0.0
_pace_lock = threading.Lock()


def pace(delay_s: float, cancelled: Any = None) -> bool:
    """Wait until `delay_s` has passed since the previous action; False when cancelled while waiting."""
    global _last_action
    with _pace_lock:
        while True:
            remaining = _last_action + delay_s - time.monotonic()
            if remaining <= 0:
                break
            if cancelled is not None and cancelled():
                return False
            time.sleep(min(remaining, 0.05))
        _last_action = time.monotonic()
    return True


# --- the per-request limit -------------------------------------------------------------------------------------------


def actions_this_request(messages: Sequence["Message"]) -> int:
    """How many action calls the chat holds since the user's last message (the current call included)."""
    count = 0
    for message in reversed(messages):
        if message.role == "user":
            break
        if message.role == "assistant":
            count += sum(1 for call in message.tool_calls if call.name in ACTION_TOOLS)
    return count


# --- the log ---------------------------------------------------------------------------------------------------------

_log_lock = threading.Lock()


def log_file() -> Path:
    from assistant.paths import user_paths

    return user_paths().data / "actions.log"


def record(tool: str, arguments: dict[str, Any], outcome: str, **details: Any) -> None:
    """Append one line of JSON to the action log (data dir, actions.log): when, what, where, and what happened.

    The log is for the user to see what the agent did; a failure to write it never stops an action.
    """
    entry = {
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "tool": tool,
        "arguments": arguments,
        "outcome": outcome,
        **details,
    }
    path = log_file()
    try:
        with _log_lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry, ensure_ascii=True, default=str) + "\n")
    except OSError:
        pass


def read_log(limit: int = 50) -> list[dict[str, Any]]:
    """The last `limit` entries of the action log (oldest first)."""
    try:
        lines = log_file().read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    entries = []
    for line in lines[-limit:]:
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries
