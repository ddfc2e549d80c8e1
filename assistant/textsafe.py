"""Text from a model or a tool made safe to print on a terminal: control characters shown, never obeyed.

A reply or a tool result may hold ESC sequences (colours, cursor moves, OSC 52 clipboard writes, title changes)
or bidi overrides that hide text; printed raw, the terminal would act on them.
"""

from __future__ import annotations

import unicodedata

_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _escape(character: str) -> str:
    code = ord(character)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def printable(text: str, keep: str = "") -> str:
    """`text` with every control character (C0, DEL, C1, bidi overrides) written as a visible escape like `\\x1b`.

    Characters in `keep` (e.g. "\\n\\t" for a multi-line answer) stay as they are. Plain text is returned unchanged.
    """
    out = []
    for character in text:
        if character in keep:
            out.append(character)
        elif character in _BIDI_CONTROLS or unicodedata.category(character) == "Cc":
            out.append(_escape(character))
        else:
            out.append(character)
    return "".join(out)
