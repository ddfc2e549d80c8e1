"""A screen that follows long plugin work (e.g. /train): a progress bar, a status line and a live plot."""

from __future__ import annotations

from typing import Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, ProgressBar, Sparkline

from ...hooktypes import ProgressView


class ProgressScreen(ModalScreen[None]):
    """Polls `poll()` twice a second; Esc closes the screen (the work goes on in the background).

    A view with `error` set says "failed" and the reason, never "done".
    """

    BINDINGS = [Binding("escape", "dismiss", "Close")]
    DEFAULT_CSS = """
    ProgressScreen { align: center middle; }
    ProgressScreen > Vertical { width: 72; height: auto; padding: 1 2; border: round $accent; background: $surface; }
    ProgressScreen Sparkline { height: 6; margin: 1 0; }
    ProgressScreen Horizontal { height: auto; align-horizontal: right; }
    ProgressScreen.failed #progress-title, ProgressScreen.failed #progress-status { color: $error; }
    """

    def __init__(self, poll: Callable[[], ProgressView], stop: Callable[[], None] | None = None) -> None:
        super().__init__()
        self._poll = poll
        self._stop = stop

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("", id="progress-title")
            yield ProgressBar(id="progress-bar", show_eta=False)
            yield Label("", id="progress-status")
            yield Sparkline([], id="progress-plot")
            yield Sparkline([], id="progress-plot2")  # ProgressView.second_series (e.g. the validation loss)
            with Horizontal():
                if self._stop is not None:
                    yield Button("Stop", id="progress-stop", variant="warning")
                yield Button("Close (Esc)", id="progress-close")

    def on_mount(self) -> None:
        self.refresh_view()
        self.set_interval(0.5, self.refresh_view)

    def refresh_view(self) -> None:
        try:
            view = self._poll()
        except Exception as error:  # noqa: BLE001 - a plugin's poll bug must not close the app
            self.query_one("#progress-status", Label).update(f"progress unavailable: {error}")
            return
        ending = " — failed" if view.error else " — done" if view.finished else ""
        self.query_one("#progress-title", Label).update(view.title + ending)
        bar = self.query_one("#progress-bar", ProgressBar)
        bar.update(total=view.total if not view.error else view.completed or 1, progress=view.completed)
        self.query_one("#progress-status", Label).update(f"failed: {view.error}" if view.error else view.status)
        self.set_class(bool(view.error), "failed")
        if view.error or view.finished:
            for button in self.query("#progress-stop"):
                button.disabled = True
        self.query_one("#progress-plot", Sparkline).data = list(view.series[-200:])
        second = self.query_one("#progress-plot2", Sparkline)
        second.data, second.display = list(view.second_series[-200:]), bool(view.second_series)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "progress-stop" and self._stop is not None:
            self._stop()
            self.app.notify("stopping after the current step")
        else:
            self.dismiss()
