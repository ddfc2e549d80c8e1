"""Where a screenshot lies on the desktop: each capture's geometry, remembered by its pixels, and the one mapping
from screenshot pixels to virtual-desktop pixels that desktop actions use.

A capture is stored in the chat as a plain image (its bytes name it), so the desktop geometry it came from
(monitor offsets, HiDPI scale) would be lost. `remember_capture` keeps it in this process, keyed by a hash of the
RGB pixels; `capture_of` finds it again for an image of the chat. A chat re-opened in a later process knows no
captures: actions then ask for a fresh screenshot, which is also the safe thing (the screen has changed).
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import AssistantError

if TYPE_CHECKING:
    from PIL.Image import Image

    from .hooktypes import Screenshot

Rect = tuple[int, int, int, int]
"""(left, top, width, height) in virtual-desktop pixels."""

MAX_REMEMBERED = 64


@dataclass(frozen=True)
class ScreenMap:
    """A capture's geometry: its image size, the desktop rectangle it shows, and the monitors of that desktop."""

    image_size: tuple[int, int]
    area: Rect
    """The desktop rectangle the image shows (an image pixel is area.width / image width desktop pixels: HiDPI)."""
    monitors: tuple[Rect, ...] = ()
    """Every monitor of the desktop when the capture was taken (empty: only `area` is known to be on screen)."""
    request_monitor: int | None = None
    """The monitor the capture asked for (None: the whole desktop or a region), to capture the same view again."""

    @property
    def label(self) -> str:
        left, top, width, height = self.area
        return f"{self.image_size[0]}x{self.image_size[1]} screenshot of {width}x{height}+{left}+{top}"

    def to_desktop(self, x: float, y: float) -> tuple[int, int]:
        """Screenshot pixel (x, y) -> virtual-desktop pixel; AssistantError (one line) when it is not on a screen."""
        width, height = self.image_size
        for name, value, high in (("x", x, width), ("y", y, height)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise AssistantError(f"{name} = {value!r} is not a number; give pixels of the screenshot")
            if not 0 <= value < high:
                raise AssistantError(
                    f"refused: ({x:g}, {y:g}) is outside the screenshot ({width}x{height} pixels); "
                    f"give x from 0 to {width - 1} and y from 0 to {height - 1}"
                )
        left, top, area_width, area_height = self.area
        desktop_x = left + math.floor(x * area_width / width)
        desktop_y = top + math.floor(y * area_height / height)
        check_on_screen(desktop_x, desktop_y, self.monitors or (self.area,))
        return desktop_x, desktop_y


def on_monitor(x: int, y: int, monitors: tuple[Rect, ...]) -> int | None:
    """The 1-based monitor holding desktop pixel (x, y), or None."""
    for index, (left, top, width, height) in enumerate(monitors, start=1):
        if left <= x < left + width and top <= y < top + height:
            return index
    return None


def check_on_screen(x: int, y: int, monitors: tuple[Rect, ...]) -> int:
    """The monitor holding desktop pixel (x, y); AssistantError when no monitor shows it."""
    found = on_monitor(x, y, monitors)
    if found is None:
        spans = ", ".join(f"{w}x{h}+{left}+{top}" for left, top, w, h in monitors) or "none known"
        raise AssistantError(
            f"refused: desktop pixel ({x}, {y}) is on no screen (monitors: {spans}); "
            "take a new screenshot and aim inside it"
        )
    return found


def pixel_key(image: "Image") -> str:
    """A hash of an image's RGB pixels and size (the same for a capture and its stored PNG)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


def screen_map(shot: "Screenshot") -> ScreenMap:
    """The geometry of a capture (as the `capture_screenshot` hook returned it)."""
    monitors = tuple(
        (int(m["left"]), int(m["top"]), int(m["width"]), int(m["height"])) for m in (shot.monitors or [])
    )
    return ScreenMap(
        image_size=(shot.image.width, shot.image.height),
        area=(int(shot.left), int(shot.top), int(shot.width), int(shot.height)),
        monitors=monitors,
        request_monitor=shot.monitor,
    )


_remembered: "OrderedDict[str, ScreenMap]" = OrderedDict()
_lock = threading.Lock()


def remember_capture(shot: "Screenshot") -> ScreenMap:
    """Keep a capture's geometry so that actions can map pixels of its image (the newest MAX_REMEMBERED kept)."""
    geometry = screen_map(shot)
    key = pixel_key(shot.image)
    with _lock:
        _remembered[key] = geometry
        _remembered.move_to_end(key)
        while len(_remembered) > MAX_REMEMBERED:
            _remembered.popitem(last=False)
    return geometry


def capture_of(image: "Image") -> ScreenMap | None:
    """The geometry of the capture this image is (None: not a screenshot taken in this process)."""
    key = pixel_key(image)
    with _lock:
        return _remembered.get(key)


def forget_captures() -> None:
    """Forget every remembered capture (tests; a user who wants actions to need a fresh screenshot)."""
    with _lock:
        _remembered.clear()


def model_to_image(
    x: float, y: float, system: str, image_size: tuple[int, int], input_size: tuple[int, int] | None = None
) -> tuple[float, float]:
    """A point in a model's coordinate system -> pixels of the image it was shown.

    system: "image" (already image pixels), "pixel" (pixels of the processor's resized input, `input_size`; the
    image itself when unknown), "norm1000" (0-1000), "norm1" (0-1) or "percent" (0-100): the same systems as the
    grounding profiles' `coordinates`.
    """
    width, height = image_size
    if system == "image":
        return float(x), float(y)
    if system == "pixel":
        source: Any = input_size if input_size and input_size[0] > 0 and input_size[1] > 0 else image_size
        return x * width / source[0], y * height / source[1]
    full = {"norm1000": 1000.0, "norm1": 1.0, "percent": 100.0}.get(system)
    if full is None:
        raise AssistantError(
            f"unknown coordinate system {system!r}; use image, pixel, norm1000, norm1 or percent"
        )
    return _edge(x / full, width), _edge(y / full, height)


def _edge(fraction: float, size: int) -> float:
    """A 0-1 fraction as a pixel; exactly 1 (the far edge, as models write it) is the last pixel."""
    return size - 0.5 if fraction == 1 else fraction * size
