"""The `openai` backend against a loopback server that streams what OpenAI-compatible servers send.

The recorded server reaches what the real ones (tests/serve, tests/remote/test_llama_server.py) cannot produce
on demand with random weights: tool calls split across chunks as vLLM streams them, 429s, a context overflow,
a server without image support. Every request the client sent is checked as the server received it.
"""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest
from PIL import Image

from assistant import Assistant
from assistant.cli import main
from assistant.errors import AssistantError
from assistant.hooktypes import Tool, ToolResult
from assistant.paths import user_paths
from sse_server import Canned, RecordingServer, text_events


def remote(server: RecordingServer, model: str = "served-model") -> Assistant:
    return Assistant.from_profile("tiny-smolvlm", base_url=server.url, model=model)


def test_a_reply_streams_with_images_options_and_usage(server: RecordingServer) -> None:
    server.answers.append(Canned(events=text_events("A red", " square.", usage=(321, 3))))
    bot = remote(server)
    pieces = []
    stream = bot.chat().stream("What is it?", images=[Image.new("RGB", (4000, 1000), "red")], temperature=0.4, top_p=0.9, seed=7, max_new_tokens=20)
    pieces = list(stream)
    reply = stream.reply
    assert pieces == ["A red", " square."] and reply.text == "A red square." and reply.status == "ok"
    assert (reply.prompt_tokens, reply.completion_tokens) == (321, 3) and reply.ttft_s is not None
    sent = server.requests[0]
    assert sent["model"] == "served-model" and sent["stream"] is True
    assert (sent["temperature"], sent["top_p"], sent["seed"], sent["max_tokens"]) == (0.4, 0.9, 7, 20)
    content = sent["messages"][-1]["content"]
    assert content[-1] == {"type": "text", "text": "What is it?"}
    url = content[0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    import base64
    import io

    sent_image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert sent_image.size == (2048, 512)  # downscaled to the pixel budget before it left the machine
    assert bot.backend.info.remote.startswith("127.0.0.1:") and bot.backend.capabilities.adapters is False


def test_history_and_the_system_prompt_go_with_each_request(server: RecordingServer) -> None:
    server.answers += [Canned(events=text_events("one")), Canned(events=text_events("two"))]
    bot = remote(server)
    chat = bot.chat()
    chat.ask("first?", system="Be brief.")
    chat.ask("second?")
    roles = [(m["role"], m["content"]) for m in server.requests[1]["messages"]]
    assert roles == [("user", "first?"), ("assistant", "one"), ("user", "second?")]
    assert server.requests[0]["messages"][0] == {"role": "system", "content": "Be brief."}


def test_tool_calls_split_across_chunks_round_trip_through_the_agent(server: RecordingServer) -> None:
    from assistant.agent import Agent, Finished
    from assistant.permissions import Permissions

    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [{"index": 0, "id": "call_9", "type": "function", "function": {"name": "echo", "arguments": ""}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"te"}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "xt\": \"hi\"}"}}]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    server.answers += [Canned(events=chunks), Canned(events=text_events("The tool said hi."))]
    bot = remote(server)
    ran = []

    def run(text: str = "") -> ToolResult:
        ran.append(text)
        return ToolResult(text=f"echo: {text}")

    class Tools:
        from assistant import hookimpl

        @hookimpl
        def register_tools(self, register):
            register(Tool(name="echo", description="Repeat.", parameters={"type": "object", "properties": {"text": {"type": "string"}}}, run=run))

    bot.plugins.register(Tools(), name="test-tools")
    agent = Agent(bot.chat(), Permissions(), tools={"echo": bot.plugins.collect("register_tools")[-1]})
    events = list(agent.run("use the tool"))
    finished = events[-1]
    assert isinstance(finished, Finished) and ran == ["hi"]
    assert bot.store.get_conversation(agent.chat.id).messages[-1].text == "The tool said hi."
    assert server.requests[0]["tools"][0]["function"]["name"] == "echo"
    second = server.requests[1]["messages"]
    assistant_turn = next(m for m in second if m["role"] == "assistant")
    call = assistant_turn["tool_calls"][0]
    assert call["function"]["name"] == "echo" and json.loads(call["function"]["arguments"]) == {"text": "hi"}
    tool_turn = next(m for m in second if m["role"] == "tool")
    assert tool_turn["tool_call_id"] == call["id"] and tool_turn["content"] == "echo: hi"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_server_that_is_not_running_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    assert main(["ask", "--base-url", url, "--model", "m", "hi"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot reach the model server at {url} (connection refused)" in err[0]
    assert "is the server running" in err[0]


def test_a_refused_key_names_the_environment_variable(server: RecordingServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_REMOTE_KEY", "sk-secret-123")
    profile = tmp_path / "remote.toml"
    profile.write_text(f'[model]\nbackend = "openai"\nbase_url = "{server.url}"\nid = "served-model"\napi_key_env = "TEST_REMOTE_KEY"\n')
    server.answers.append(Canned(status=401, body={"error": {"message": "Incorrect API key provided"}}))
    bot = Assistant.from_profile(profile)
    with pytest.raises(AssistantError, match=r"refused the request \(HTTP 401: Incorrect API key provided\); check the key in the environment variable TEST_REMOTE_KEY"):
        bot.chat().ask("hi")
    assert server.headers[0]["Authorization"] == "Bearer sk-secret-123"
    # the key is never written where the user's data lives
    for path in user_paths().data.rglob("*"):
        if path.is_file():
            assert b"sk-secret-123" not in path.read_bytes(), path
    monkeypatch.delenv("TEST_REMOTE_KEY")
    with pytest.raises(AssistantError, match=r"reads the API key from \$TEST_REMOTE_KEY, which is not set"):
        Assistant.from_profile(profile).load()


def test_an_unknown_model_lists_the_served_ones(server: RecordingServer) -> None:
    server.models = ["qwen2.5-vl-7b", "smolvlm"]
    server.answers.append(Canned(status=404, body={"error": {"message": "The model `nope` does not exist."}}))
    with pytest.raises(AssistantError, match=r"does not serve model 'nope' \(it serves: qwen2.5-vl-7b, smolvlm\)"):
        remote(server, model="nope").chat().ask("hi")


def test_busy_servers_are_retried_with_backoff_then_reported(server: RecordingServer) -> None:
    busy = Canned(status=429, body={"error": {"message": "queue full"}}, headers={"Retry-After": "0"})
    server.answers += [busy, busy, Canned(events=text_events("finally"))]
    assert remote(server).chat().ask("hi").text == "finally"
    assert len(server.requests) == 3
    server.answers += [busy, busy, busy]
    with pytest.raises(AssistantError, match=r"is busy \(HTTP 429\) after 3 attempt\(s\)"):
        remote(server).chat().ask("again")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("This model's maximum context length is 4096 tokens. However, you requested 9000 tokens", "too long for the model served"),
        ("image input is not supported - hint: if this is unexpected, you may need to provide the mmproj", "does not accept images"),
        ("something else broke", "answered HTTP 400: something else broke"),
    ],
)
def test_server_errors_are_one_actionable_line(server: RecordingServer, message: str, expected: str) -> None:
    server.answers.append(Canned(status=400, body={"error": {"message": message, "type": "invalid_request_error"}}))
    bot = remote(server)
    chat = bot.chat()
    with pytest.raises(AssistantError, match=expected) as caught:
        chat.ask("question", images=[Image.new("RGB", (64, 64), "blue")])
    assert "\n" not in str(caught.value)


def test_plain_http_to_another_machine_needs_allow_insecure(tmp_path: Path) -> None:
    profile = tmp_path / "far.toml"
    profile.write_text('[model]\nbackend = "openai"\nbase_url = "http://192.0.2.10:8000/v1"\nid = "m"\n')
    with pytest.raises(AssistantError, match="plain http to another machine.*allow_insecure = true"):
        Assistant.from_profile(profile).load()
    profile.write_text('[model]\nbackend = "openai"\nbase_url = "http://192.0.2.10:8000/v1"\nid = "m"\nallow_insecure = true\n')
    assert Assistant.from_profile(profile).load().name == "openai"  # nothing is sent until a question is asked


def test_stopping_mid_stream_keeps_the_text_and_frees_the_backend(server: RecordingServer) -> None:
    server.answers.append(Canned(events=text_events(*[f" w{n}" for n in range(40)]), delay_s=0.05))
    server.answers.append(Canned(events=text_events("next")))
    bot = remote(server)
    chat = bot.chat()
    stream = chat.stream("talk a lot")
    received = []
    for piece in stream:
        received.append(piece)
        if len(received) == 3:
            threading.Thread(target=stream.cancel).start()
    reply = stream.reply
    assert reply.status == "stopped" and 3 <= len(received) < 40 and reply.text == "".join(received)
    assert chat.ask("and now?").text == "next"  # the backend is free again


def test_ask_prints_where_the_question_went(server: RecordingServer, capsys: pytest.CaptureFixture[str]) -> None:
    server.answers.append(Canned(events=text_events("hi", usage=(5, 1))))
    assert main(["ask", "--base-url", server.url, "--model", "served-model", "hello"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "hi" and f"remote: 127.0.0.1:{server.port} (this machine)" in err


def test_base_url_without_a_model_name_says_what_to_add(server: RecordingServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "--base-url", server.url, "hello"]) == 2
    assert "--base-url needs --model NAME" in capsys.readouterr().err


def test_training_on_a_remote_profile_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = tmp_path / "remote.toml"
    profile.write_text('[model]\nbackend = "openai"\nbase_url = "http://127.0.0.1:9/v1"\nid = "m"\n')
    from tests.plugins.test_finetune_support import colour_chats
    from assistant.store import Store

    with Store.open_default() as store:
        colour_chats(store, 2)
    assert main(["train", "--name", "x", "--profile", str(profile), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "need the transformers backend; profile remote uses openai (http://127.0.0.1:9/v1)" in err[-1]
