"""Xvfb for tests: a virtual X display with two side-by-side RandR monitors, painted with known colours.

Fixtures (import them into a conftest: `from xvfb import xvfb_server, xvfb_display  # noqa: F401`):
- `xvfb_server` (session): starts `Xvfb -displayfd` on a free display number, 1280x480, split into two
  640x480 RandR monitors with `xrandr --setmonitor` (that is what mss reads on X11); stopped at the end.
- `xvfb_display` (function): the same server with $DISPLAY pointing at it (and $WAYLAND_DISPLAY unset).
Tests using them are skipped only when the Xvfb binary is missing; missing xsetroot/xrandr (package
x11-xserver-utils) is an error, because it would silently weaken the tests.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

XVFB = shutil.which("Xvfb")
SKIP_REASON = "Xvfb is not installed (Debian: apt-get install xvfb x11-xserver-utils)"
requires_xvfb = pytest.mark.skipif(XVFB is None, reason=SKIP_REASON)

WIDTH, HEIGHT = 1280, 480
MONITORS: tuple[tuple[int, int, int, int], ...] = ((0, 0, 640, 480), (640, 0, 640, 480))
"""(left, top, width, height) of monitor 1 and monitor 2."""

Colour = tuple[int, int, int]


@dataclass
class VirtualDisplay:
    """A running Xvfb server: its $DISPLAY name, size and monitors, and helpers to paint its root window."""

    name: str
    width: int
    height: int
    monitors: tuple[tuple[int, int, int, int], ...]
    process: subprocess.Popen[bytes]
    workdir: Path
    _bitmaps: dict[str, Path] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ, DISPLAY=self.name)
        env.pop("WAYLAND_DISPLAY", None)
        return env

    def run(self, *command: str) -> str:
        """Run an X client against this display; fail the test with its stderr if it fails."""
        tool = shutil.which(command[0])
        if tool is None:
            pytest.fail(f"{command[0]} is missing: install x11-xserver-utils next to xvfb")
        done = subprocess.run([tool, *command[1:]], env=self.env, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def paint_solid(self, colour: Colour) -> None:
        """Fill the whole root window with one colour."""
        self.run("xsetroot", "-solid", _hex(colour))

    def paint_mask(self, key: str, inside: Callable[[int, int], bool], foreground: Colour, background: Colour) -> None:
        """Paint pixel (x, y) `foreground` where `inside(x, y)`, else `background` (an XBM the size of the screen)."""
        path = self._bitmaps.get(key)
        if path is None:
            path = self.workdir / f"{key}.xbm"
            path.write_text(_xbm(self.width, self.height, inside), encoding="ascii")
            self._bitmaps[key] = path
        self.run("xsetroot", "-bitmap", str(path), "-fg", _hex(foreground), "-bg", _hex(background))


def _hex(colour: Colour) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def _xbm(width: int, height: int, inside: Callable[[int, int], bool]) -> str:
    """An X bitmap: rows padded to whole bytes, least significant bit first, 1 = foreground."""
    values: list[str] = []
    for y in range(height):
        for byte_x in range(0, width, 8):
            byte = 0
            for bit in range(8):
                x = byte_x + bit
                if x < width and inside(x, y):
                    byte |= 1 << bit
            values.append(f"0x{byte:02x}")
    rows = [", ".join(values[i : i + 16]) for i in range(0, len(values), 16)]
    return (
        f"#define pattern_width {width}\n#define pattern_height {height}\n"
        "static unsigned char pattern_bits[] = {\n" + ",\n".join(rows) + "};\n"
    )


def _read_display_number(process: subprocess.Popen[bytes], fd: int, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or process.poll() is not None:
            break
        ready, _, _ = select.select([fd], [], [], min(remaining, 0.5))
        if ready:
            chunk = os.read(fd, 64)
            if not chunk:
                break
            data += chunk
    if not data.strip():
        process.kill()
        error = process.stderr.read().decode(errors="replace") if process.stderr else ""
        pytest.fail(f"Xvfb did not start: {error.strip()[-500:]}")
    return ":" + data.decode().strip()


def start_xvfb(workdir: Path, width: int = WIDTH, height: int = HEIGHT,
               monitors: tuple[tuple[int, int, int, int], ...] = MONITORS) -> VirtualDisplay:
    """Start Xvfb on a free display (it picks one and reports it through -displayfd) and lay out the monitors.

    `-noreset` keeps the monitors and the painted root window when the last client disconnects.
    """
    if XVFB is None:
        pytest.skip(SKIP_REASON)
    read_fd, write_fd = os.pipe()
    process = subprocess.Popen(
        [XVFB, "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp", "-noreset"],
        pass_fds=(write_fd,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    os.close(write_fd)
    try:
        name = _read_display_number(process, read_fd)
    finally:
        os.close(read_fd)
    display = VirtualDisplay(name=name, width=width, height=height, monitors=monitors, process=process, workdir=workdir)
    try:
        for index, (left, top, w, h) in enumerate(monitors):
            # The first monitor takes over Xvfb's only output ("screen"); the others have none.
            output = "screen" if index == 0 else "none"
            display.run("xrandr", "--setmonitor", f"test-{index + 1}", f"{w}/{w // 4}x{h}/{h // 4}+{left}+{top}", output)
    except BaseException:
        stop_xvfb(display)
        raise
    return display


def stop_xvfb(display: VirtualDisplay) -> None:
    display.process.terminate()
    try:
        display.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        display.process.kill()
        display.process.wait()
    if display.process.stderr:
        display.process.stderr.close()


@pytest.fixture(scope="session")
def xvfb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualDisplay]:
    """One Xvfb for the whole session (1280x480, monitors 640x480 at 0,0 and 640,0)."""
    display = start_xvfb(tmp_path_factory.mktemp("xvfb"))
    try:
        yield display
    finally:
        stop_xvfb(display)


@pytest.fixture
def xvfb_display(xvfb_server: VirtualDisplay, monkeypatch: pytest.MonkeyPatch) -> VirtualDisplay:
    """The session's Xvfb with $DISPLAY set to it for this test."""
    monkeypatch.setenv("DISPLAY", xvfb_server.name)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    return xvfb_server
