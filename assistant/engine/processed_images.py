"""The image processor's output, reused when the same images are processed again with the same settings.

Every question renders the whole conversation again (engine/inputs.py), and the model's processor then resizes,
tiles and normalises every image in it, although for a follow-up the KV cache skips the vision encoder: for a
1920x1080 screenshot that is 0.1-0.4 s of CPU and 150-185 MB of intermediate arrays on each follow-up
(docs/performance.md). `build_inputs` names the images it passes by their content hashes (`images_named`), and
the wrapper installed on the processor's `image_processor` hands the last output out again when the hashes, the
call's keywords and the image processor's own settings are all the same. One entry (the current chat's images),
at most MAX_KEPT_BYTES; calls that name no images (batch, encode-ahead, the grounding size probe) pass through.
"""

from __future__ import annotations

import contextlib
import copy
import json
from contextvars import ContextVar
from typing import Any, Iterator, Sequence

MAX_KEPT_BYTES = 96 * 1024 * 1024
"""Outputs larger than this are not kept (a 13-tile screenshot's is ~44 MB; a long PDF chat's would be far more)."""

_NAMES: ContextVar[tuple[str, ...] | None] = ContextVar("processed_image_names", default=None)


@contextlib.contextmanager
def images_named(names: Sequence[str]) -> Iterator[None]:
    """Within this block, the images the processor is given are the ones with these content hashes, in order."""
    token = _NAMES.set(tuple(names))
    try:
        yield
    finally:
        _NAMES.reset(token)


class ReusedImageProcessing:
    """Wraps an image processor; every attribute but the call is the wrapped one's."""

    def __init__(self, inner: Any) -> None:
        object.__setattr__(self, "inner", inner)
        object.__setattr__(self, "last", None)  # (key, output) of the last kept call
        object.__setattr__(self, "hits", 0)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (copy/pickle make the object without __init__)
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.inner, name, value)  # settings changed on the processor change the wrapped one (and the key)

    def __call__(self, images: Any, *args: Any, **kwargs: Any) -> Any:
        names = _NAMES.get()
        if names is None or args or len(_flat(images)) != len(names):
            return self.inner(images, *args, **kwargs)
        key = (names, _settings(self.inner, kwargs))
        last = self.last
        if last is not None and last[0] == key:
            object.__setattr__(self, "hits", self.hits + 1)
            return copy.copy(last[1])  # processors pop entries from what they get (Idefics3: rows, cols)
        output = self.inner(images, **kwargs)
        kept = (key, copy.copy(output)) if _nbytes(output) <= MAX_KEPT_BYTES else None
        object.__setattr__(self, "last", kept)
        return output


def reuse_image_processing(processor: Any) -> None:
    """Install the wrapper on `processor.image_processor` (once; processors without one are left alone)."""
    inner = getattr(processor, "image_processor", None)
    if inner is not None and not isinstance(inner, ReusedImageProcessing):
        processor.image_processor = ReusedImageProcessing(inner)


def unwrapped(image_processor: Any) -> Any:
    """The image processor itself (for its class name in reports)."""
    return image_processor.inner if isinstance(image_processor, ReusedImageProcessing) else image_processor


def _settings(inner: Any, kwargs: dict[str, Any]) -> str:
    """The call's keywords and the processor's own configuration, as one comparable string."""
    try:
        own = inner.to_json_string()
    except Exception:  # a processor that cannot say its settings is never matched by them: key on its identity
        own = f"unserialisable {id(inner)} {sorted(vars(inner))}"
    return own + json.dumps(kwargs, sort_keys=True, default=repr)


def _flat(images: Any) -> list[Any]:
    if isinstance(images, (list, tuple)):
        return [image for item in images for image in _flat(item)]
    return [images]


def _nbytes(output: Any) -> int:
    values = output.values() if hasattr(output, "values") else []
    return sum(int(value.numel() * value.element_size()) for value in values if hasattr(value, "element_size"))
