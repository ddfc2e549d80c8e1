"""What the terminal can draw (Sixel, Kitty graphics, cell size), asked once before Textual starts, keeping type-ahead.

textual-image asks the terminal itself when it is imported, reading stdin one byte at a time: a key typed before
the first paint was taken for the start of an answer and lost, the real answer (`ESC[?1;2c`) then reached the app
as typed text, and what remained went to whichever widget had the focus. Here the questions are asked together,
ended by Primary Device Attributes (which every terminal answers, after the others), and everything read that is
not an answer is kept as type-ahead for the prompt. textual-image is then imported without asking again.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import sys
import time
from dataclasses import dataclass
from typing import Iterator

TGP_QUERY = "\x1b_Gi=31,s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\"
"""Kitty graphics protocol: query support with a 1x1 image (answered `ESC_Gi=31;OK ESC\\` where supported)."""
CELL_QUERY = "\x1b[16t"
"""xterm: the cell size in pixels (`ESC[6;H;Wt`)."""
DA1_QUERY = "\x1b[c"
"""Primary Device Attributes (`ESC[?...c`; 4 in the list means Sixel): every terminal answers it, last."""
TIMEOUT_S = 1.0

_DA1 = re.compile(r"\x1b\[\?([0-9;]*)c")
_TGP = re.compile(r"\x1b_G([^\x1b]*)\x1b\\")
_CELL = re.compile(r"\x1b\[6;(\d+);(\d+)t")
_OTHER = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass
class TerminalInfo:
    """What the terminal answered; `typeahead` is what the user typed meanwhile (shown in the prompt)."""

    tty: bool = False
    sixel: bool = False
    tgp: bool = False
    cell_size: tuple[int, int] | None = None
    """(width, height) of a character cell in pixels, when known."""
    typeahead: str = ""


def parse_answers(data: str) -> TerminalInfo:
    """Split what was read into the terminal's answers and the user's keys (kept in order, answers removed)."""
    info = TerminalInfo(tty=True)
    found = _DA1.search(data)
    if found:
        info.sixel = "4" in found.group(1).split(";")
    for answer in _TGP.finditer(data):
        if answer.group(1).rsplit(";", 1)[-1] == "OK":
            info.tgp = True
    cell = _CELL.search(data)
    if cell and int(cell.group(1)) and int(cell.group(2)):
        info.cell_size = (int(cell.group(2)), int(cell.group(1)))
    rest = _OTHER.sub("", _CELL.sub("", _TGP.sub("", _DA1.sub("", data))))
    info.typeahead = "".join(ch for ch in rest if ch.isprintable())
    return info


def _window_cell_size(fd: int) -> tuple[int, int] | None:
    import fcntl
    import struct
    import termios

    try:
        rows, columns, width, height = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    if rows and columns and width and height:
        return width // columns, height // rows
    return None


def probe(stdin_fd: int, stdout_fd: int, timeout: float = TIMEOUT_S) -> TerminalInfo:
    """Ask the terminal (both ends must be terminals) and read until its DA1 answer, keeping typed keys."""
    import termios
    import tty

    if not (os.isatty(stdin_fd) and os.isatty(stdout_fd)):
        return TerminalInfo()
    saved = termios.tcgetattr(stdin_fd)
    data = b""
    try:
        tty.setcbreak(stdin_fd, termios.TCSANOW)  # no echo: neither the keys nor the answers appear on the screen
        cell = _window_cell_size(stdout_fd)
        os.write(stdout_fd, (TGP_QUERY + ("" if cell else CELL_QUERY) + DA1_QUERY).encode())
        deadline = time.monotonic() + timeout
        while not _DA1.search(data.decode("utf-8", "replace")):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([stdin_fd], [], [], left)[0]:
                break
            chunk = os.read(stdin_fd, 4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        return TerminalInfo(tty=True)
    finally:
        termios.tcsetattr(stdin_fd, termios.TCSANOW, saved)
    info = parse_answers(data.decode("utf-8", "replace"))
    info.cell_size = cell or info.cell_size
    return info


_INFO: TerminalInfo | None = None


def terminal_info() -> TerminalInfo:
    """The terminal's answers, asked the first time (nothing is asked when stdin or stdout is not a terminal)."""
    global _INFO
    if _INFO is None:
        try:
            _INFO = probe(sys.__stdin__.fileno(), sys.__stdout__.fileno()) if sys.__stdin__ and sys.__stdout__ else TerminalInfo()
        except (OSError, ValueError, ImportError):  # no fileno (captured streams), no termios (Windows)
            _INFO = TerminalInfo()
    return _INFO


def take_typeahead() -> str:
    """The keys typed before the app could show them, once (the app puts them in the prompt)."""
    info = terminal_info()
    text, info.typeahead = info.typeahead, ""
    return text


class _NotATerminal:
    """sys.__stdout__ as textual-image's import sees it: not a terminal, so it asks nothing (we already did)."""

    def __init__(self, stream: object) -> None:
        self._stream = stream

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


@contextlib.contextmanager
def quiet_textual_image() -> Iterator[TerminalInfo]:
    """Import textual-image inside this block: it takes the cell size from our answers and asks nothing itself."""
    info = terminal_info()
    from textual_image import _terminal

    if info.cell_size is not None:
        _terminal.get_cell_size._result = _terminal.CellSize(*info.cell_size)  # type: ignore[attr-defined]
    real = sys.__stdout__
    sys.__stdout__ = _NotATerminal(real)  # type: ignore[assignment,misc]
    try:
        yield info
    finally:
        sys.__stdout__ = real  # type: ignore[misc]
