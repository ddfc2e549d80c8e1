"""Key combinations as people and models write them ("ctrl+s", "alt+tab", "enter", "ctrl shift t") -> X keysyms."""

from __future__ import annotations

import re

from assistant.errors import AssistantError

MODIFIERS: dict[str, str] = {
    "ctrl": "ctrl", "control": "ctrl", "alt": "alt", "option": "alt", "shift": "shift",
    "super": "super", "win": "super", "windows": "super", "meta": "super", "cmd": "super", "command": "super",
}
NAMED: dict[str, str] = {
    "enter": "Return", "return": "Return", "tab": "Tab", "esc": "Escape", "escape": "Escape",
    "backspace": "BackSpace", "delete": "Delete", "del": "Delete", "space": "space", "insert": "Insert",
    "up": "Up", "down": "Down", "left": "Left", "right": "Right", "home": "Home", "end": "End",
    "pageup": "Prior", "pgup": "Prior", "pagedown": "Next", "pgdn": "Next", "menu": "Menu",
    "printscreen": "Print", "print": "Print", "plus": "plus", "minus": "minus",
    "arrowup": "Up", "arrowdown": "Down", "arrowleft": "Left", "arrowright": "Right",
}
PUNCTUATION: dict[str, str] = {
    "-": "minus", "=": "equal", ",": "comma", ".": "period", "/": "slash", ";": "semicolon", "'": "apostrophe",
    "[": "bracketleft", "]": "bracketright", "\\": "backslash", "`": "grave",
}
MAX_KEYS = 5
_SPLIT = re.compile(r"\s*\+\s*|\s+")


def keysym(name: str) -> str:
    """One key name -> its X keysym; AssistantError for a name that is not a known key."""
    lowered = name.strip().lower()
    if lowered in MODIFIERS:
        return MODIFIERS[lowered]
    if lowered in NAMED:
        return NAMED[lowered]
    if re.fullmatch(r"f([1-9]|1[0-9]|2[0-4])", lowered):
        return lowered.upper()
    if len(lowered) == 1 and (lowered.isascii() and lowered.isalnum()):
        return lowered
    if name.strip() in PUNCTUATION:
        return PUNCTUATION[name.strip()]
    raise AssistantError(
        f"unknown key {name!r}; use names such as ctrl, alt, shift, super, enter, tab, esc, backspace, delete, "
        "space, up, down, left, right, home, end, pageup, pagedown, f1-f24, a letter or a digit"
    )


def parse_combination(text: str) -> list[str]:
    """"ctrl+s" / "ctrl s" / "Alt+Tab" -> ["ctrl", "s"]: modifiers first, then at most one other key."""
    if not isinstance(text, str) or not text.strip():
        raise AssistantError('give the keys to press, e.g. "ctrl+s", "alt+tab" or "enter"')
    raw = text.strip()
    names = [raw] if raw in PUNCTUATION or raw == "+" else [part for part in _SPLIT.split(raw) if part]
    if raw.endswith("++"):  # "ctrl++": the last key is the plus key
        names = [part for part in _SPLIT.split(raw[:-2]) if part] + ["plus"]
    if len(names) > MAX_KEYS:
        raise AssistantError(f"{text!r} has {len(names)} keys; press at most {MAX_KEYS} keys at once")
    syms = ["plus" if name == "+" else keysym(name) for name in names]
    others = [sym for sym in syms if sym not in MODIFIERS.values()]
    if len(others) > 1:
        raise AssistantError(
            f"{text!r} presses {len(others)} ordinary keys at once; give one combination (e.g. ctrl+s) per call"
        )
    if len(set(syms)) != len(syms):
        raise AssistantError(f"{text!r} names a key twice")
    return [sym for sym in syms if sym in MODIFIERS.values()] + others
