"""`guarded`: handlers and actions report what they raise instead of taking the app down."""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any, Callable

from textual.actions import SkipAction

from ..errors import AssistantError
from ..paths import user_paths

log = logging.getLogger(__name__)


def report(notify: Callable[..., Any], error: BaseException, what: str) -> None:
    """AssistantError: its line as a notification. Anything else is a bug: logged with its traceback, and shown."""
    if isinstance(error, AssistantError):
        notify(str(error), severity="error", markup=False, timeout=10)
        return
    log.error("%s failed", what, exc_info=error)
    notify(
        f"{what} failed: {type(error).__name__}: {error} (details in {user_paths().log_file})",
        severity="error",
        markup=False,
        timeout=10,
    )


def guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """Report what a handler or action raises (AssistantError as its line, bugs with a log entry) instead of crashing."""
    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def async_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return await method(self, *args, **kwargs)
            except SkipAction:
                raise
            except Exception as error:  # noqa: BLE001 - errors never kill the app
                self.report_error(error, method.__name__)
                return None

        return async_wrapper

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except SkipAction:
            raise
        except Exception as error:  # noqa: BLE001
            self.report_error(error, method.__name__)
            return None

    return wrapper



def guard_callback(report: Callable[[BaseException, str], None], callback: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A dialog callback whose errors are reported (`report(error, what)`) rather than raised."""

    async def guarded_callback(value: Any) -> None:
        try:
            result = callback(value)
            if inspect.isawaitable(result):
                await result
        except Exception as error:  # noqa: BLE001
            report(error, getattr(callback, "__name__", "dialog"))

    return guarded_callback
