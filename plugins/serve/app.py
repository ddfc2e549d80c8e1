"""The ASGI application: /v1/chat/completions, /v1/models and /health on Starlette, in front of a ModelWorker.

Every refusal is a JSON error in OpenAI's shape; the server stays up after each. A reply is streamed as
server-sent events (`data: {...}` chunks, then `data: [DONE]`) or sent whole; either way a client that
disconnects cancels its generation.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from assistant.errors import AssistantError

from .errors import ApiError, error_body
from .openai_reply import Envelope, ReplyText, finish_reason, sse, tool_calls
from .openai_request import Limits, parse_body, parse_chat_request
from .worker import Job, ModelWorker

if TYPE_CHECKING:
    from assistant.profiles import Profile

log = logging.getLogger(__name__)

ADAPTER_SEPARATOR = "+"


@dataclass
class ServeSettings:
    """What `assistant serve` was started with (the key is kept here only to compare, never shown)."""

    profile: "Profile"
    adapter: str | None = None
    """Adapter used for requests that name the bare profile."""
    api_key: str | None = None
    max_queue: int = 4
    limits: Limits = Limits()


def served_models(settings: ServeSettings, adapters_supported: bool) -> dict[str, str | None]:
    """Model name -> adapter: the profile (with the default adapter, if any) and `profile+adapter` for every
    finished adapter trained on this profile's base model."""
    name = settings.profile.name
    models: dict[str, str | None] = {name: settings.adapter}
    if not adapters_supported:
        return models
    from assistant.adapters import check_compatible, list_adapters

    for info in list_adapters():
        if not info.complete:
            continue
        try:
            check_compatible(info, settings.profile)
        except AssistantError:
            continue
        models[f"{name}{ADAPTER_SEPARATOR}{info.name}"] = info.name
    return models


class Service:
    """The request handlers, sharing the settings and the model worker."""

    def __init__(self, settings: ServeSettings, worker: ModelWorker) -> None:
        self.settings = settings
        self.worker = worker

    # --- common checks ---------------------------------------------------------------------------------------

    def check_key(self, request: Request) -> None:
        key = self.settings.api_key
        if not key:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
            raise ApiError(401, "missing or wrong API key: send the server's key as 'Authorization: Bearer KEY'",
                           code="invalid_api_key")

    async def read_body(self, request: Request) -> bytes:
        limit = self.settings.limits.max_body_bytes
        too_large = ApiError(413, f"the request body is larger than this server's limit of {limit} bytes "
                                  "(assistant serve --max-body-mb); send smaller or fewer images",
                             code="request_too_large")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise too_large
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    def models(self) -> dict[str, str | None]:
        return served_models(self.settings, self.worker.backend.capabilities.adapters)

    # --- endpoints -------------------------------------------------------------------------------------------

    async def health(self, request: Request) -> JSONResponse:
        worker = self.worker
        counters = worker.counters
        return JSONResponse({
            "status": "ok",
            "model": self.settings.profile.name,
            "backend": worker.backend.name,
            "generating": worker.generating,
            "waiting": worker.waiting,
            "max_queue": worker.max_queue,
            "served": counters.served,
            "cancelled": counters.cancelled,
            "rejected": counters.rejected,
            "failed": counters.failed,
        })

    def _model_entry(self, name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 0, "owned_by": "assistant"}

    async def list_models(self, request: Request) -> JSONResponse:
        self.check_key(request)
        names = await run_in_threadpool(self.models)
        return JSONResponse({"object": "list", "data": [self._model_entry(name) for name in names]})

    async def get_model(self, request: Request) -> JSONResponse:
        self.check_key(request)
        name = request.path_params["model"]
        self._resolve(name, await run_in_threadpool(self.models))
        return JSONResponse(self._model_entry(name))

    def _resolve(self, name: str, models: dict[str, str | None]) -> str | None:
        if name not in models:
            raise ApiError(404, f"model {name!r} is not served here; available: {', '.join(models)}",
                           code="model_not_found", param="model")
        return models[name]

    async def chat_completions(self, request: Request) -> Any:
        self.check_key(request)
        data = parse_body(await self.read_body(request))
        adapter = None
        if isinstance(data.get("model"), str):  # an unknown model is answered before any image is decoded
            adapter = self._resolve(data["model"], await run_in_threadpool(self.models))
        if self.worker.closing:
            raise ApiError(503, "the server is shutting down; retry later", code="server_shutting_down")
        if not self.worker.admit():  # before decoding images: at most 1 + max_queue requests hold theirs
            wait = self.worker.retry_after()
            raise ApiError(429, f"the model is busy: {self.worker.max_queue} requests are already waiting "
                                f"(assistant serve --max-queue); retry in {wait} s", code="rate_limit_exceeded",
                           headers={"Retry-After": str(wait)})
        try:
            chat = await run_in_threadpool(parse_chat_request, data, self.settings.limits)  # refuses a non-str model
            backend = self.worker.backend
            if chat.tools and not backend.capabilities.tools:
                raise ApiError(400, f"this server's backend ({backend.name}) does not take tools",
                               code="tools_unsupported", param="tools")
        except BaseException:
            self.worker.release()
            raise
        max_new_tokens = chat.max_tokens or min(self.settings.profile.generation.max_new_tokens,
                                                self.settings.limits.max_tokens)
        job = Job(request=chat, adapter=adapter, max_new_tokens=max_new_tokens, loop=asyncio.get_running_loop())
        return GenerationResponse(self.worker, job)


