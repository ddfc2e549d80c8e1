"""Inline image thumbnails through textual-image: Kitty (TGP) or Sixel where the terminal has them, else half-blocks.

The terminal is asked what it supports once, before Textual takes it over (the app imports this module at start-up,
before `App.run()`), by assistant.tui.terminal, which keeps the keys typed meanwhile; textual-image itself is
imported without asking again (its own questions lost those keys).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image as PILImage
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Static
from ..terminal import quiet_textual_image

with quiet_textual_image() as _terminal:
    from textual_image.widget import HalfcellImage, SixelImage, TGPImage, UnicodeImage


def _auto_renderer() -> type[Widget]:
    """Sixel first, then Kitty graphics (the order textual-image uses), half-blocks on other terminals."""
    if _terminal.sixel:
        return SixelImage
    if _terminal.tgp:
        return TGPImage
    return HalfcellImage if _terminal.tty else UnicodeImage


RENDERERS: dict[str, type[Widget]] = {
    "auto": _auto_renderer(),
    "tgp": TGPImage,
    "sixel": SixelImage,
    "halfcell": HalfcellImage,
    "unicode": UnicodeImage,
}

THUMBNAIL_PIXELS = 512
"""Longest edge of the bitmap handed to the renderer (the cell grid is far smaller; this keeps redraws cheap)."""


def thumbnail_bitmap(source: PILImage.Image | Path) -> PILImage.Image | None:
    """A small RGB copy of an image (file or bitmap); None when the file cannot be read any more."""
    try:
        if isinstance(source, PILImage.Image):
            image = source.copy()
        else:
            with PILImage.open(source) as opened:
                opened.draft("RGB", (THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
                image = opened.convert("RGB")
    except (OSError, ValueError):
        return None
    image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
    return image.convert("RGB")


class Thumbnail(Vertical):
    """An image with a one-line caption under it."""

    def __init__(self, image: PILImage.Image | Path, caption: str, renderer: str = "auto", **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._bitmap = thumbnail_bitmap(image)
        self._caption = caption
        self._renderer = renderer if renderer in RENDERERS else "auto"

    def on_mount(self) -> None:
        # textual-image sizes an `auto` height from the laid-out width, which is 0 in the first layout of a widget
        # mounted into an existing screen: lay it out once more when that width is known.
        self.call_after_refresh(self._relayout)

    def _relayout(self) -> None:
        for image in self.query(".thumbnail-image"):
            image.refresh(layout=True)

    def compose(self) -> ComposeResult:
        if self._bitmap is None:
            yield Static("(image missing)", classes="thumbnail-missing", markup=False)
        else:
            yield RENDERERS[self._renderer](self._bitmap, classes="thumbnail-image")
        yield Static(self._caption, classes="thumbnail-caption", markup=False)
