"""HTTP to an OpenAI-compatible server: one-line errors with the fix, retries on 429/503, SSE streaming.

Built on httpx2 (already installed with huggingface-hub) rather than the `openai` SDK: the SDK's own retries
and exception types would hide the status codes each message below is chosen from, and it adds pydantic to
every start. The protocol parts used are small: `GET /models` and `POST /chat/completions` with `stream`.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import httpx2

from assistant.errors import AssistantError

log = logging.getLogger(__name__)

RETRY_STATUSES = (429, 503)
MAX_BACKOFF_S = 30.0


def host_of(base_url: str) -> str:
    return urlsplit(base_url).netloc or base_url


def is_loopback(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str, allow_insecure: bool) -> str:
    """The URL without a trailing slash; refuses what is not http(s) and clear text to another machine."""
    url = base_url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AssistantError(f"base_url {base_url!r} is not an http(s) URL; use e.g. http://127.0.0.1:8000/v1")
    if parts.scheme == "http" and not is_loopback(url) and not allow_insecure:
        raise AssistantError(
            f"base_url {url} is plain http to another machine: your screens and documents would cross the network "
            "unencrypted; use https://, or set allow_insecure = true in the profile's [model] if the network is yours"
        )
    return url


@dataclass
class ServerSettings:
    base_url: str
    model: str
    api_key_env: str = ""
    timeout: float = 120.0
    max_retries: int = 2

    @property
    def api_key(self) -> str:
        return os.environ.get(self.api_key_env, "") if self.api_key_env else ""


class ApiClient:
    """One connection pool to the server; thread-safe for one request at a time per stream."""

    def __init__(self, settings: ServerSettings, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self._sleep = sleep
        headers = {"Accept": "application/json"}
        if settings.api_key:
            headers["Authorization"] = f"Bearer {settings.api_key}"
        self._http = httpx2.Client(
            base_url=settings.base_url,
            headers=headers,
            timeout=httpx2.Timeout(settings.timeout, connect=min(10.0, settings.timeout)),
            trust_env=False,  # no proxy from the environment: prompts go only where base_url says
        )

    def close(self) -> None:
        self._http.close()

    # --- requests ----------------------------------------------------------------------------------------------------

    def models(self) -> list[str]:
        """The names the server serves (`GET /models`)."""
        response = self._request("GET", "/models")
        try:
            data = response.json().get("data", [])
            return sorted(str(item.get("id")) for item in data if isinstance(item, dict) and item.get("id"))
        except (ValueError, AttributeError):
            return []

    def stream_chat(self, payload: dict[str, Any]) -> "httpx2.Response":
        """Open a streaming `POST /chat/completions`; the caller iterates `sse_events(response)` and closes it."""
        return self._request("POST", "/chat/completions", json=payload, stream=True)

    def _request(self, method: str, path: str, stream: bool = False, **kwargs: Any) -> "httpx2.Response":
        attempt = 0
        while True:
            try:
                request = self._http.build_request(method, path, **kwargs)
                response = self._http.send(request, stream=stream)
            except httpx2.ConnectError as error:
                raise AssistantError(
                    f"cannot reach the model server at {self.settings.base_url} ({_reason(error)}); "
                    "is the server running there? (start it, or fix base_url / --base-url)"
                ) from None
            except httpx2.TimeoutException:
                raise AssistantError(
                    f"the model server at {self.settings.base_url} did not answer within {self.settings.timeout:.0f} s; "
                    "it may be busy or loading: try again, or raise [model] timeout in the profile"
                ) from None
            except httpx2.HTTPError as error:
                raise AssistantError(f"talking to {self.settings.base_url} failed: {_reason(error)}") from None
            if response.status_code < 400:
                return response
            if stream:
                response.read()
            if response.status_code in RETRY_STATUSES and attempt < self.settings.max_retries:
                wait = _retry_after(response, attempt)
                log.info("server answered %s, retrying in %.1f s", response.status_code, wait)
                response.close()
                self._sleep(wait)
                attempt += 1
                continue
            raise self._error(response, attempts=attempt + 1)

    # --- errors ------------------------------------------------------------------------------------------------------

    def _error(self, response: "httpx2.Response", attempts: int) -> AssistantError:
        status = response.status_code
        message = _server_message(response)
        url = self.settings.base_url
        lowered = message.lower()
        if status in (401, 403):
            if self.settings.api_key_env:
                fix = f"check the key in the environment variable {self.settings.api_key_env}"
                if not self.settings.api_key:
                    fix = f"set the environment variable {self.settings.api_key_env} to the server's API key"
            else:
                fix = 'put the key in an environment variable and name it in the profile: [model] api_key_env = "MY_KEY"'
            return AssistantError(f"the model server at {url} refused the request (HTTP {status}: {message}); {fix}")
        if status == 404 or "model" in lowered and ("not found" in lowered or "does not exist" in lowered):
            served = self._served_models()
            listing = f"it serves: {', '.join(served)}" if served else "its /models list was empty or unreadable"
            return AssistantError(
                f"the server at {url} does not serve model {self.settings.model!r} ({listing}); "
                "set [model] id in the profile or pass --model NAME"
            )
        if status in RETRY_STATUSES:
            return AssistantError(
                f"the model server at {url} is busy (HTTP {status}) after {attempts} attempt(s); try again in a moment"
            )
        if _about_context(lowered):
            return AssistantError(
                f"the conversation is too long for the model served at {url} ({message}); start a new chat, "
                "attach fewer or smaller images, or ask about fewer pages"
            )
        if _about_images(lowered):
            return AssistantError(
                f"the model served at {url} does not accept images ({message}); serve a vision-language model "
                "(e.g. with its --mmproj / multimodal options) or ask without images"
            )
        return AssistantError(f"the model server at {url} answered HTTP {status}: {message}")

    def _served_models(self) -> list[str]:
        try:
            return self.models()
        except AssistantError:
            return []


def sse_events(response: "httpx2.Response") -> Iterator[dict[str, Any]]:
    """The JSON payloads of a `text/event-stream` response, until `data: [DONE]`."""
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue  # comments (": ping"), event names, blank separators
        data = line[5:].strip()
        if data == "[DONE]":
            return
        if not data:
            continue
        try:
            event = json.loads(data)
        except ValueError:
            raise AssistantError(f"the model server sent a stream event that is not JSON: {data[:80]!r}") from None
        if isinstance(event, dict) and "error" in event:
            error = event["error"]
            text = error.get("message") if isinstance(error, dict) else str(error)
            raise AssistantError(f"the model server stopped with an error: {text}")
        if isinstance(event, dict):
            yield event


def _reason(error: Exception) -> str:
    text = str(error) or type(error).__name__
    if "refused" in text.lower():
        return "connection refused"
    return text.splitlines()[0][:160]


def _retry_after(response: "httpx2.Response", attempt: int) -> float:
    header = response.headers.get("retry-after", "")
    try:
        wait = float(header)
    except ValueError:
        wait = 0.5 * (2**attempt)
    return max(0.0, min(wait, MAX_BACKOFF_S))


def _server_message(response: "httpx2.Response") -> str:
    try:
        data = response.json()
    except ValueError:
        return " ".join(response.text.split())[:200] or response.reason_phrase
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return " ".join(str(error.get("message") or error).split())[:300]
    if isinstance(error, str):
        return error[:300]
    detail = data.get("detail") or data.get("message") if isinstance(data, dict) else None
    return " ".join(str(detail or data).split())[:300]


def _about_context(text: str) -> bool:
    return any(marker in text for marker in ("context length", "context window", "maximum context", "too long", "exceeds the", "n_ctx"))


def _about_images(text: str) -> bool:
    return "image" in text and any(marker in text for marker in ("not support", "unsupported", "does not accept", "multimodal", "mmproj"))
