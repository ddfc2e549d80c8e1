"""TUI settings: every key binding (id, default keys, scope) and the user's overrides from config.toml.

The user config file may hold

    [keys]                 # binding id = "key" or "key1,key2" (or a list of keys)
    toggle_sidebar = "f9"  # a key bound twice (F2 is rate_up) is reported once and marked on the help screen
    send = "enter"

    [tui]
    theme = "nord"         # any Textual theme name
    timings = true         # per-reply TTFT and tokens/s footer
    images = "auto"        # auto, tgp, sixel, halfcell or unicode thumbnails

Pure Python: no textual import, so the key table can be read (and tested) without starting the UI.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GLOBAL = "Anywhere"
PROMPT = "Prompt"
REPLY = "A selected reply"
CHAT_LIST = "Chat list (sidebar)"
SCOPES: tuple[str, ...] = (GLOBAL, PROMPT, REPLY, CHAT_LIST)

IMAGE_RENDERERS: tuple[str, ...] = ("auto", "tgp", "sixel", "halfcell", "unicode")


@dataclass(frozen=True)
class KeySpec:
    """One rebindable key binding: `id` is the name used in the [keys] table."""

    id: str
    keys: str
    """Default keys, comma-separated, in Textual's key names (ctrl+b, escape, f1, shift+enter)."""
    action: str
    description: str
    scope: str
    label: str = ""
    """A short name for the footer bar and the palette's key display (default: the description)."""
    footer: bool = False
    """Shown in the footer bar."""
    priority: bool = False
    """Checked before the focused widget's own keys."""
    binding: bool = True
    """False for keys the prompt handles itself, in order with the typed text (a Binding could overtake it)."""


KEY_SPECS: tuple[KeySpec, ...] = (
    KeySpec("help", "f1", "help", "This help: keys and commands", GLOBAL, label="Help", footer=True),
    KeySpec("palette", "ctrl+p", "command_palette", "Command palette: every action", GLOBAL, label="Commands", priority=True),
    KeySpec("toggle_sidebar", "ctrl+b", "toggle_sidebar", "Chat list on/off", GLOBAL, label="Chats", footer=True),
    KeySpec("new_chat", "ctrl+n", "new_chat", "New chat", GLOBAL, label="New chat", footer=True),
    KeySpec("stop", "escape", "stop", "Stop the reply (its text is kept)", GLOBAL, label="Stop", footer=True),
    KeySpec("regenerate", "ctrl+r", "regenerate", "Regenerate the last reply", GLOBAL, label="Regenerate", footer=True),
    KeySpec("edit_last", "ctrl+o", "edit_last", "Edit and resend the last question", GLOBAL),
    KeySpec("rate_up", "f2", "rate(1)", "Rate the reply +1 (again: clear)", GLOBAL),
    KeySpec("rate_down", "f3", "rate(-1)", "Rate the reply -1 (again: clear)", GLOBAL),
    KeySpec("correct", "f4", "correct", "Correct the reply (training data)", GLOBAL),
    KeySpec("toggle_agent", "ctrl+t", "toggle_agent", "Agent mode on/off: the model may use tools", GLOBAL),
    KeySpec("quit", "ctrl+q", "quit", "Quit", GLOBAL, label="Quit", footer=True, priority=True),
    KeySpec("send", "enter", "submit", "Send, or run the /command", PROMPT, binding=False),
    KeySpec("newline", "ctrl+j,shift+enter,alt+enter", "newline", "Insert a new line", PROMPT, binding=False),
    KeySpec("complete", "tab", "complete", "Accept the completion", PROMPT, binding=False),
    KeySpec("copy_reply", "c", "copy", "Copy the reply", REPLY),
    KeySpec("rename_chat", "ctrl+e", "rename", "Rename the chat", CHAT_LIST),
    KeySpec("delete_chat", "delete,ctrl+d", "delete", "Delete the chat (asks first: Ctrl+Y deletes)", CHAT_LIST),
    KeySpec("export_chat", "ctrl+s", "export", "Export the chat to Markdown", CHAT_LIST),
)
"""Every rebindable key, in the order the help screen lists them."""