class GenerationResponse:
    """An ASGI response that queues its job, waits for its turn, then streams or sends the reply.

    The status line waits until generation has started, so a request the backend refuses (say, a prompt that
    does not fit the context) still gets a 4xx JSON error. A disconnect, noticed while queued or generating,
    cancels the job.
    """

    def __init__(self, worker: ModelWorker, job: Job) -> None:
        self.worker = worker
        self.job = job

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        job = self.job
        self.worker.submit(job)
        try:
            async with anyio.create_task_group() as group:

                async def watch() -> None:
                    while True:
                        message = await receive()
                        if message["type"] == "http.disconnect":
                            job.cancel(abandoned=True)
                            group.cancel_scope.cancel()
                            return

                group.start_soon(watch)
                try:
                    await self._respond(send)
                except OSError:  # the client is gone (ASGI 2.4 servers raise from send)
                    job.cancel(abandoned=True)
                group.cancel_scope.cancel()
        finally:
            if not job.finished:
                job.cancel(abandoned=True)

    async def _respond(self, send: Send) -> None:
        job = self.job
        kind, value = await job.next()
        if kind == "error":
            await _send_json(send, value.status, value.body(), value.headers)
            return
        envelope = Envelope(model=job.request.model)
        reply = ReplyText(watch_calls=bool(job.request.tools), stops=job.request.stop)
        if job.request.stream:
            await self._stream(send, envelope, reply)
        else:
            await self._whole(send, envelope, reply)

    async def _whole(self, send: Send, envelope: Envelope, reply: ReplyText) -> None:
        job = self.job
        shown: list[str] = []
        while True:
            kind, value = await job.next()
            if kind == "piece":
                shown.append(reply.feed(value))
                if reply.stopped:
                    job.cancel()
            elif kind == "error":
                await _send_json(send, value.status, value.body())
                return
            elif kind == "done":
                rest, calls = reply.finish()
                content = "".join(shown) + rest
                body = envelope.completion(content.strip() if calls else content, calls,
                                           finish_reason(value, reply, calls), value)
                await _send_json(send, 200, body)
                return

    async def _stream(self, send: Send, envelope: Envelope, reply: ReplyText) -> None:
        job = self.job
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]})

        async def event(data: dict[str, Any] | str) -> None:
            await send({"type": "http.response.body", "body": sse(data), "more_body": True})

        await event(envelope.chunk({"role": "assistant", "content": ""}))
        while True:
            kind, value = await job.next()
            if kind == "piece":
                shown = reply.feed(value)
                if shown:
                    await event(envelope.chunk({"content": shown}))
                if reply.stopped:
                    job.cancel()
            elif kind == "error":
                await event(value.body())
                break
            elif kind == "done":
                content, calls = reply.finish()
                if content:
                    await event(envelope.chunk({"content": content}))
                if calls:
                    await event(envelope.chunk({"tool_calls": tool_calls(calls, streaming=True)}))
                await event(envelope.chunk({}, finish_reason(value, reply, calls)))
                if job.request.include_usage:
                    await event(envelope.chunk(stats=value))
                break
        await event("[DONE]")
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    data = json.dumps(body, ensure_ascii=False).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(key.lower().encode(), value.encode()) for key, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data, "more_body": False})


# --- errors and the application ------------------------------------------------------------------------------------

async def _api_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers or None)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    status = error.status_code
    message = {404: f"no such endpoint {request.url.path}; this server has /v1/chat/completions, /v1/models "
                    "and /health", 405: f"{request.method} is not allowed on {request.url.path}"}.get(status, error.detail)
    return JSONResponse(error_body(status, message), status_code=status, headers=error.headers)


async def _server_error(request: Request, error: Exception) -> JSONResponse:
    log.error("unexpected error serving %s %s", request.method, request.url.path, exc_info=error)
    return JSONResponse(error_body(500, "the server failed on this request; details in its log",
                                   code="server_error"), status_code=500)


def create_app(settings: ServeSettings, worker: ModelWorker, lifespan: Any = None) -> Starlette:
    """The Starlette app for `settings`, serving through `worker` (which owns the loaded backend)."""
    service = Service(settings, worker)
    routes = [
        Route("/health", service.health, methods=["GET"]),
        Route("/v1/models", service.list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", service.get_model, methods=["GET"]),
        Route("/v1/chat/completions", service.chat_completions, methods=["POST"]),
    ]
    handlers: dict[Any, Any] = {ApiError: _api_error, HTTPException: _http_error, Exception: _server_error}
    return Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
