"""The `openai` backend: replies streamed from an OpenAI-compatible server, behind the ModelBackend protocol.

Tool calls the server returns as structured `tool_calls` deltas are assembled and handed on in the text as
`<tool_call>{...}</tool_call>`, the one format the agent parses, so the agent loop is the same on every backend.
TTFT and tokens/s are measured on the stream; token counts come from the server's `usage` when it sends one.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator

from assistant.errors import AssistantError
from assistant.hooktypes import BackendCapabilities, BackendInfo, GenerationRequest, GenerationStats
from assistant.toolcalls import TOOL_CALL_CLOSE, TOOL_CALL_OPEN

from .client import ApiClient, ServerSettings, check_base_url, host_of, is_loopback, sse_events
from .messages import to_openai

if TYPE_CHECKING:
    from assistant.profiles import Profile

NAME = "openai"


class RemoteReply:
    """One streamed reply (ReplyEvents). The request is sent when iteration starts; `cancel()` closes the stream."""

    def __init__(self, backend: "OpenAIBackend", payload: dict[str, Any], input_sizes: dict[str, tuple[int, int]], started_at: float) -> None:
        self._backend = backend
        self._payload = payload
        self._started_at = started_at
        self._cancel = threading.Event()
        self._response: Any = None
        self.input_sizes = input_sizes
        self.dropped = 0
        self.stats = GenerationStats()
        self.finished = False

    def cancel(self) -> None:
        self._cancel.set()
        response = self._response
        if response is not None:
            try:
                response.close()  # unblocks a read waiting for the next token
            except Exception:  # noqa: BLE001 - closing twice or mid-read is fine
                pass

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self._run()
        finally:
            self.finished = True
            self._backend._done(self)

    def _run(self) -> Iterator[str]:
        stats = self.stats
        if self._cancel.is_set():
            stats.stopped, stats.finish_reason = True, "stopped"
            return
        self._response = self._backend.client.stream_chat(self._payload)
        calls: dict[int, dict[str, Any]] = {}
        text = ""
        first = last = None
        deltas = 0
        try:
            for event in sse_events(self._response):
                if self._cancel.is_set():
                    break
                usage = event.get("usage")
                if isinstance(usage, dict):
                    stats.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                    stats.completion_tokens = int(usage.get("completion_tokens") or 0)
                for choice in event.get("choices") or []:
                    delta = choice.get("delta") or {}
                    piece = delta.get("content") or ""
                    got_call = _merge_calls(calls, delta.get("tool_calls"))
                    if piece or got_call:
                        now = time.perf_counter()
                        first = first if first is not None else now
                        last = now
                        deltas += 1
                    if choice.get("finish_reason"):
                        stats.finish_reason = str(choice["finish_reason"])
                    if piece:
                        text += piece
                        yield piece
        except Exception:
            if not self._cancel.is_set():
                raise
        finally:
            self._response.close()
        stats.stopped = self._cancel.is_set()
        if calls and not stats.stopped:
            rendered = "".join(_render_call(call) for _, call in sorted(calls.items()))
            text += rendered
            yield rendered
        if first is not None:
            stats.ttft_s = first - self._started_at
            stats.decode_s = (last or first) - first
        stats.total_s = time.perf_counter() - self._started_at
        if not stats.completion_tokens:
            stats.completion_tokens = deltas  # servers without `usage`: one delta is about one token
        stats.raw_text = text
        stats.finish_reason = "stopped" if stats.stopped else _finish_reason(stats.finish_reason)


class OpenAIBackend:
    """A model served over the OpenAI chat-completions API."""

    name = NAME

    def __init__(self, profile: "Profile", client: ApiClient) -> None:
        self.profile = profile
        self.client = client
        self._active: RemoteReply | None = None
        self._lock = threading.Lock()

    @classmethod
    def load(cls, profile: "Profile", progress: Callable[[str, float | None], None] | None = None) -> "OpenAIBackend":
        model = profile.model
        if not model.base_url:
            raise AssistantError(
                f"profile {profile.name} uses the openai backend but has no base_url; set [model] base_url "
                "(e.g. http://127.0.0.1:8000/v1) or pass --base-url URL"
            )
        if not model.id:
            raise AssistantError(f"profile {profile.name}: [model] id must name the served model (see the server's /v1/models)")
        base_url = check_base_url(model.base_url, model.allow_insecure)
        settings = ServerSettings(base_url, model.id, model.api_key_env, float(model.timeout), int(model.max_retries))
        if model.api_key_env and not settings.api_key:
            raise AssistantError(
                f"profile {profile.name} reads the API key from ${model.api_key_env}, which is not set; "
                f"export {model.api_key_env}=... (the key is never stored in the profile)"
            )
        if progress is not None:
            progress(f"connecting to {host_of(base_url)}", None)
        return cls(profile, ApiClient(settings))

    @property
    def remote(self) -> str:
        host = host_of(self.client.settings.base_url)
        return host if not is_loopback(self.client.settings.base_url) else f"{host} (this machine)"

    @property
    def capabilities(self) -> BackendCapabilities:
        return BackendCapabilities(
            adapters=False,
            kv_reuse=False,
            tools=True,
            video=False,
            max_context=self.profile.chat.context_limit,
            remote=self.remote,
        )

    @property
    def info(self) -> BackendInfo:
        return BackendInfo(
            profile=self.profile.name,
            model=self.client.settings.model,
            device="remote",
            dtype="",
            context_limit=self.profile.chat.context_limit,
            remote=self.remote,
        )

    def stream(self, request: GenerationRequest) -> RemoteReply:
        with self._lock:
            if self._active is not None and not self._active.finished:
                raise AssistantError("a reply is still being generated; wait for it or stop it (Esc) first")
            prompt = to_openai(request.messages, request.open_image, self.profile.image, request.system_prompt)
            reply = RemoteReply(self, self._payload(prompt.messages, request), prompt.input_sizes,
                                request.started_at if request.started_at is not None else time.perf_counter())
            self._active = reply
            return reply

    def _done(self, reply: RemoteReply) -> None:
        with self._lock:
            if self._active is reply:
                self._active = None

    def _payload(self, messages: list[dict[str, Any]], request: GenerationRequest) -> dict[str, Any]:
        settings = request.settings
        payload: dict[str, Any] = {
            "model": self.client.settings.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": int(request.max_new_tokens or settings.max_new_tokens),
            "temperature": float(settings.temperature),
        }
        if settings.temperature > 0 and settings.top_p < 1.0:
            payload["top_p"] = float(settings.top_p)
        if settings.seed >= 0:
            payload["seed"] = int(settings.seed)
        if request.tools:
            payload["tools"] = [_as_openai_tool(spec) for spec in request.tools]
        return payload

    def set_adapter(self, name: str | None) -> None:
        raise AssistantError(
            f"adapters need the transformers backend; this profile uses {NAME} (remote: {self.remote}). "
            "To use a personal adapter remotely, serve it with `assistant serve --adapter NAME` and use model PROFILE+NAME"
        )

    def close(self) -> None:
        self.client.close()


def _merge_calls(calls: dict[int, dict[str, Any]], deltas: Any) -> bool:
    """Fold streamed tool-call fragments (by index) into whole calls; True when this event carried one."""
    if not isinstance(deltas, list):
        return False
    for position, delta in enumerate(deltas):
        if not isinstance(delta, dict):
            continue
        index = delta.get("index", position)
        call = calls.setdefault(int(index) if isinstance(index, int) else position, {"id": "", "name": "", "arguments": ""})
        if delta.get("id"):
            call["id"] = str(delta["id"])
        function = delta.get("function") or {}
        if function.get("name"):
            call["name"] += str(function["name"])
        if function.get("arguments"):
            call["arguments"] += str(function["arguments"])
    return True


def _render_call(call: dict[str, Any]) -> str:
    """A structured call in the agent's text format; arguments that are not JSON stay a string (the parser
    reports them to the model as a malformed call)."""
    try:
        arguments: Any = json.loads(call["arguments"]) if call["arguments"].strip() else {}
    except ValueError:
        arguments = call["arguments"]
    return f'{TOOL_CALL_OPEN}{json.dumps({"name": call["name"], "arguments": arguments}, ensure_ascii=False)}{TOOL_CALL_CLOSE}'


def _as_openai_tool(spec: dict[str, Any]) -> dict[str, Any]:
    """Tool specs are OpenAI-style already ({"type": "function", "function": {...}}); a bare function is wrapped."""
    if spec.get("type") == "function" and "function" in spec:
        return spec
    return {"type": "function", "function": spec}


def _finish_reason(reason: str) -> str:
    return {"stop": "eos", "length": "length", "tool_calls": "tool_calls"}.get(reason, reason or "eos")
