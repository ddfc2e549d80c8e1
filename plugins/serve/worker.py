"""The one thread that talks to the model backend: a bounded queue of jobs, served one at a time, in order.

Only this thread calls the backend (adapter switches included), so one generation runs at a time and an
adapter chosen for one request is switched before the next request's generation, never during it. The HTTP
side admits a job (or answers 429), then reads the job's events; a client that leaves cancels its job.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from assistant.errors import AssistantError
from assistant.hooktypes import GenerationRequest

from .errors import ApiError

if TYPE_CHECKING:
    from assistant.hooktypes import ModelBackend, ReplyEvents
    from assistant.profiles import Profile

    from .openai_request import ChatRequest

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One request's generation. Its events reach the event loop as (kind, value): started, piece, done (the
    GenerationStats) or error (an ApiError)."""

    request: "ChatRequest"
    adapter: str | None
    max_new_tokens: int
    loop: asyncio.AbstractEventLoop
    events: "asyncio.Queue[tuple[str, Any]]" = field(default_factory=asyncio.Queue)
    abandoned: bool = False
    """The client left: its reply is of no use to anyone."""
    finished: bool = False
    _cancel: threading.Event = field(default_factory=threading.Event)
    _reply: "ReplyEvents | None" = None

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self, abandoned: bool = False) -> None:
        """Stop generating (any thread); the model is free again once the backend has ended the reply."""
        self.abandoned = self.abandoned or abandoned
        self._cancel.set()
        reply = self._reply
        if reply is not None:
            reply.cancel()

    def post(self, kind: str, value: Any = None) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))
        except RuntimeError:  # the event loop is closed: the server is shutting down
            self.cancel(abandoned=True)

    async def next(self) -> tuple[str, Any]:
        return await self.events.get()


@dataclass
class Counters:
    served: int = 0
    cancelled: int = 0
    """Generations cut short because their client left."""
    rejected: int = 0
    """Requests answered 429 because the queue was full."""
    failed: int = 0


class ModelWorker:
    """Owns the backend: at most 1 + `max_queue` admitted jobs (one generating, the others waiting)."""

    def __init__(self, backend: "ModelBackend", profile: "Profile", adapter: str | None, max_queue: int) -> None:
        self.backend = backend
        self.profile = profile
        self.adapter = adapter
        """The adapter active on the backend now (only the worker thread changes it)."""
        self.max_queue = max_queue
        self.admitted = 0
        """Jobs admitted and not finished (read and written on the event loop only)."""
        self.generating = False
        self.counters = Counters()
        self._durations: deque[float] = deque(maxlen=8)
        self._jobs: "queue.Queue[Job | None]" = queue.Queue()
        self._pending_jobs: dict[int, Job] = {}
        self._pending_lock = threading.RLock()  # close_all may run in a signal handler on the loop thread
        self.closing = False
        """Shutting down: nothing new is admitted, and every admitted job has been cancelled."""
        self._thread = threading.Thread(target=self._run, name="assistant-serve-model", daemon=True)
        self._thread.start()

    # --- the event loop's side -----------------------------------------------------------------------------------

    def admit(self) -> bool:
        """Take a job if one generating plus `max_queue` waiting leaves room; else count a rejection."""
        if self.admitted >= self.max_queue + 1:
            self.counters.rejected += 1
            return False
        self.admitted += 1
        return True

    def submit(self, job: Job) -> None:
        with self._pending_lock:
            self._pending_jobs[id(job)] = job
        self._jobs.put(job)

    def close_all(self) -> None:
        """The server is stopping: cancel every admitted job (any thread, signal handlers included), so open
        streams end now with what they have instead of being cut when the shutdown grace runs out."""
        self.closing = True
        with self._pending_lock:
            jobs = list(self._pending_jobs.values())
        for job in jobs:
            job.cancel()

    def release(self) -> None:
        """Give back an admitted slot (on the event loop): the job ended, or was never submitted."""
        self.admitted = max(0, self.admitted - 1)

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the recent reply time for each job ahead, at least 1."""
        average = sum(self._durations) / len(self._durations) if self._durations else 5.0
        return max(1, math.ceil(average * max(1, self.admitted - self.max_queue)))

    @property
    def waiting(self) -> int:
        return max(0, self.admitted - (1 if self.generating else 0))

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel every job, end the thread, then close the backend."""
        self.close_all()
        self._jobs.put(None)
        self._thread.join(timeout)
        try:
            self.backend.close()
        except Exception:  # noqa: BLE001 - shutting down: nothing left to protect
            log.exception("closing the backend failed")

    # --- the model thread ----------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            started = time.perf_counter()
            self.generating = True
            try:
                self._serve(job)
            except Exception:  # noqa: BLE001 - a bug: the job gets a 500, the server and this thread go on
                log.exception("serving a request failed")
                self.counters.failed += 1
                job.post("error", ApiError(500, "the server failed while generating; details in its log",
                                           code="server_error"))
            finally:
                job.finished = True
                with self._pending_lock:
                    self._pending_jobs.pop(id(job), None)
                self.generating = False
                self._durations.append(time.perf_counter() - started)
                try:
                    job.loop.call_soon_threadsafe(self.release)
                except RuntimeError:
                    pass

    def _serve(self, job: Job) -> None:
        if job.cancelled:  # left while waiting, or the server is stopping
            self.counters.cancelled += job.abandoned
            job.post("error", ApiError(503, "the server is shutting down; retry later", code="server_shutting_down"))
            return
        try:
            if job.adapter != self.adapter:
                self.backend.set_adapter(job.adapter)
                self.adapter = job.adapter
            reply = self.backend.stream(self._generation_request(job))
        except AssistantError as error:
            self.counters.failed += 1
            job.post("error", ApiError(400, str(error), code="invalid_request"))
            return
        job._reply = reply
        if job.cancelled:
            reply.cancel()
        job.post("started")
        try:
            for piece in reply:
                job.post("piece", piece)
        except AssistantError as error:
            self.counters.failed += 1
            job.post("error", ApiError(500, str(error), code="generation_failed"))
            return
        if job.abandoned and reply.stats.stopped:
            self.counters.cancelled += 1
        else:
            self.counters.served += 1
        job.post("done", reply.stats)

    def _generation_request(self, job: Job) -> GenerationRequest:
        request = job.request
        changes: dict[str, Any] = {}
        if request.temperature is not None:
            changes["temperature"] = float(request.temperature)
        if request.top_p is not None:
            if request.top_p == 0:  # OpenAI's top_p 0: only the likeliest token, i.e. greedy
                changes.update(temperature=0.0, top_p=1.0)
            else:
                changes["top_p"] = float(request.top_p)
        if request.seed is not None:
            changes["seed"] = request.seed
        settings = dataclasses.replace(self.profile.generation, **changes)
        system = request.system_prompt if request.system_prompt is not None else self.profile.chat.system_prompt
        return GenerationRequest(
            messages=request.messages,
            open_image=request.open_image,
            settings=settings,
            max_new_tokens=job.max_new_tokens,
            system_prompt=system,
            tools=request.tools,
            started_at=time.perf_counter(),
        )
