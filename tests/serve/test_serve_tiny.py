"""`assistant serve` on the tiny SmolVLM (real processor, chat template and generation) with the official openai
client: models, replies with an image (whole and streamed), tool messages through the real template,
8 concurrent clients on a small queue, a disconnect that cancels, bad requests; and the start-up refusals.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import openai
import pytest

from tests.serve.serving import Server, image_part, server_env, start_server
from tests.unit.test_adapters import make_adapter

pytestmark = pytest.mark.timeout(600)

PROFILE = "tiny-smolvlm"


@pytest.fixture(scope="module")
def tiny_server(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("tiny-serve") / "home"
    with pytest.MonkeyPatch.context() as patch:  # a real LoRA adapter in the server's home: tiny-smolvlm+style
        patch.setenv("ASSISTANT_HOME", str(home))
        patch.setenv("ASSISTANT_CACHE_DIR", str(shared_cache))
        make_adapter("style")
    server = start_server(home, shared_cache, "--profile", PROFILE, "--max-queue", "2")
    try:
        yield server
    finally:
        server.stop()


def ask(server: Server, content: Any, **options: Any) -> Any:
    return server.client(api_key="unused").chat.completions.create(
        model=PROFILE, messages=[{"role": "user", "content": content}], **options)


def test_models_list_the_profile_and_its_adapters(tiny_server: Server) -> None:
    models = tiny_server.client(api_key="unused").models.list()
    assert [model.id for model in models] == [PROFILE, f"{PROFILE}+style"]
    assert tiny_server.request("GET", "/health").json()["backend"] == "transformers"


def test_each_request_gets_its_own_adapter(tiny_server: Server) -> None:
    """A request for PROFILE+style runs with the adapter, the next one for PROFILE without it: the adapter never
    leaks into another request's reply (greedy decoding, so equal requests give equal replies)."""
    client = tiny_server.client(api_key="unused")

    def reply(model: str) -> str:
        return client.chat.completions.create(model=model, max_tokens=8, temperature=0,
                                              messages=[{"role": "user", "content": "What colour is it?"}]
                                              ).choices[0].message.content

    order = [f"{PROFILE}+style", PROFILE, f"{PROFILE}+style", PROFILE]
    styled, base, styled_again, base_again = (reply(model) for model in order)
    assert styled != base
    assert (styled_again, base_again) == (styled, base)


def test_reply_about_an_image(tiny_server: Server) -> None:
    plain = ask(tiny_server, "Describe it.", max_tokens=4)
    with_image = ask(tiny_server, [{"type": "text", "text": "Describe it."}, image_part(64, 48)], max_tokens=4)
    for reply in (plain, with_image):
        choice = reply.choices[0]
        assert reply.object == "chat.completion" and reply.model == PROFILE
        assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
        assert choice.finish_reason in ("stop", "length")
        assert 1 <= reply.usage.completion_tokens <= 4
        assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert with_image.usage.prompt_tokens > plain.usage.prompt_tokens + 16  # the image's tokens reached the model


def test_streamed_reply_about_an_image(tiny_server: Server) -> None:
    stream = ask(tiny_server, [image_part(40, 40, (0, 120, 255)), {"type": "text", "text": "What colour?"}],
                 max_tokens=6, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    finals = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0] in ("stop", "length")
    usage = chunks[-1].usage
    assert not chunks[-1].choices and 1 <= usage.completion_tokens <= 6 and usage.prompt_tokens > 40
    assert isinstance(text, str) and len({chunk.id for chunk in chunks}) == 1


