"""Who may approve a tool call: the confirmation policy, the surface's approver, and the remembered allow-list.

Tools with side effects, every screenshot, and a file-reading tool asked for a path the user did not attach or
name in the chat (`path_reason`) need the user's confirmation. Approval comes from exactly three
places, all under the user's control and none reachable from model output or tool results:
- `pre_approved` (the CLI's `--yes`), set by the surface when it builds the policy: for `ask --agent` a set of
  tool names (`--yes TOOL,TOOL`, or by default the tools the user's own question names: `question_tools`), so a
  call that a prompt injection asks for, of any other tool, is still asked;
- the allow-list `always_allow` in the [agent] table of the user config file, which only `remember()` writes,
  and only the policy calls it, after the approver answered `Answer.ALWAYS`; for pointer actions (click, move,
  drag, scroll) an "always" answer is a rule for that tool in one application window (`click` in "Calculator"),
  kept in its own small file (`always-allow.json` in the config folder, `window_rules_file`); the window title is
  what the X server reports for the window under the target (Tool.allow_scope), never text the model wrote or a
  screenshot shows; `type_text` and `press_keys` are never always allowed;
- the approver: a callback the surface supplies (a CLI prompt, a TUI dialog). It must return an `Answer`
  member; anything else (a string, True, text from a tool) counts as a denial.

The config file is shared with other settings ([keys], [tui], ...): only the `always_allow` line of [agent] is
rewritten, the rest of the file is kept byte for byte, and the result is parsed again before it replaces the
file (atomically), so a failed update never damages the user's settings.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import re
import tempfile
import threading
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import AbstractSet, Any, Callable, Iterable, Iterator, Mapping, Sequence

from .errors import AssistantError

AGENT_TABLE = "agent"
ALLOW_KEY = "always_allow"

ALWAYS_CONFIRM: frozenset[str] = frozenset({"screenshot"})
"""Tools that ask even when they do not declare side effects (a screenshot can show anything on the screen)."""

ASK_EVERY_TIME: frozenset[str] = frozenset({"type_text", "press_keys"})
"""Keyboard actions: asked before every call (the keys go wherever the focus is, and text is anything). "Always" is
never offered, an "always" answer approves that one call, an always_allow entry for them is ignored; only `--yes`
covers a run."""
PER_WINDOW: frozenset[str] = frozenset({"click", "move", "drag", "scroll"})
"""Pointer actions: "always" is a rule for the tool in one application window (what a click does depends on what
is under it); a tool-wide always_allow entry for them is ignored. So is any tool that declares `allow_scope`."""
MAX_TITLE = 200
"""Window titles longer than this are not offered for a rule (a title is shown whole when the user is asked)."""


def window_label(tool: str, window: str) -> str:
    """`click in "Calculator"` (the title quoted as JSON: control characters escaped, safe to print)."""
    return f"{tool} in {json.dumps(window, ensure_ascii=True)}"


class Answer(enum.Enum):
    """What the user answered to one confirmation."""

    ONCE = "once"
    ALWAYS = "always"
    DENY = "deny"


@dataclass(frozen=True)
class ApprovalRequest:
    """What the surface shows when asking: the tool, the exact arguments, and why it asks."""

    tool: str
    description: str
    arguments: Mapping[str, Any]
    reason: str
    preview: str = ""
    """What the call will do, in the tool's words (Tool.preview): e.g. where a click lands and a preview image."""
    always: str = ""
    """What answering "always" would allow from now on (`zoom`, `click in "Calculator"`); "" when "always" is not
    offered (keyboard actions, or a pointer action whose window has no known title): ask once or deny only."""

    def arguments_text(self) -> str:
        """The arguments as one line of JSON with every control character escaped (safe to print in a terminal)."""
        return json.dumps(dict(self.arguments), ensure_ascii=True, sort_keys=True, default=str)


Approver = Callable[[ApprovalRequest], Answer]


