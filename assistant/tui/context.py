"""The SlashContext plugins' /commands receive: a narrow window onto the TUI (send, attach, notify, background work).

Every method may be called from any thread: calls from a plugin's own thread are carried over to the UI thread.
It knows the app only through `ContextHost` (a Protocol: what it needs, nothing more), so it never imports the app.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Callable, Protocol

from ..errors import AssistantError

if TYPE_CHECKING:
    from PIL.Image import Image

    from .widgets.composer import Composer

log = logging.getLogger(__name__)


class ContextHost(Protocol):
    """What the context needs of the app: the session's parts and Textual's thread-safe calls."""

    plugins: Any
    assistant: Any
    chat: Any
    ui_thread: int
    composer: "Composer"

    def send_later(self, text: str, extra: dict[str, Any] | None = None) -> None: ...

    def notify(self, message: str, *, title: str = "", severity: Any = "information", timeout: float | None = None,
               markup: bool = True) -> None: ...

    def push_screen(self, screen: Any, callback: Any = None) -> Any: ...

    def call_from_thread(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...

    def run_worker(self, work: Any, name: str | None = "", group: str = "default", description: str = "",
                   exit_on_error: bool = True, start: bool = True, exclusive: bool = False,
                   thread: bool = False) -> Any: ...

    def report_error(self, error: BaseException, what: str) -> None: ...


class AppSlashContext:
    """Implements `assistant.hooktypes.SlashContext` for the TUI."""

    def __init__(self, host: ContextHost) -> None:
        self._host = host

    @property
    def plugin_manager(self) -> Any:
        return self._host.plugins

    @property
    def profile(self) -> Any:
        return self._host.assistant.profile if self._host.assistant is not None else None

    @property
    def chat(self) -> Any:
        return self._host.chat

    def send(self, text: str, extra: dict[str, Any] | None = None) -> None:
        self._on_ui(self._host.send_later, text, extra)

    def attach_image(self, image: "Image", source: str) -> None:
        self._on_ui(lambda: self._host.composer.attach_pil_image(image, source))

    def attach_text(self, text: str, source: str) -> None:
        self._on_ui(lambda: self._host.composer.attach_text(text, source))

    def attach_document(self, source: str, choose: Callable[[str], Any]) -> None:
        self._on_ui(lambda: self._host.composer.attach_document(source, choose))

    def notify(self, message: str, severity: str = "information") -> None:
        if severity not in ("information", "warning", "error"):
            severity = "information"
        self._on_ui(self._host.notify, message, severity=severity, markup=False)

    def run_in_background(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        self._on_ui(self._start_work, work, done)

    def ask_password(self, prompt: str, done: Callable[["str | None"], None]) -> None:
        from .guard import guard_callback
        from .screens.dialogs import TextPrompt

        self._on_ui(self._host.push_screen, TextPrompt(prompt, password=True), guard_callback(self._host.report_error, done))

    def show_progress(self, poll: Callable[[], Any], stop: Callable[[], None] | None = None) -> None:
        from .screens.progress import ProgressScreen

        self._on_ui(self._host.push_screen, ProgressScreen(poll, stop))

    # --- background work: `work()` on a thread worker, `done(result)` back on the UI thread --------------------------

    def _start_work(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        host = self._host

        def run() -> None:
            try:
                result = work()
            except AssistantError as error:
                host.call_from_thread(host.notify, str(error), severity="error", markup=False)
                return
            except Exception as error:  # noqa: BLE001
                log.exception("plugin background work failed")
                host.call_from_thread(
                    host.notify, f"plugin work failed: {type(error).__name__}: {error}", severity="error", markup=False
                )
                return
            host.call_from_thread(self._finish_work, done, result)

        host.run_worker(run, thread=True, group="plugin", exit_on_error=False)

    def _finish_work(self, done: Callable[[Any], None], result: Any) -> None:
        try:
            done(result)
        except AssistantError as error:
            self._host.notify(str(error), severity="error", markup=False)
        except Exception as error:  # noqa: BLE001
            log.exception("plugin callback failed")
            self._host.notify(f"plugin command failed: {type(error).__name__}: {error}", severity="error", markup=False)

    def _on_ui(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        if threading.get_ident() == self._host.ui_thread:
            function(*args, **kwargs)
        else:
            self._host.call_from_thread(function, *args, **kwargs)
