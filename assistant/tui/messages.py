"""Messages the app's worker threads post to the UI thread (the only way those threads touch the UI).

Widget messages live nested in the widget that posts them; these are posted by the app's own workers
(model loading, generation, attaching files), so they live here. Each carries the object it is about, so
the app can drop messages from work it no longer cares about (a profile switched away, a chat left).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.message import Message

from .controller import GenerationJob  # noqa: F401 - re-exported; it lives with the controller (no Textual there)

if TYPE_CHECKING:
    from ..images import LoadedImage


class LoadProgress(Message):
    """The model loader reported progress (fraction None: no measurable progress, e.g. building)."""

    def __init__(self, owner: Any, text: str, fraction: float | None) -> None:
        super().__init__()
        self.owner = owner
        self.text = text
        self.fraction = fraction


class ModelReady(Message):
    def __init__(self, owner: Any) -> None:
        super().__init__()
        self.owner = owner


class ModelFailed(Message):
    def __init__(self, owner: Any, error: str) -> None:
        super().__init__()
        self.owner = owner
        self.error = error


class ReplyStarted(Message):
    """The question is saved and the model is working on the reply."""

    def __init__(self, job: GenerationJob) -> None:
        super().__init__()
        self.job = job


class ReplyChunk(Message):
    def __init__(self, job: GenerationJob, text: str) -> None:
        super().__init__()
        self.job = job
        self.text = text


class ReplyDone(Message):
    """The reply ended: ok, stopped or failed (`error` is set when it failed)."""

    def __init__(self, job: GenerationJob, error: str | None = None) -> None:
        super().__init__()
        self.job = job
        self.error = error


class ImageLoaded(Message):
    """An image file named by /image or a paste was read and checked."""

    def __init__(self, image: "LoadedImage") -> None:
        super().__init__()
        self.image = image


class ImagesDone(Message):
    """An attach worker finished (each good image came before as ImageLoaded)."""


class AdapterChanged(Message):
    def __init__(self, owner: Any, adapter: str | None, error: str | None = None) -> None:
        super().__init__()
        self.owner = owner
        self.adapter = adapter
        self.error = error