FIXED_KEYS: tuple[tuple[str, str, str], ...] = (
    ("↑ / ↓", "History (on the first / last line), menu", PROMPT),
    ("Ctrl+V", "Paste the clipboard: an image becomes a chip (wl-paste / xclip / pngpaste), text goes in", PROMPT),
    ("Backspace", "At the start: remove the last chip", PROMPT),
    ("Enter", "Open the highlighted chat", CHAT_LIST),
    ("Letters", "Typed into the search box (the list has no letter keys)", CHAT_LIST),
    ("Tab / Shift+Tab", "Move: prompt, replies, chat list", GLOBAL),
    ("Delete / click", "Remove a focused chip", PROMPT),
    ("Esc", "Close a dialog or the menu", GLOBAL),
    ("Ctrl+S", "Save in the editor", GLOBAL),
    ("Y / N", "Answer a confirmation (a deletion: Ctrl+Y / N)", GLOBAL),
)
"""Keys that belong to Textual widgets and dialogs (not rebindable), listed on the help screen."""


def key_spec(binding_id: str) -> KeySpec:
    for spec in KEY_SPECS:
        if spec.id == binding_id:
            return spec
    raise KeyError(binding_id)


@dataclass
class TuiConfig:
    """What the user configured for the TUI; `problems` are shown as warnings and the defaults used instead."""

    keys: dict[str, str] = field(default_factory=dict)
    """Binding id -> comma-separated keys, overriding KEY_SPECS."""
    theme: str = ""
    timings: bool = True
    images: str = "auto"
    problems: list[str] = field(default_factory=list)

    def keys_for(self, binding_id: str) -> str:
        """The keys in effect for a binding id (the override, else the default)."""
        return self.keys.get(binding_id) or key_spec(binding_id).keys

    def clashes(self) -> list["KeyClash"]:
        """Keys bound to two actions active at once (shown once as a warning at start-up, and on the help screen)."""
        return key_clashes(self)


@dataclass(frozen=True)
class KeyClash:
    """One key bound to several actions that can be active at the same time: the key does only one of them."""

    key: str
    ids: tuple[str, ...]

    def describe(self) -> str:
        actions = " and ".join(f"{binding_id} ({key_spec(binding_id).description})" for binding_id in self.ids)
        return f"key {key_label(self.key)} is bound to {actions}; it does only one of them: change one in [keys]"


def _overlap(first: str, second: str) -> bool:
    """Scopes whose keys compete: the same one, or Anywhere with any other (the focused widget's key wins there)."""
    return first == second or GLOBAL in (first, second)


def key_clashes(config: "TuiConfig") -> list[KeyClash]:
    """Keys bound twice where both bindings are active together (e.g. F2 for toggle_sidebar and for rate_up)."""
    by_key: dict[str, list[KeySpec]] = {}
    for spec in KEY_SPECS:
        for key in config.keys_for(spec.id).split(","):
            if key.strip():
                by_key.setdefault(key.strip().lower(), []).append(spec)
    clashes = []
    for key, specs in by_key.items():
        ids = [spec.id for spec in specs if any(_overlap(spec.scope, other.scope) for other in specs if other is not spec)]
        if len(ids) > 1:
            clashes.append(KeyClash(key, tuple(ids)))
    return clashes


def _key_list(value: Any) -> str | None:
    if isinstance(value, str):
        keys = [key.strip() for key in value.split(",")]
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        keys = [key.strip() for key in value]
    else:
        return None
    keys = [key for key in keys if key]
    return ",".join(keys) if keys else None


_MODIFIERS = frozenset({"ctrl", "shift", "alt", "meta", "super", "hyper"})
_NAMED_KEYS = frozenset(
    {"backspace", "delete", "down", "end", "enter", "escape", "home", "insert", "left", "pagedown", "pageup",
     "return", "right", "space", "tab", "up"} | {f"f{number}" for number in range(1, 25)}
)
_TYPING_SCOPES = (GLOBAL, PROMPT, CHAT_LIST)
"""Scopes where a plain printable key is also text being typed (the prompt, the chat list's search box)."""


def _character_of(name: str) -> str | None:
    """The character a Textual key name stands for ("a" -> "a", "comma" -> ","), None when it names none."""
    import unicodedata

    if len(name) == 1:
        return name
    for candidate in (name.replace("_", " "), name.replace("_", "-")):
        try:
            character = unicodedata.lookup(candidate.upper())
        except KeyError:
            continue
        return character if ord(character) < 0x100 else None  # "comma", "full_stop"; not "banana" (an emoji)
    return None


