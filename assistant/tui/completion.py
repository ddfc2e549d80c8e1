"""Prompt completion data: file-path candidates, choices by prefix, and image paths found in pasted text."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
"""File names offered for /image and recognised in pastes (anything PIL decodes is accepted when attached)."""

MAX_CANDIDATES = 200


@dataclass(frozen=True)
class Completion:
    """One entry of the completion menu: accepting it sets the prompt to `replacement`."""

    replacement: str
    label: str
    detail: str = ""
    final: bool = True
    """False for a directory: accepting it keeps the menu open to go on inside it."""
    kind: str = "choice"
    """command, path or choice: Enter takes a highlighted command or choice, but sends a typed path as it is."""


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def complete_path(partial: str, images_only: bool = False) -> list[tuple[str, bool]]:
    """Paths that extend `partial` as (text to insert, is_directory), directories first.

    The text keeps the user's own spelling of the folder part (`~/Pic` -> `~/Pictures/`); hidden entries are
    offered only when the typed name starts with a dot; with `images_only` files must look like images.
    """
    expanded = os.path.expanduser(partial) if partial.startswith("~") else partial
    if partial in ("~",):
        expanded, partial = expanded + os.sep, partial + "/"
    if not expanded or expanded.endswith(("/", os.sep)):
        folder, prefix = (expanded or "."), ""
    else:
        folder, prefix = os.path.dirname(expanded) or ".", os.path.basename(expanded)
    shown_folder = partial[: len(partial) - len(prefix)]
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    found: list[tuple[str, bool]] = []
    for fold in (False, True):  # exact-case matches first; fall back to case-insensitive ones
        for entry in entries:
            name = entry.name
            matches = name.casefold().startswith(prefix.casefold()) if fold else name.startswith(prefix)
            if not matches or (name.startswith(".") and not prefix.startswith(".")):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                continue
            if images_only and not is_dir and not is_image_path(Path(name)):
                continue
            found.append((shown_folder + name + ("/" if is_dir else ""), is_dir))
        if found:
            break
    found.sort(key=lambda item: (not item[1], item[0].casefold()))
    return found[:MAX_CANDIDATES]


def complete_choice(partial: str, choices: list[str]) -> list[str]:
    """Choices starting with `partial` (case-insensitive), in their given order."""
    folded = partial.casefold()
    return [choice for choice in choices if choice.casefold().startswith(folded)]


def _as_path(token: str) -> Path | None:
    token = token.strip()
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "\"'":
        token = token[1:-1]
    if token.startswith("file://"):
        token = unquote(urlparse(token).path)
    if not token:
        return None
    path = Path(os.path.expanduser(token))
    try:
        if path.is_file() and is_image_path(path):
            return path
    except OSError:
        return None
    return None


def _all_images(tokens: list[str]) -> list[Path] | None:
    if not tokens:
        return None
    paths = [_as_path(token) for token in tokens]
    if any(path is None for path in paths):
        return None
    return [path for path in paths if path is not None]


def image_paths_in_paste(text: str) -> list[Path] | None:
    """The image files a paste names, or None when it is ordinary text.

    Terminals paste a dropped file as its path: plain, quoted, backslash-escaped (`my\\ cat.png`) or as a
    file:// URL, one or several separated by spaces or new lines. Every piece must be an existing image file,
    so pasting prose that merely mentions a file is left alone.
    """
    stripped = text.strip()
    if not stripped or len(stripped) > 8192:
        return None
    single = _all_images([stripped])
    if single:
        return single
    lines = [line for line in stripped.splitlines() if line.strip()]
    if len(lines) > 1:
        by_line = _all_images(lines)
        if by_line:
            return by_line
    try:
        tokens = shlex.split(stripped)
    except ValueError:
        return None
    return _all_images(tokens)