@dataclass(frozen=True)
class Decision:
    """The outcome of a check. `how`: not-needed, pre-approved, always-allowed, approved, approved-always,
    denied or no-approver. `rule`: the always rule that allowed it or was made (`click in "Calculator"`)."""

    approved: bool
    how: str
    asked: bool = False
    """True when the approver was asked."""
    note: str = ""
    """A problem worth telling the user (e.g. the config file could not be read or updated)."""
    rule: str = ""

    @property
    def reason(self) -> str:
        """The decision in one word, stored with the call (tool message meta `approval_reason`): not-needed, yes
        (--yes, this run only), always (a remembered rule, or the answer that made one), once, denied, no-approver."""
        return {
            "pre-approved": "yes",
            "always-allowed": "always",
            "approved-always": "always",
            "approved": "once",
        }.get(self.how, self.how)

    def describe(self) -> str:
        text = {
            "not-needed": "no confirmation needed",
            "pre-approved": "pre-approved (--yes)",
            "always-allowed": "always allowed (config)",
            "approved": "approved",
            "approved-always": "approved, always allowed from now on",
            "denied": "denied",
            "no-approver": "denied: confirmation needed but nobody can answer",
        }.get(self.how, self.how)
        if self.rule and self.how == "always-allowed":
            text = f"always allowed ({self.rule})"
        elif self.rule and self.how == "approved-always":
            text = f"approved, always allowed from now on: {self.rule}"
        if self.how == "no-approver":
            return f"{text} ({self.note or 'pass --yes to pre-approve'})"
        return f"{text} ({self.note})" if self.note else text


QUESTION_WORDS: Mapping[str, tuple[str, ...]] = {"screenshot": ("screen", "display")}
"""Words besides its own name that show the user's question asks for a tool ("what is on my screen?")."""


def _word_pattern(name: str) -> str:
    parts = [re.escape(part) for part in re.split(r"[_\s-]+", name) if part]
    return r"(?<!\w)" + r"[\s_-]*".join(parts) + r"(?:s|es|d|ed|ing)?(?!\w)"


def question_tools(question: str, tool_names: Iterable[str]) -> frozenset[str]:
    """The tools the user's own question names: each tool's name as a word (`zoom`, `type text`, `clicks`), or a
    word of QUESTION_WORDS (`screen` for `screenshot`). What plain `--yes` pre-approves; only the question typed
    by the user counts, never a document's text, a tool result or what the model wrote."""
    text = unicodedata.normalize("NFKC", question)
    found = set()
    for name in tool_names:
        words = (name, *QUESTION_WORDS.get(name, ()))
        if any(re.search(_word_pattern(word), text, re.IGNORECASE) for word in words):
            found.add(name)
    return frozenset(found)


def confirmation_reason(name: str, side_effects: bool) -> str | None:
    """Why calling this tool needs confirmation, or None when it does not."""
    if name in ALWAYS_CONFIRM:
        return "it captures your screen"
    if side_effects:
        return "it has side effects"
    return None