def test_tool_calls_and_results_render_through_the_real_template(tiny_server: Server) -> None:
    """The tiny model writes noise, not calls: this checks that a conversation with tools, an assistant tool call
    and a tool result is accepted and rendered by SmolVLM's template (the fallback tool format)."""
    weather = {"type": "function", "function": {"name": "weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}
    reply = tiny_server.client(api_key="unused").chat.completions.create(model=PROFILE, max_tokens=3, tools=[weather],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
        ])
    assert reply.choices[0].finish_reason in ("stop", "length", "tool_calls")
    assert reply.usage.prompt_tokens > 20


def test_eight_concurrent_clients_on_a_queue_of_two(tiny_server: Server) -> None:
    """Every request is answered or refused with 429 + Retry-After; none is lost; the server stays healthy."""
    before = tiny_server.health()
    results: list[Any] = [None] * 8

    def client(index: int) -> None:
        try:
            results[index] = ask(tiny_server, f"Question {index}", max_tokens=12)
        except openai.RateLimitError as error:
            results[index] = error
        except Exception as error:  # noqa: BLE001 - anything else fails the test below
            results[index] = error

    threads = [threading.Thread(target=client, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    answered = [result for result in results if isinstance(result, openai.types.chat.ChatCompletion)]
    refused = [result for result in results if isinstance(result, openai.RateLimitError)]
    assert len(answered) + len(refused) == 8, results
    assert answered, "at least the first request is served"
    for error in refused:
        assert int(error.response.headers["retry-after"]) >= 1
    after = tiny_server.wait_for(lambda h: not h["generating"] and h["waiting"] == 0, "the queue empty")
    assert after["served"] - before["served"] == len(answered)
    assert after["rejected"] - before["rejected"] == len(refused)
    assert ask(tiny_server, "Still there?", max_tokens=2).choices[0].message.role == "assistant"


def test_a_client_that_disconnects_cancels_its_generation(tiny_server: Server) -> None:
    before = tiny_server.health()
    stream = ask(tiny_server, "Tell me a very long story.", max_tokens=4000, stream=True)
    for _chunk, _ in zip(stream, range(3)):
        pass
    stream.close()
    tiny_server.wait_for(lambda h: h["cancelled"] == before["cancelled"] + 1 and not h["generating"],
                         "the abandoned generation cancelled")
    reply = ask(tiny_server, "Next question", max_tokens=2)
    assert reply.usage.completion_tokens <= 2


def test_bad_requests_leave_the_real_server_up(tiny_server: Server) -> None:
    assert tiny_server.request("POST", "/v1/chat/completions", b"{oops").json()["error"]["code"] == "invalid_json"
    with pytest.raises(openai.NotFoundError) as unknown:
        tiny_server.client(api_key="unused").chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert f"available: {PROFILE}, {PROFILE}+style" in unknown.value.body["message"]
    with pytest.raises(openai.BadRequestError) as huge:
        ask(tiny_server, [image_part(6000, 3000)])
    assert huge.value.body["code"] == "image_too_large"
    with pytest.raises(openai.BadRequestError) as typed:
        ask(tiny_server, "hi", max_tokens="many")
    assert typed.value.body["param"] == "max_tokens"
    assert tiny_server.health()["status"] == "ok"
    assert ask(tiny_server, "ok?", max_tokens=2).choices[0].finish_reason in ("stop", "length")


# --- start-up refusals (no model is loaded) ------------------------------------------------------------------------

def run_serve(tmp_path: Path, shared_cache: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = server_env(tmp_path / "home", shared_cache)
    environment.update(env)
    return subprocess.run([sys.executable, "-m", "assistant", "serve", "--profile", PROFILE, *args],
                          capture_output=True, text=True, env=environment, timeout=120)


def test_listening_beyond_loopback_needs_a_key(tmp_path: Path, shared_cache: Path) -> None:
    result = run_serve(tmp_path, shared_cache, "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: --host 0.0.0.0")
    assert "--api-key" in result.stderr and "ASSISTANT_API_KEY" in result.stderr
    assert result.stdout == ""


def test_a_busy_port_is_one_line(tmp_path: Path, shared_cache: Path) -> None:
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        result = run_serve(tmp_path, shared_cache, "--port", str(taken.getsockname()[1]))
    finally:
        taken.close()
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "choose another --port" in result.stderr
