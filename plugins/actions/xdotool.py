"""Input injection on X11 through xdotool: the only module that moves the pointer or presses keys.

Why xdotool (run as a subprocess) rather than pynput: it adds no Python dependency (pynput on Linux pulls in
evdev, which builds from C source and needs kernel headers), it is a maintained package of every Linux
distribution (Debian/Ubuntu/Fedora `xdotool`), and it drives X11 through XTEST exactly as pynput's X11 backend
does. Its key syntax ("ctrl+s") is the one models write. Other platforms (Wayland without XWayland, macOS,
Windows) get one clear line instead of a silent no-op; a driver for them would implement the same methods.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

from assistant.errors import AssistantError

BUTTONS: dict[str, int] = {"left": 1, "middle": 2, "right": 3}
SCROLL_BUTTONS = {"up": 4, "down": 5, "left": 6, "right": 7}
INSTALL_HINT = "install xdotool (Debian/Ubuntu: apt-get install xdotool)"


def input_problem(environ: Mapping[str, str] | None = None, platform: str | None = None) -> str | None:
    """Why desktop actions cannot run here, before trying; None when X11 and xdotool are available."""
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if platform.startswith(("win", "cygwin", "darwin")):
        return "desktop actions need X11 (xdotool); this platform has no input driver yet"
    if not environ.get("DISPLAY", "").strip():
        if environ.get("WAYLAND_DISPLAY", "").strip():
            return (
                "desktop actions need X11 or XWayland: this Wayland session has no $DISPLAY, and Wayland lets no "
                "program inject input without a portal; run the target application under XWayland"
            )
        return "desktop actions need a display: $DISPLAY is not set (run inside your X11 session)"
    if shutil.which("xdotool") is None:
        return f"desktop actions need xdotool, which is not installed; {INSTALL_HINT}"
    return None


class XdotoolInput:
    """Moves the pointer, clicks, scrolls and types on the X display in $DISPLAY. Coordinates: desktop pixels."""

    def __init__(self, timeout_s: float = 20.0) -> None:
        problem = input_problem()
        if problem:
            raise AssistantError(problem)
        self.binary = shutil.which("xdotool") or "xdotool"
        self.timeout_s = timeout_s

    def _run(self, arguments: Sequence[str], stdin: str | None = None) -> str:
        try:
            done = subprocess.run(
                [self.binary, *arguments], input=stdin, capture_output=True, text=True, timeout=self.timeout_s
            )
        except subprocess.TimeoutExpired:
            raise AssistantError(f"xdotool did not finish in {self.timeout_s:g} s; is the X display responding?") from None
        except OSError as error:
            raise AssistantError(f"cannot run xdotool ({error}); {INSTALL_HINT}") from None
        if done.returncode != 0:
            lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
            raise AssistantError(f"xdotool {arguments[0]} failed: {lines[-1] if lines else f'exit {done.returncode}'}")
        return done.stdout

    def pointer(self) -> tuple[int, int]:
        """Where the pointer is now, in desktop pixels."""
        values = dict(
            line.split("=", 1) for line in self._run(["getmouselocation", "--shell"]).splitlines() if "=" in line
        )
        try:
            return int(values["X"]), int(values["Y"])
        except (KeyError, ValueError):
            raise AssistantError("xdotool did not report the pointer position") from None

    def move(self, x: int, y: int) -> None:
        if self.pointer() == (x, y):
            return  # `mousemove --sync` would wait for a motion that never comes (about 15 s) when already there
        self._run(["mousemove", "--sync", str(x), str(y)])

    def click(self, x: int, y: int, button: str = "left", clicks: int = 1) -> None:
        self.move(x, y)
        self._run(["click", "--repeat", str(clicks), "--delay", "80", str(BUTTONS[button])])

    def drag(self, start: tuple[int, int], end: tuple[int, int], button: str = "left", steps: int = 10) -> None:
        """Press at `start`, move in `steps` steps (applications watch the motion), release at `end`."""
        self.move(*start)
        self._run(["mousedown", str(BUTTONS[button])])
        try:
            for step in range(1, steps + 1):
                x = round(start[0] + (end[0] - start[0]) * step / steps)
                y = round(start[1] + (end[1] - start[1]) * step / steps)
                self._run(["mousemove", str(x), str(y)])
                time.sleep(0.02)
        finally:
            self._run(["mouseup", str(BUTTONS[button])])

    def scroll(self, x: int, y: int, dx: int, dy: int) -> None:
        """Scroll at (x, y): dy > 0 down, dy < 0 up, dx > 0 right, dx < 0 left, in wheel notches."""
        self.move(x, y)
        for amount, positive, negative in ((dy, "down", "up"), (dx, "right", "left")):
            if amount:
                button = SCROLL_BUTTONS[positive if amount > 0 else negative]
                self._run(["click", "--repeat", str(abs(amount)), "--delay", "40", str(button)])

    def type_text(self, text: str) -> None:
        """Type `text` into the focused window (read from stdin: the text never shows in the process list)."""
        self._run(["type", "--clearmodifiers", "--delay", "12", "--file", "-"], stdin=text)

    def press(self, keysyms: Sequence[str]) -> None:
        """Press a combination (["ctrl", "s"]) in the focused window."""
        self._run(["key", "--clearmodifiers", "+".join(keysyms)])

    def focused_windows(self) -> set[int]:
        """The X window with the keyboard focus and its client window (empty when unknown, e.g. focus follows
        the pointer)."""
        found: set[int] = set()
        for arguments in (["getwindowfocus", "-f"], ["getwindowfocus"]):
            try:
                found.add(int(self._run(arguments).strip()))
            except (AssistantError, ValueError):
                continue
        return found

    def window_name(self, window: int | None = None) -> str:
        """The title of a window (default: the one under the pointer); "" when it has none."""
        try:
            if window is None:
                values = dict(
                    line.split("=", 1)
                    for line in self._run(["getmouselocation", "--shell"]).splitlines()
                    if "=" in line
                )
                window = int(values.get("WINDOW", "0"))
            if not window:
                return ""
            return self._run(["getwindowname", str(window)]).strip()
        except (AssistantError, ValueError):
            return ""
