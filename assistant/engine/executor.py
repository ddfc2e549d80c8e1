"""One thread for all of the model's work (loading, preprocessing, generation).

Measured on a 2-core Xeon with torch 2.14 (libgomp): once two Python threads have each run OpenMP parallel
regions, every token decodes ~45% slower (26.9 -> 14.9 tokens/s for SmolVLM-256M in fp32), because each
thread keeps its own OpenMP team and they compete for the cores. Routing every torch call of the engine
through this single thread keeps one team, whichever thread (CLI main thread, TUI workers) asks.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, TypeVar

T = TypeVar("T")

_executor: ThreadPoolExecutor | None = None
_thread_ident: int | None = None
_lock = threading.Lock()


def _remember_thread() -> None:
    global _thread_ident
    _thread_ident = threading.get_ident()


def _get_executor() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            from .memory import limit_malloc_arenas

            limit_malloc_arenas()  # before the engine thread (and its OpenMP workers) could get arenas of their own
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine", initializer=_remember_thread)
        return _executor


def on_engine_thread() -> bool:
    return threading.get_ident() == _thread_ident


def submit(function: Callable[..., T], *args: Any, **kwargs: Any) -> "Future[T]":
    """Queue `function` on the engine thread; jobs run one at a time, in order."""
    return _get_executor().submit(function, *args, **kwargs)


def run(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `function` on the engine thread and wait for its result (directly when already there)."""
    if on_engine_thread():
        return function(*args, **kwargs)
    return submit(function, *args, **kwargs).result()
