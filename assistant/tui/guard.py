"""`guarded`: handlers and actions report what they raise instead of taking the app down."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

from textual.actions import SkipAction


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
