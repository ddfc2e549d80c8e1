"""The status bar: profile, model, device, adapter and context use, or the model's loading progress."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import ProgressBar, Static


class StatusBar(Horizontal):
    """One line at the bottom; a progress bar appears beside the text while the model loads."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        # Kept, not queried: workers may report while the app is being torn down.
        self.text = Static("", id="status-text", markup=False)
        self.progress = ProgressBar(total=None, show_eta=False, id="load-progress")
        self.progress.display = False

    def compose(self) -> ComposeResult:
        yield self.text
        yield self.progress

    def show(self, text: str) -> None:
        self.text.update(text)
        self.progress.display = False
        self.remove_class("loading")

    def loading(self, text: str, fraction: float | None) -> None:
        """Show loading progress: a bar when the fraction is known, a pulse otherwise."""
        self.text.update(text)
        self.progress.display = True
        if fraction is None:
            self.progress.update(total=None)
        else:
            self.progress.update(total=100, progress=max(0.0, min(1.0, fraction)) * 100)
        self.add_class("loading")