@dataclass
class Permissions:
    """The confirmation policy of one agent run. Build it in the surface; hand the agent the object."""

    approver: Approver | None = None
    pre_approved: bool | AbstractSet[str] = False
    """`--yes`: True pre-approves every call (`tools run NAME --yes`, where the user named the one tool); a set of
    tool names pre-approves the calls of those tools only (`ask --agent --yes [TOOL,...]`)."""
    config_file: Path | None = None
    """The user config file holding [agent] always_allow (default: user_paths().config_file)."""
    rules_file: Path | None = None
    """The per-window rules of pointer actions (default: window_rules_file())."""
    _allowed: set[str] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _file(self) -> Path:
        if self.config_file is not None:
            return Path(self.config_file)
        from .paths import user_paths

        return user_paths().config_file

    def _rules(self) -> Path:
        return Path(self.rules_file) if self.rules_file is not None else window_rules_file()

    @property
    def allowed(self) -> frozenset[str]:
        """The tools the user always allows (read from the config file once; AssistantError when it is broken)."""
        with self._lock:
            if self._allowed is None:
                self._allowed = set(read_allow_list(self._file()))
            return frozenset(self._allowed)

    def pre_approves(self, name: str) -> bool:
        """True when `--yes` covers calls of this tool."""
        if isinstance(self.pre_approved, bool):
            return self.pre_approved
        return name in self.pre_approved

    def needs_confirmation(self, name: str, side_effects: bool, reason: str | None = None) -> bool:
        return reason is not None or confirmation_reason(name, side_effects) is not None

    def check(
        self,
        name: str,
        description: str,
        side_effects: bool,
        arguments: Mapping[str, Any],
        reason: str | None = None,
        preview: str = "",
        scope: str | None = None,
    ) -> Decision:
        """Decide one call of a registered tool. The approver is the only source of a new approval.

        `reason`: why this particular call needs confirmation although the tool may not (see `path_reason`).
        `scope`: the title of the window the call acts on (Tool.allow_scope; "" unknown); pointer actions and
        tools that give a scope are always allowed per window only.
        """
        reasons = [why for why in (confirmation_reason(name, side_effects), reason) if why]
        reason = "; ".join(reasons) if reasons else None
        if reason is None:
            return Decision(True, "not-needed")
        if self.pre_approves(name):
            return Decision(True, "pre-approved")
        note = ""
        per_window = name in PER_WINDOW or scope is not None
        window = (scope or "").strip() if per_window and name not in ASK_EVERY_TIME else ""
        if len(window) > MAX_TITLE:
            window = ""
        try:
            if name in ASK_EVERY_TIME:
                pass
            elif per_window:
                if window and any(rule.matches(name, window) for rule in read_window_rules(self._rules())):
                    return Decision(True, "always-allowed", rule=window_label(name, window))
            elif name in self.allowed:
                return Decision(True, "always-allowed")
        except AssistantError as error:  # a broken config file only means asking again
            note = str(error)
        if self.approver is None:
            if not isinstance(self.pre_approved, bool):  # a scoped --yes that does not cover this tool
                covered = sorted(self.pre_approved)
                hint = f"pass --yes {','.join(sorted({*covered, name}))} to pre-approve it"
                hint = f"--yes covers {', '.join(covered)}; {hint}" if covered else hint
                note = f"{note}; {hint}" if note else hint
            return Decision(False, "no-approver", note=note)
        if name in ASK_EVERY_TIME:
            always = ""
        elif per_window:
            always = window_label(name, window) if window else ""
        else:
            always = name
        request = ApprovalRequest(
            tool=name, description=description, arguments=dict(arguments), reason=reason, preview=preview,
            always=always,
        )
        try:
            answer = self.approver(request)
        except Exception:  # noqa: BLE001 - a broken prompt denies, it never approves
            return Decision(False, "denied", asked=True)
        if answer is Answer.ONCE:
            return Decision(True, "approved", asked=True, note=note)
        if answer is Answer.ALWAYS and name in ASK_EVERY_TIME:
            return Decision(True, "approved", asked=True, note="typing and keys are approved one call at a time")
        if answer is Answer.ALWAYS and per_window and not always:
            return Decision(True, "approved", asked=True, note="no window title to remember; approved this call")
        if answer is Answer.ALWAYS and per_window:
            try:
                add_window_rule(self._rules(), name, window)
            except (AssistantError, OSError) as error:
                return Decision(True, "approved", asked=True, note=f"not remembered: {error}")
            return Decision(True, "approved-always", asked=True, rule=always)
        if answer is Answer.ALWAYS:
            try:
                self.remember(name)
            except (AssistantError, OSError) as error:  # approved for this call; remembering failed
                return Decision(True, "approved", asked=True, note=f"not remembered: {error}")
            return Decision(True, "approved-always", asked=True)
        return Decision(False, "denied", asked=True, note=note)

    @staticmethod
    def path_reason(reads_paths: Sequence[str], arguments: Mapping[str, Any], messages: Sequence[Any]) -> str | None:
        """Why a call of a file-reading tool needs confirmation: the paths in its `reads_paths` arguments that the
        user did not attach or name in the chat (`messages`); None when there are none.

        Only the user's messages count (assistant.namedpaths): a path the model wrote, or one found in a tool
        result or an attached document, is never taken as the user's consent.
        """
        from .namedpaths import unnamed_paths

        values = [arguments[key] for key in reads_paths if isinstance(arguments.get(key), str)]
        unknown = unnamed_paths(values, messages)
        if not unknown:
            return None
        return f"it reads {', '.join(unknown)}, which you did not attach or name in this chat"

    def remember(self, name: str) -> None:
        """Always allow `name` from now on (saved in the config file)."""
        allowed = set(add_to_allow_list(self._file(), name))
        with self._lock:
            self._allowed = allowed