def key_problem(key: str, scope: str) -> str | None:
    """Why `key` cannot be bound in `scope` (a name no keyboard sends, or a key that types text there); None if fine."""
    parts = key.lower().split("+")
    base, modifiers = parts[-1], parts[:-1]
    unknown = [modifier for modifier in modifiers if modifier not in _MODIFIERS]
    if unknown or not base:
        return f"{key!r} is not a key: {', '.join(unknown) or 'nothing'} is not ctrl, shift, alt or meta"
    if base not in _NAMED_KEYS and _character_of(base) is None:
        return f"{key!r} is not a key name (e.g. ctrl+b, f5, escape, enter, a)"
    typed = base == "space" or (base not in _NAMED_KEYS and (_character_of(base) or "").isprintable())
    if typed and set(modifiers) <= {"shift"} and scope in _TYPING_SCOPES:
        return f"{key!r} types text in the prompt or the chat search; bind it with ctrl+ or alt+, or use an F key"
    return None


def parse_tui_config(data: dict[str, Any], source: str = "config.toml") -> TuiConfig:
    """Validate the [keys] and [tui] tables; anything wrong becomes a problem line, never an exception."""
    config = TuiConfig()
    known = {spec.id for spec in KEY_SPECS}
    keys = data.get("keys", {})
    if not isinstance(keys, dict):
        config.problems.append(f"[keys] in {source} must be a table of binding = \"key\"; it is ignored")
        keys = {}
    for binding_id, value in keys.items():
        if binding_id not in known:
            config.problems.append(
                f"unknown key binding {binding_id!r} in [keys] of {source}; known ids: {', '.join(sorted(known))}"
            )
            continue
        parsed = _key_list(value)
        if parsed is None:
            config.problems.append(f"[keys] {binding_id} in {source} must be a key name like \"ctrl+b\"; ignored")
            continue
        scope = key_spec(binding_id).scope
        problems = [problem for problem in (key_problem(key, scope) for key in parsed.split(",")) if problem]
        if problems:
            config.problems.append(f"[keys] {binding_id} in {source}: {problems[0]}; the default is kept")
            continue
        config.keys[binding_id] = parsed
    config.problems.extend(f"{clash.describe()} of {source}" for clash in key_clashes(config))
    tui = data.get("tui", {})
    if not isinstance(tui, dict):
        config.problems.append(f"[tui] in {source} must be a table; it is ignored")
        tui = {}
    theme = tui.get("theme", "")
    if isinstance(theme, str):
        config.theme = theme.strip()
    else:
        config.problems.append(f"[tui] theme in {source} must be a theme name (a string); ignored")
    timings = tui.get("timings", True)
    if isinstance(timings, bool):
        config.timings = timings
    else:
        config.problems.append(f"[tui] timings in {source} must be true or false; ignored")
    images = tui.get("images", "auto")
    if images in IMAGE_RENDERERS:
        config.images = images
    else:
        config.problems.append(f"[tui] images in {source} must be one of {', '.join(IMAGE_RENDERERS)}; using auto")
    return config


def load_tui_config(path: Path | None = None) -> TuiConfig:
    """Read the TUI settings from the user's config file (a missing file means all defaults)."""
    if path is None:
        from ..paths import user_paths

        path = user_paths().config_file
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return TuiConfig()
    except OSError as error:
        return TuiConfig(problems=[f"cannot read {path}: {error.strerror or error}; using the default keys"])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        return TuiConfig(problems=[f"{path} is not valid TOML ({error}); using the default keys"])
    return parse_tui_config(data, str(path))


def key_label(keys: str) -> str:
    """Textual key names as people read them: `ctrl+b,escape` -> `Ctrl+B / Esc`."""
    names = {
        "escape": "Esc",
        "enter": "Enter",
        "backspace": "Backspace",
        "delete": "Delete",
        "tab": "Tab",
        "up": "↑",
        "down": "↓",
        "left": "←",
        "right": "→",
        "pageup": "PgUp",
        "pagedown": "PgDn",
        "space": "Space",
    }
    labels = []
    for key in keys.split(","):
        parts = key.strip().split("+")
        shown = []
        for part in parts:
            if part in names:
                shown.append(names[part])
            elif len(part) == 1:
                shown.append(part.upper() if len(parts) > 1 else part)
            elif part[0] == "f" and part[1:].isdigit():
                shown.append(part.upper())
            else:
                shown.append(part.title())
        labels.append("+".join(shown))
    return " / ".join(labels)
