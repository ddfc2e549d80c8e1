"""Reading the system clipboard for Ctrl+V in the prompt: an image (PNG, JPEG...) or text, through the platform's tool.

Terminals only hand text to applications (bracketed paste), so an image on the clipboard is fetched by running the
clipboard tool: `wl-paste` on Wayland, `xclip` on X11, `pngpaste` on macOS. Pure Python (subprocess): no textual.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Mapping, Sequence

from ..errors import AssistantError

IMAGE_TYPES: tuple[str, ...] = ("image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp")
"""Clipboard types taken as an image, best first."""

TIMEOUT_S = 5.0
"""A clipboard owner that does not answer in this time (a hung X client) is given up on."""

MAX_BYTES = 64 * 1024 * 1024

INSTALL_HINT = {
    "wayland": "install wl-clipboard (wl-paste)",
    "x11": "install xclip (Debian/Ubuntu: apt install xclip)",
    "darwin": "install pngpaste (brew install pngpaste)",
}


@dataclass(frozen=True)
class ClipboardContent:
    """What Ctrl+V found: image bytes (with their type), or text; `tool` names the program that read it."""

    tool: str
    image: bytes | None = None
    image_type: str = ""
    text: str = ""


def _run(command: Sequence[str], env: Mapping[str, str]) -> bytes | None:
    """The command's stdout, or None when it fails (an empty clipboard makes these tools exit non-zero)."""
    try:
        done = subprocess.run(list(command), capture_output=True, timeout=TIMEOUT_S, env=dict(env), check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0 or len(done.stdout) > MAX_BYTES:
        return None
    return done.stdout


def _session(env: Mapping[str, str], platform: str) -> str:
    if platform == "darwin":
        return "darwin"
    if platform.startswith("win"):
        return "windows"
    if env.get("WAYLAND_DISPLAY") and shutil.which("wl-paste", path=env.get("PATH")):
        return "wayland"
    if env.get("DISPLAY"):
        return "x11"
    if env.get("WAYLAND_DISPLAY"):
        return "wayland"
    return ""


def _read_wayland(env: Mapping[str, str]) -> ClipboardContent:
    tool = shutil.which("wl-paste", path=env.get("PATH"))
    if tool is None:
        raise AssistantError(f"cannot read the clipboard: wl-paste is not installed; {INSTALL_HINT['wayland']}")
    types = (_run([tool, "--list-types"], env) or b"").decode("utf-8", "replace").split()
    for kind in IMAGE_TYPES:
        if kind in types:
            data = _run([tool, "--no-newline", "--type", kind], env)
            if data:
                return ClipboardContent("wl-paste", image=data, image_type=kind)
    text = _run([tool, "--no-newline"], env)
    return ClipboardContent("wl-paste", text=(text or b"").decode("utf-8", "replace"))


def _read_x11(env: Mapping[str, str]) -> ClipboardContent:
    tool = shutil.which("xclip", path=env.get("PATH"))
    if tool is None:
        raise AssistantError(f"cannot read the clipboard: xclip is not installed; {INSTALL_HINT['x11']}")
    base = [tool, "-selection", "clipboard", "-o"]
    types = (_run([*base, "-t", "TARGETS"], env) or b"").decode("utf-8", "replace").split()
    for kind in IMAGE_TYPES:
        if kind in types:
            data = _run([*base, "-t", kind], env)
            if data:
                return ClipboardContent("xclip", image=data, image_type=kind)
    text = _run([*base, "-t", "UTF8_STRING"], env) if "UTF8_STRING" in types else _run(base, env)
    return ClipboardContent("xclip", text=(text or b"").decode("utf-8", "replace"))


def _read_darwin(env: Mapping[str, str]) -> ClipboardContent:
    tool = shutil.which("pngpaste", path=env.get("PATH"))
    if tool is not None:
        data = _run([tool, "-"], env)
        if data:
            return ClipboardContent("pngpaste", image=data, image_type="image/png")
    text_tool = shutil.which("pbpaste", path=env.get("PATH"))
    text = _run([text_tool], env) if text_tool else None
    if tool is None and not text:
        raise AssistantError(f"cannot read an image from the clipboard: {INSTALL_HINT['darwin']}")
    return ClipboardContent("pbpaste", text=(text or b"").decode("utf-8", "replace"))


def read_clipboard(env: Mapping[str, str] | None = None, platform: str | None = None) -> ClipboardContent:
    """The clipboard's image (preferred) or text. AssistantError when no tool can read it, saying what to install."""
    env = os.environ if env is None else env
    session = _session(env, platform or sys.platform)
    if session == "wayland":
        return _read_wayland(env)
    if session == "x11":
        return _read_x11(env)
    if session == "darwin":
        return _read_darwin(env)
    if session == "windows":
        raise AssistantError(
            "pasting an image from the clipboard is not supported on Windows yet; save it to a file and "
            "attach it with /image PATH"
        )
    raise AssistantError(
        "cannot read the clipboard: no graphical session ($WAYLAND_DISPLAY / $DISPLAY unset); "
        "attach an image file with /image PATH"
    )
