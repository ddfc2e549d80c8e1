"""The SlashContext plugins' /commands receive: a narrow window onto the app (send, attach, notify, background work).

Every method may be called from any thread: calls from a plugin's own thread are carried over to the UI thread.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from PIL.Image import Image

    from .app import AssistantApp


class AppSlashContext:
    """Implements `assistant.hooktypes.SlashContext` for the TUI."""

    def __init__(self, app: "AssistantApp") -> None:
        self._app = app

    @property
    def plugin_manager(self) -> Any:
        return self._app.plugins

    @property
    def profile(self) -> Any:
        return self._app.assistant.profile if self._app.assistant is not None else None

    @property
    def chat(self) -> Any:
        return self._app.chat

    def send(self, text: str, extra: dict[str, Any] | None = None) -> None:
        self._on_ui(self._app.send_later, text, extra)

    def attach_image(self, image: "Image", source: str) -> None:
        self._on_ui(self._app.composer.attach_pil_image, image, source)

    def attach_text(self, text: str, source: str) -> None:
        self._on_ui(self._app.composer.attach_text, text, source)

    def attach_document(self, source: str, choose: Callable[[str], Any]) -> None:
        self._on_ui(self._app.composer.attach_document, source, choose)

    def notify(self, message: str, severity: str = "information") -> None:
        if severity not in ("information", "warning", "error"):
            severity = "information"
        self._on_ui(self._app.notify, message, severity=severity, markup=False)

    def run_in_background(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        self._on_ui(self._app.run_plugin_work, work, done)

    def ask_password(self, prompt: str, done: Callable[["str | None"], None]) -> None:
        self._on_ui(self._app.ask_secret, prompt, done)

    def show_progress(self, poll: Callable[[], Any], stop: Callable[[], None] | None = None) -> None:
        from .screens.progress import ProgressScreen

        self._on_ui(self._app.push_screen, ProgressScreen(poll, stop))

    def _on_ui(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        if threading.get_ident() == self._app.ui_thread:
            function(*args, **kwargs)
        else:
            self._app.call_from_thread(function, *args, **kwargs)
