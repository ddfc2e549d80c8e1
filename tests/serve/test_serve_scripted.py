"""`assistant serve` over a scripted third-party backend: the official openai client, tool-call round trips,
what the backend is handed, adapters per request, the bounded queue, cancel, and every refusal as 4xx JSON.

The backend (scripted_backend.py) is a real plugin loaded through its entry point by a real server process;
only the model is scripted, so what these tests prove is the server's side of the protocol.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.serve.serving import (
    API_KEY,
    Server,
    data_url,
    image_part,
    install_scripted_plugin,
    png,
    scripted_profile,
    start_server,
)

pytestmark = pytest.mark.timeout(300)

WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def described(server: Server, messages: list[dict[str, Any]], model: str = "scripted", **options: Any) -> dict:
    """What the backend was given for this request (the scripted backend replies with it as JSON)."""
    reply = server.client().chat.completions.create(model=model, messages=messages, **options)
    return json.loads(reply.choices[0].message.content)


def test_tool_call_round_trip(scripted_server: Server) -> None:
    client = scripted_server.client()
    messages: list[dict[str, Any]] = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = client.chat.completions.create(model="scripted", messages=messages, tools=[WEATHER])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "weather" and call.id.startswith("call_")
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "18 C and sunny"})
    second = client.chat.completions.create(model="scripted", messages=messages, tools=[WEATHER])
    assert second.choices[0].message.content == "The tool said: 18 C and sunny"
    assert second.choices[0].finish_reason == "stop"
    assert not second.choices[0].message.tool_calls


def test_streamed_tool_call_never_shows_the_tags(scripted_server: Server) -> None:
    stream = scripted_server.client().chat.completions.create(
        model="scripted", messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER], stream=True
    )
    content, calls, reasons = "", [], []
    for chunk in stream:
        delta = chunk.choices[0].delta
        content += delta.content or ""
        calls += delta.tool_calls or []
        reasons.append(chunk.choices[0].finish_reason)
    assert content == "Let me check. "
    assert "<tool_call>" not in content and "{" not in content
    (call,) = calls
    assert call.index == 0 and call.function.name == "weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert reasons[-1] == "tool_calls"


def test_the_backend_gets_the_conversation_as_sent(scripted_server: Server) -> None:
    """System prompt, images decoded at their size, assistant tool calls, tool results named by their call."""
    seen = described(scripted_server, [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "two pictures"}, image_part(30, 20),
                                     image_part(10, 12, (0, 0, 255))]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "zoom", "arguments": '{"factor": 2}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "zoomed"}]},
        {"role": "user", "content": "and now?"},
    ], max_tokens=7, temperature=0.5, top_p=0.9, seed=42)
    assert seen["system"] == "Be brief."
    user, assistant, tool, last = seen["messages"]
    assert user == {"role": "user", "parts": [
        {"text": "two pictures"},
        {"image": [30, 20], "opened": [30, 20], "mode": "RGB"},
        {"image": [10, 12], "opened": [10, 12], "mode": "RGB"},
    ]}
    assert assistant == {"role": "assistant", "parts": [{"call": "zoom", "arguments": {"factor": 2}, "id": "call_1"}]}
    assert tool == {"role": "tool", "parts": [{"result": "zoomed", "name": "zoom", "id": "call_1"}]}
    assert last == {"role": "user", "parts": [{"text": "and now?"}]}
    assert (seen["max_new_tokens"], seen["temperature"], seen["top_p"], seen["seed"]) == (7, 0.5, 0.9, 42)


def test_profile_defaults_when_the_request_has_none(scripted_server: Server) -> None:
    seen = described(scripted_server, [{"role": "user", "content": "hello"}])
    assert seen["system"] == "You are the profile."
    assert seen["max_new_tokens"] == 32  # the profile's [generation] max_new_tokens
    assert seen["tools"] == []


def test_each_request_gets_its_own_adapter(scripted_server: Server) -> None:
    ids = [model.id for model in scripted_server.client().models.list()]
    assert ids == ["scripted", "scripted+alpha", "scripted+beta"]
    order = ["scripted+alpha", "scripted", "scripted+beta", "scripted+beta", "scripted+alpha", "scripted"]
    used = [described(scripted_server, [{"role": "user", "content": "hi"}], model=model)["adapter"] for model in order]
    assert used == ["alpha", None, "beta", "beta", "alpha", None]


def test_stop_strings_end_the_reply(scripted_server: Server) -> None:
    reply = scripted_server.client().chat.completions.create(
        model="scripted", stop=[" sunny"],
        messages=[{"role": "user", "content": "x"},
                  {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                                                        "function": {"name": "weather", "arguments": "{}"}}]},
                  {"role": "tool", "tool_call_id": "c", "content": "18 C and sunny today"}],
    )
    assert reply.choices[0].message.content == "The tool said: 18 C and"
    assert reply.choices[0].finish_reason == "stop"


def test_full_queue_answers_429_and_loses_nothing(scripted_server: Server, tmp_path: Path) -> None:
    """One generating and --max-queue 2 waiting: the next is refused with Retry-After; the rest all finish."""
    gate = tmp_path / "release"
    before = scripted_server.health()
    results: dict[str, Any] = {}

    def ask(name: str) -> None:
        try:
            reply = scripted_server.client().chat.completions.create(
                model="scripted", messages=[{"role": "user", "content": f"wait:{gate}"}])
            results[name] = reply.choices[0].message.content
        except Exception as error:  # noqa: BLE001 - recorded and checked below
            results[name] = error

    threads = [threading.Thread(target=ask, args=("first",))]
    threads[0].start()
    scripted_server.wait_for(lambda h: h["generating"], "the first request generating")
    for name in ("second", "third"):
        threads.append(threading.Thread(target=ask, args=(name,)))
        threads[-1].start()
    scripted_server.wait_for(lambda h: h["waiting"] == 2, "two requests waiting")

    with pytest.raises(openai.RateLimitError) as refused:
        scripted_server.client().chat.completions.create(model="scripted", messages=[{"role": "user", "content": "hi"}])
    assert int(refused.value.response.headers["retry-after"]) >= 1
    assert refused.value.body["code"] == "rate_limit_exceeded"
    assert "--max-queue" in refused.value.body["message"]

    gate.write_text("go")
    for thread in threads:
        thread.join(60)
    assert results == {"first": "released", "second": "released", "third": "released"}
    after = scripted_server.health()
    assert after["served"] - before["served"] == 3 and after["rejected"] - before["rejected"] == 1
    assert not after["generating"] and after["waiting"] == 0


def test_a_client_that_leaves_cancels_its_generation(scripted_server: Server) -> None:
    before = scripted_server.health()
    stream = scripted_server.client().chat.completions.create(
        model="scripted", messages=[{"role": "user", "content": "endless"}], stream=True)
    pieces = [chunk.choices[0].delta.content for chunk, _ in zip(stream, range(5))]
    assert pieces[1:] == ["tick "] * 4
    stream.close()
    scripted_server.wait_for(lambda h: h["cancelled"] == before["cancelled"] + 1 and not h["generating"],
                             "the endless reply cancelled")
    assert described(scripted_server, [{"role": "user", "content": "next"}])["messages"][0]["parts"] == [
        {"text": "next"}]


def test_a_client_that_leaves_while_queued_is_dropped(scripted_server: Server, tmp_path: Path) -> None:
    gate = tmp_path / "release"
    done: list[str] = []
    first = threading.Thread(target=lambda: done.append(scripted_server.client().chat.completions.create(
        model="scripted", messages=[{"role": "user", "content": f"wait:{gate}"}]).choices[0].message.content))
    first.start()
    scripted_server.wait_for(lambda h: h["generating"], "the first request generating")
    before = scripted_server.health()
    body = json.dumps({"model": "scripted", "stream": True, "messages": [{"role": "user", "content": "endless"}]})
    queued = socket.create_connection(scripted_server.address)  # raw: the status line waits for the turn
    queued.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
                   f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode())
    scripted_server.wait_for(lambda h: h["waiting"] == 1, "the second request waiting")
    queued.close()
    gate.write_text("go")
    first.join(60)
    assert done == ["released"]
    after = scripted_server.wait_for(lambda h: not h["generating"] and h["waiting"] == 0, "the queue empty")
    assert after["served"] - before["served"] == 1  # the endless request never started generating


# --- refusals ------------------------------------------------------------------------------------------------------

def assert_error(response: Any, status: int, code: str | None = None, says: str = "") -> dict:
    assert response.status == status, response.body
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    assert says in error["message"]
    return error


def chat(server: Server, body: Any, **headers: str) -> Any:
    return server.request("POST", "/v1/chat/completions", body, headers=headers or None)


def ok_body(**changes: Any) -> dict:
    return {"model": "scripted", "messages": [{"role": "user", "content": "hi"}], **changes}


@pytest.mark.parametrize(("body", "status", "code", "says"), [
    (b"{not json", 400, "invalid_json", "not valid JSON"),
    (b"[1, 2]", 400, "invalid_type", "must be a JSON object"),
    (ok_body(messages="hi"), 400, "invalid_type", "messages must be"),
    (ok_body(messages=[]), 400, "invalid_type", "messages must be"),
    (ok_body(messages=[{"role": "robot", "content": "x"}]), 400, None, "messages[0].role"),
    (ok_body(messages=[{"role": "user", "content": 5}]), 400, "invalid_type", "messages[0].content"),
    (ok_body(temperature="hot"), 400, "invalid_type", "temperature must be a number"),
    (ok_body(temperature=3), 400, "invalid_value", "temperature = 3"),
    (ok_body(max_tokens=True), 400, "invalid_type", "max_tokens must be an integer"),
    (ok_body(max_tokens=10**7), 400, "max_tokens_too_large", "--max-tokens"),
    (ok_body(stream="yes"), 400, "invalid_type", "stream must be true or false"),
    (ok_body(n=3), 400, None, "n = 3"),
    (ok_body(model=7), 400, "invalid_type", "model must be"),
    (ok_body(tools=[{"type": "function", "function": {"name": "bad name!"}}]), 400, None, "tools[0].function.name"),
    (ok_body(messages=[{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {
        "name": "f", "arguments": "{oops"}}]}]), 400, None, "arguments is not valid JSON"),
    (ok_body(messages=[{"role": "tool", "content": "x"}]), 400, "invalid_type", "tool_call_id"),
    (ok_body(messages=[{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]), 400,
     "unsupported_content", "text and image_url"),
    (ok_body(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]), 400,
     "unsupported_image_url", "data: URLs"),
    (ok_body(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,!!!"}}]}]), 400, None, "base64"),
    (ok_body(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}]}]), 400, "invalid_image",
     "cannot be read"),
    (ok_body(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_url(png(8, 8, kind="TIFF"), "tiff")}}]}]), 400,
     "invalid_image", "PNG, JPEG, WebP, GIF or BMP"),
    (ok_body(messages=[{"role": "user", "content": [image_part(2, 2)] * 9}]), 400, "too_many_images", "--max-images"),
    (ok_body(model="gpt-4o"), 404, "model_not_found", "available: scripted, scripted+alpha, scripted+beta"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_bad_requests_are_4xx_json_and_the_server_stays_up(
    scripted_server: Server, body: Any, status: int, code: str | None, says: str
) -> None:
    assert_error(chat(scripted_server, body), status, code, says)
    assert scripted_server.health()["status"] == "ok"
    assert described(scripted_server, [{"role": "user", "content": "still here"}])["messages"]


def test_huge_image_is_refused_before_decoding(scripted_server: Server) -> None:
    """5000x4000 pixels (a few KB of PNG) is over the default 16.7 M pixels: refused from its header."""
    body = ok_body(messages=[{"role": "user", "content": [image_part(5000, 4000)]}])
    error = assert_error(chat(scripted_server, body), 400, "image_too_large", "5000x4000")
    assert "--max-image-pixels" in error["message"]
    assert scripted_server.health()["status"] == "ok"


def test_body_over_the_limit_is_413(scripted_server: Server) -> None:
    body = ok_body(messages=[{"role": "user", "content": "x" * (1536 * 1024)}])
    assert_error(chat(scripted_server, body), 413, "request_too_large", "--max-body-mb")
    assert scripted_server.health()["status"] == "ok"


def test_the_api_key_is_required(scripted_server: Server) -> None:
    assert_error(chat(scripted_server, ok_body(), Authorization="Bearer wrong"), 401, "invalid_api_key")
    assert_error(scripted_server.request("GET", "/v1/models", headers={"Authorization": None}), 401,
                 "invalid_api_key")
    with pytest.raises(openai.AuthenticationError):
        scripted_server.client(api_key="wrong").models.list()
    assert scripted_server.health()["status"] == "ok"  # /health needs no key
    logs = [scripted_server.log, *scripted_server.home.rglob("*.log")]
    assert all(API_KEY not in path.read_text() for path in logs)  # the key is never logged


def test_unknown_endpoints_and_methods_are_json(scripted_server: Server) -> None:
    assert_error(scripted_server.request("GET", "/v1/embeddings"), 404, says="/v1/chat/completions")
    assert_error(scripted_server.request("GET", "/v1/chat/completions"), 405)
    assert_error(scripted_server.request("GET", "/v1/models/nope"), 404, "model_not_found")
    assert scripted_server.request("GET", "/v1/models/scripted+alpha").json()["id"] == "scripted+alpha"


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stopping_the_server_ends_open_streams_cleanly(
    tmp_path: Path, shared_cache: Path, stop_signal: signal.Signals
) -> None:
    server = start_server(tmp_path / "home", shared_cache, "--profile", str(scripted_profile(tmp_path)),
                          "--api-key", API_KEY, plugin_dir=install_scripted_plugin(tmp_path / "site"))
    try:
        stream = server.client().chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "endless"}], stream=True)
        chunks = [chunk for chunk, _ in zip(stream, range(3))]
        server.process.send_signal(stop_signal)
        chunks += list(stream)  # the reply ends with what it has, instead of being cut off
        assert chunks[-1].choices[0].finish_reason == "stop"
        assert server.process.wait(60) == 0
        assert server.log.read_text().splitlines()[-1] == "stopped"
    finally:
        server.stop()
