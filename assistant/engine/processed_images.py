"""The image processor's output, reused when the same images are processed again with the same settings.

Every question renders the whole conversation again (engine/inputs.py), and the model's processor then resizes,
tiles and normalises every image in it, although for a follow-up the KV cache skips the vision encoder: for a
1920x1080 screenshot that is 0.1-0.4 s of CPU and 150-185 MB of intermediate arrays on each follow-up
(docs/performance.md). `build_inputs` runs the processor inside `reusing_processed_images(processor, names)`,
naming the images it passes by their content hashes; for that call only, the processor's `image_processor` is
wrapped, and the last output is handed out again when the names, the call's keywords and the image processor's
own settings are all the same. Outside the block the processor is untouched (printing, saving and type checks see
the real one). One entry per processor (the current chat's images), at most MAX_KEPT_BYTES, dropped when a
question has no images; a processor whose settings cannot be serialised is never reused.
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

MAX_KEPT_BYTES = 96 * 1024 * 1024
"""Outputs larger than this are not kept (a 13-tile screenshot's is ~44 MB; a long PDF chat's would be far more)."""


@dataclass
class Kept:
    """The last output of one processor's image processor, and what it was made from."""

    key: tuple[tuple[str, ...], str] | None = None
    output: Any = None
    hits: int = 0

    def clear(self) -> None:
        self.key, self.output = None, None


_kept: "weakref.WeakKeyDictionary[Any, Kept]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()  # the wrapper is swapped in and out around a call: one call at a time per process


def kept_for(processor: Any) -> Kept:
    """What is kept for this processor (an empty entry at first)."""
    with _lock:
        return _kept.setdefault(processor, Kept())


@contextlib.contextmanager
def reusing_processed_images(processor: Any, names: Sequence[str]) -> Iterator[None]:
    """Within the block the processor's image processor reuses its last output for the images `names` name
    (content hashes, in the order the images are passed). No names: nothing is reused and the entry is dropped."""
    inner = getattr(processor, "image_processor", None)
    if inner is None:
        yield
        return
    kept = kept_for(processor)
    if not names:
        kept.clear()  # a question without images: the last chat's pixels need not stay resident
        yield
        return
    with _lock:
        processor.image_processor = _Reusing(inner, tuple(names), kept)
        try:
            yield
        finally:
            processor.image_processor = inner


class _Reusing:
    """Stands in for an image processor during one `build_inputs` call; every attribute but the call is its."""

    def __init__(self, inner: Any, names: tuple[str, ...], kept: Kept) -> None:
        self._inner, self._names, self._kept = inner, names, kept
        self._thread = threading.get_ident()  # another thread's call is not the one the names describe

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # not set yet, or private: never the inner processor's by accident
            raise AttributeError(name)
        return getattr(self._inner, name)

    def __call__(self, images: Any, *args: Any, **kwargs: Any) -> Any:
        settings = _settings(self._inner, kwargs)
        if settings is None or args or threading.get_ident() != self._thread or len(_flat(images)) != len(self._names):
            return self._inner(images, *args, **kwargs)
        key = (self._names, settings)
        kept = self._kept
        if kept.key == key:
            kept.hits += 1
            return copy.copy(kept.output)  # processors pop entries from what they get (Idefics3: rows, cols)
        output = self._inner(images, **kwargs)
        if _nbytes(output) <= MAX_KEPT_BYTES:
            kept.key, kept.output = key, copy.copy(output)
        else:
            kept.clear()
        return output


def _settings(inner: Any, kwargs: dict[str, Any]) -> str | None:
    """The call's keywords and the processor's own configuration as one string; None when either cannot be said."""
    try:
        return inner.to_json_string() + json.dumps(kwargs, sort_keys=True)
    except Exception:  # noqa: BLE001 - a setting we cannot compare must never be matched: no reuse
        return None


def _flat(images: Any) -> list[Any]:
    if isinstance(images, (list, tuple)):
        return [image for item in images for image in _flat(item)]
    return [images]


def _nbytes(output: Any) -> int:
    """Bytes of the output's arrays (tensors or numpy; lists such as Idefics3's rows/cols are small)."""
    total = 0
    for value in output.values() if hasattr(output, "values") else []:
        if hasattr(value, "element_size"):
            total += int(value.numel() * value.element_size())
        elif hasattr(value, "nbytes"):
            total += int(value.nbytes)
    return total