# --- the config file ------------------------------------------------------------------------------------------------


def _load(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return "", {}
    except (OSError, UnicodeDecodeError) as error:
        raise AssistantError(f"cannot read {path}: {error}; fix or remove the file") from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise AssistantError(f"{path} is not valid TOML ({error}); fix the file (its [agent] table holds always_allow)") from None


def _table(data: Mapping[str, Any], path: Path) -> dict[str, Any]:
    table = data.get(AGENT_TABLE, {})
    if not isinstance(table, dict):
        raise AssistantError(f"{path}: `{AGENT_TABLE}` must be a table like [agent]; fix the file")
    return table


def read_agent_config(path: Path) -> dict[str, Any]:
    """The [agent] table of the config file ({} when the file or the table is missing)."""
    _, data = _load(Path(path))
    return dict(_table(data, Path(path)))


def _names(data: Mapping[str, Any], path: Path) -> list[str]:
    names = _table(data, path).get(ALLOW_KEY, [])
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise AssistantError(f'{path}: [agent] {ALLOW_KEY} must be a list of tool names, e.g. ["zoom"]; fix the file')
    return list(names)


def read_allow_list(path: Path) -> list[str]:
    """The tools always allowed in the config file (empty when the file or the key is missing)."""
    _, data = _load(Path(path))
    return _names(data, Path(path))


def add_to_allow_list(path: Path, name: str) -> list[str]:
    """Add a tool to [agent] always_allow; returns the new list."""
    return _update_allow_list(Path(path), lambda names: names + [name] if name not in names else names)


def remove_from_allow_list(path: Path, name: str) -> list[str]:
    """Remove a tool from [agent] always_allow; returns the new list."""
    return _update_allow_list(Path(path), lambda names: [item for item in names if item != name])


_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_ARRAY_HEADER = re.compile(r"^\s*\[\[")
_KEY = re.compile(rf"^\s*{ALLOW_KEY}\s*=")


def _value_lines(lines: list[str], start: int) -> int:
    """How many lines the `always_allow = ...` value starting at `start` spans (multi-line arrays included)."""
    for end in range(start + 1, len(lines) + 1):
        try:
            tomllib.loads("".join(lines[start:end]))
            return end - start
        except tomllib.TOMLDecodeError:
            continue
    return 1


def _toml_line(names: list[str]) -> str:
    # json.dumps with ensure_ascii only emits escapes that TOML basic strings share (\" \\ \n \uXXXX ...).
    return f"{ALLOW_KEY} = [{', '.join(json.dumps(name, ensure_ascii=True) for name in names)}]\n"


def _rewrite(text: str, names: list[str]) -> str:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    section: str | None = None
    header_at: int | None = None
    section_end = len(lines)
    for index, line in enumerate(lines):
        if _ARRAY_HEADER.match(line):
            if section == AGENT_TABLE:
                section_end = index
                break
            section = None
            continue
        match = _HEADER.match(line)
        if match:
            if section == AGENT_TABLE:
                section_end = index
                break
            section = match.group(1).strip().strip('"').strip("'")
            if section == AGENT_TABLE:
                header_at = index
    if header_at is None:
        prefix = "".join(lines)
        separator = "\n" if prefix.strip() else ""
        return f"{prefix}{separator}[{AGENT_TABLE}]\n{_toml_line(names)}"
    for index in range(header_at + 1, section_end):
        if _KEY.match(lines[index]):
            span = _value_lines(lines, index)
            lines[index : index + span] = [_toml_line(names)]
            return "".join(lines)
    lines.insert(header_at + 1, _toml_line(names))
    return "".join(lines)


_file_lock = threading.Lock()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One writer at a time: a thread lock, plus an advisory file lock where the platform has one."""
    with _file_lock:
        from .paths import make_private_dir, touch_private

        make_private_dir(path.parent)
        lock_path = path.with_name(path.name + ".lock")
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            yield
            return
        with open(touch_private(lock_path), "a", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _update_allow_list(path: Path, change: Callable[[list[str]], list[str]]) -> list[str]:
    with _locked(path):
        text, data = _load(path)
        before = _names(data, path)
        after = change(list(before))
        if after == before:
            return after
        new_text = _rewrite(text, after)
        try:
            new_data = tomllib.loads(new_text)
        except tomllib.TOMLDecodeError:
            new_data = None
        expected = dict(data)
        expected[AGENT_TABLE] = dict(data.get(AGENT_TABLE, {}), **{ALLOW_KEY: after})
        if new_data != expected:
            raise AssistantError(
                f"cannot update {path} safely (its [agent] table is written in an unusual way); "
                f'edit it by hand: [agent] {ALLOW_KEY} = {json.dumps(after)}'
            )
        fd, temporary = tempfile.mkstemp(prefix=".config-", suffix=".toml", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(new_text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temporary, 0o600)  # the config is private whatever the umask or the old file's mode
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        return after


# --- the per-window rules of pointer actions ------------------------------------------------------------------------

RULES_FILE_NAME = "always-allow.json"
RULES_VERSION = 1


def window_rules_file() -> Path:
    """Where the per-window always rules live: `always-allow.json` in the user's config folder."""
    from .paths import user_paths

    return user_paths().config / RULES_FILE_NAME


@dataclass(frozen=True)
class WindowRule:
    """Always allow `tool` in the application window titled exactly `window`."""

    tool: str
    window: str
    added: str = ""
    """When the user answered "always" (UTC, ISO 8601)."""

    def matches(self, tool: str, window: str) -> bool:
        return self.tool == tool and self.window == window and bool(window)

    def label(self) -> str:
        return window_label(self.tool, self.window)


def read_window_rules(path: Path | None = None) -> list[WindowRule]:
    """The per-window rules (empty when the file is missing); AssistantError when the file is broken."""
    path = Path(path) if path is not None else window_rules_file()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as error:
        raise AssistantError(f"cannot read {path}: {error}; fix or remove the file") from None
    problem = f"{path} is not a rules file written by the assistant; fix or remove it (every pointer action then asks)"
    try:
        data = json.loads(text)
    except ValueError:
        raise AssistantError(problem) from None
    rules = data.get("rules") if isinstance(data, dict) else None
    if not isinstance(rules, list):
        raise AssistantError(problem)
    found = []
    for item in rules:
        if not (isinstance(item, dict) and isinstance(item.get("tool"), str) and isinstance(item.get("window"), str)):
            raise AssistantError(problem)
        found.append(WindowRule(item["tool"], item["window"], str(item.get("added", ""))))
    return found


def _write_rules(path: Path, rules: list[WindowRule]) -> None:
    from .paths import write_private

    data = {
        "version": RULES_VERSION,
        "rules": [{"tool": rule.tool, "window": rule.window, "added": rule.added} for rule in rules],
    }
    write_private(path, json.dumps(data, indent=2, ensure_ascii=True) + "\n")


def add_window_rule(path: Path | None, tool: str, window: str) -> list[WindowRule]:
    """Always allow `tool` in the window titled `window` from now on; returns the rules."""
    import datetime

    path = Path(path) if path is not None else window_rules_file()
    if tool in ASK_EVERY_TIME:
        raise AssistantError(f"{tool} is never always allowed: it asks before every call")
    if not window.strip():
        raise AssistantError("a rule needs a window title")
    with _locked(path):
        rules = read_window_rules(path)
        if any(rule.matches(tool, window) for rule in rules):
            return rules
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        rules.append(WindowRule(tool, window, now))
        _write_rules(path, rules)
        return rules


def remove_window_rules(path: Path | None, tool: str, window: str | None = None) -> list[WindowRule]:
    """Remove the rules of `tool` (in every window, or only in `window`); returns the rules removed."""
    path = Path(path) if path is not None else window_rules_file()
    with _locked(path):
        rules = read_window_rules(path)
        gone = [rule for rule in rules if rule.tool == tool and (window is None or rule.window == window)]
        if gone:
            _write_rules(path, [rule for rule in rules if rule not in gone])
        return gone
