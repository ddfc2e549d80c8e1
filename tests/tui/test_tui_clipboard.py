"""Ctrl+V in the prompt reads the real system clipboard (xclip on an Xvfb display): an image becomes a chip, text goes
in, and where no clipboard tool can be used the notice says what to install or do."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from typing import Iterator

import pytest

from tests.helpers import make_image
from tests.tui.tuihelpers import SIZE, async_test, notes, wait_for

XCLIP = shutil.which("xclip")
requires_xclip = pytest.mark.skipif(XCLIP is None, reason="xclip is not installed (Debian: apt-get install xclip)")


@contextlib.contextmanager
def clipboard_holding(data: bytes, kind: str) -> Iterator[None]:
    """xclip owns the X clipboard with `data` as `kind` while the block runs (it serves every request until killed)."""
    assert XCLIP is not None
    owner = subprocess.Popen([XCLIP, "-selection", "clipboard", "-t", kind, "-i", "-quiet"], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert owner.stdin is not None
    owner.stdin.write(data)
    owner.stdin.close()
    try:
        for _ in range(200):  # until the selection is served (xclip reads all of stdin first)
            done = subprocess.run([XCLIP, "-selection", "clipboard", "-t", "TARGETS", "-o"], capture_output=True, timeout=5)
            if kind.encode() in done.stdout:
                break
        yield
    finally:
        owner.kill()
        owner.wait()


@requires_xclip
@async_test
async def test_ctrl_v_pastes_an_image_from_the_clipboard(make_app, xvfb_display, tmp_path):
    picture = make_image(tmp_path / "shot.png", (40, 30), "blue")
    app = make_app(autoload=False)
    with clipboard_holding(picture.read_bytes(), "image/png"):
        async with app.run_test(size=SIZE) as pilot:
            app.prompt.insert("what is this? ")
            await pilot.press("ctrl+v")
            await wait_for(pilot, lambda: app.chips.labels or notes(app, "error"), "the chip")
            assert notes(app, "error") == []
            assert app.chips.labels == ["[Image #1 clipboard 40x30]"]
            [item] = app.attachments.items
            assert item.image.image.getpixel((5, 5))[2] > 200  # the blue picture itself
            assert app.prompt.text == "what is this? "  # the text typed before stays as it was


@requires_xclip
@async_test
async def test_ctrl_v_pastes_text_from_the_clipboard(make_app, xvfb_display):
    app = make_app(autoload=False)
    with clipboard_holding("the error says ENOENT".encode(), "UTF8_STRING"):
        async with app.run_test(size=SIZE) as pilot:
            app.prompt.insert("explain: ")
            await pilot.press("ctrl+v")
            await wait_for(pilot, lambda: "ENOENT" in app.prompt.text or notes(app), "the text")
            assert app.prompt.text == "explain: the error says ENOENT"
            assert app.chips.labels == []


@async_test
async def test_without_a_clipboard_tool_the_notice_says_what_to_do(make_app, monkeypatch, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no xclip, no wl-paste
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    app = make_app(autoload=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+v")
        await wait_for(pilot, lambda: notes(app, "error"), "the notice")
        assert "xclip is not installed" in notes(app, "error")[0] and "apt install xclip" in notes(app, "error")[0]
        monkeypatch.delenv("DISPLAY")
        await pilot.press("ctrl+v")
        await wait_for(pilot, lambda: len(notes(app, "error")) == 2, "the second notice")
        assert "no graphical session" in notes(app, "error")[1] and "/image PATH" in notes(app, "error")[1]
        assert app.chips.labels == [] and app.prompt.text == "" and app.is_running
