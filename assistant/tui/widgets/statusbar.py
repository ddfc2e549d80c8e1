"""The status bar: the model's state — it loads the model (showing the progress) and switches its adapter — and the
line with profile, model, device, adapter, context use and mode.

It owns those two slow jobs because it is where their progress shows; the state itself is the ChatController's
(`load_state`, `assistant`). Its workers post LoadProgress (handled here), ModelReady, ModelFailed and AdapterChanged
(said here, then bubbling on: MainView records the outcome, redraws the line, sends the waiting question).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import ProgressBar, Static

from ...errors import AssistantError
from ..format import status_line
from ..messages import AdapterChanged, LoadProgress, ModelFailed, ModelReady

if TYPE_CHECKING:
    from ..controller import ChatController

log = logging.getLogger(__name__)


class StatusBar(Horizontal):
    """One line at the bottom; a progress bar appears beside the text while the model loads."""

    def __init__(self, controller: "ChatController | None" = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.controller = controller
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

    def show_session(
        self, assistant: Any, load_state: str, load_error: str | None, used: int, agent: bool, loads_now: bool
    ) -> None:
        """The line for the session: profile, model, device, adapter, context use and mode, or why there is no model.

        `loads_now`: the model is about to load by itself (start-up), so say so rather than "not loaded yet".
        """
        if assistant is None:
            self.show(f"no profile │ {load_error or ''}".rstrip(" │"))
            return
        profile = assistant.profile
        if load_state == "ready":
            info = assistant.backend.info
            where = f"remote: {info.remote}" if info.remote else f"{info.device} · {info.dtype}"
            self.show(status_line(profile.name, info.model, where, assistant.adapter, used, info.context_limit,
                                  info.random_weights, agent=agent))
        elif load_state == "failed":
            self.show(f"{profile.name} │ {profile.model_label} │ model not loaded (see the error; /profile NAME)")
        elif load_state == "idle" and loads_now:
            self.loading(f"{profile.name} │ loading {profile.model_label}…", None)
        elif load_state == "idle":
            self.show(f"{profile.name} │ {profile.model_label} │ model not loaded yet (it loads on the first message)")

    # --- loading the model --------------------------------------------------------------------------------------------

    def start_loading(self) -> None:
        """Load the current profile's model on a worker (nothing when it is loading or loaded)."""
        controller = self.controller
        assert controller is not None
        assistant = controller.assistant
        if assistant is None or controller.load_state in ("loading", "ready"):
            return
        controller.load_state = "loading"
        controller.load_error = None
        self.loading(f"{assistant.profile.name} │ loading {assistant.profile.model_label}…", None)
        self._load_model(assistant)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load_model(self, assistant: Any) -> None:
        from ..controller import ChatController

        ChatController.load(
            assistant,
            progress=lambda text, fraction: self.post_message(LoadProgress(assistant, text, fraction)),
            done=lambda error: self.post_message(ModelFailed(assistant, error) if error else ModelReady(assistant)),
        )

    def _current(self, owner: Any) -> bool:
        return self.controller is not None and owner is self.controller.assistant and self.text.is_attached

    def on_load_progress(self, event: LoadProgress) -> None:
        event.stop()
        if self._current(event.owner) and self.controller.load_state == "loading":  # type: ignore[union-attr]
            self.loading(f"{event.owner.profile.name} │ {event.text}", event.fraction)

    # --- switching the adapter ----------------------------------------------------------------------------------------

    def switch_adapter(self, argument: str) -> None:
        """/adapter NAME|none: switch on a worker; empty: say the usage and the current one."""
        controller = self.controller
        assert controller is not None
        if controller.assistant is None:
            self.notify("no profile is active; switch with /profile NAME", severity="error")
        elif not argument:
            self.notify(f"usage: /adapter NAME|none (now {controller.assistant.adapter or 'none'})", markup=False)
        elif controller.job is not None:
            self.notify("stop the reply (Esc) before switching adapter", severity="warning")
        else:
            self._set_adapter(controller.assistant, None if argument.lower() in ("none", "off", "base") else argument)

    @work(thread=True, group="adapter", exclusive=True, exit_on_error=False)
    def _set_adapter(self, assistant: Any, name: str | None) -> None:
        try:
            assistant.set_adapter(name)
        except AssistantError as error:
            self.post_message(AdapterChanged(assistant, name, str(error)))
        except Exception as error:  # noqa: BLE001
            log.exception("switching adapter failed")
            self.post_message(AdapterChanged(assistant, name, f"switching adapter failed: {type(error).__name__}: {error}"))
        else:
            self.post_message(AdapterChanged(assistant, name))

    def on_adapter_changed(self, event: AdapterChanged) -> None:
        if not self.text.is_attached:
            event.stop()
            return
        if event.error:
            self.notify(event.error, severity="error", markup=False)
        else:
            self.notify(f"adapter: {event.adapter or 'none (base model)'}", markup=False)
