"""The `openai` backend against `assistant serve` started as a real process on loopback: our client and our
server, each proven against the other (and the client against llama.cpp in test_llama_server.py).

The tiny SmolVLM server answers real questions (images, a PDF page, a personal adapter by model name); a server
on the scripted backend plugin (tests/serve/scripted_backend.py, installed as a real entry point) drives what
random weights cannot: a tool call round trip through the agent, an endless reply to stop, a full queue.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator

import pymupdf
import pytest
from PIL import Image

from assistant import Assistant
from assistant.agent import Agent, Finished
from assistant.cli import main
from assistant.errors import AssistantError
from assistant.hooktypes import Tool, ToolResult
from assistant.permissions import Permissions
from tests.serve.serving import API_KEY, Server, install_scripted_plugin, scripted_profile, start_server
from tests.unit.test_adapters import make_adapter

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("remote-tiny") / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ASSISTANT_HOME", str(home))
        patch.setenv("ASSISTANT_CACHE_DIR", str(shared_cache))
        make_adapter("style")
    server = start_server(home, shared_cache, "--profile", "tiny-smolvlm", "--max-queue", "2")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("remote-scripted")
    server = start_server(root / "home", shared_cache, "--profile", str(scripted_profile(root)), "--max-queue", "1",
                          "--api-key", API_KEY, plugin_dir=install_scripted_plugin(root / "site"))
    yield server
    server.stop()


def keyed_profile(folder: Path, server: Server, model: str = "scripted", env: str = "SERVE_KEY") -> Path:
    path = folder / "remote.toml"
    path.write_text(f'[model]\nbackend = "openai"\nbase_url = "{server.url}"\nid = "{model}"\napi_key_env = "{env}"\n'
                    "max_retries = 1\n")
    return path


def test_ask_with_an_image_and_a_pdf_page(tiny: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "square.png"
    Image.new("RGB", (320, 240), (20, 160, 40)).save(image)
    code = main(["ask", "--base-url", tiny.url, "--model", "tiny-smolvlm", "--max-tokens", "4", "--image", str(image), "What is it?"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"remote: {tiny.url.split('/')[2]} (this machine)" in err
    pdf = tmp_path / "notes.pdf"
    document = pymupdf.open()
    for number in (1, 2):
        document.new_page(width=300, height=200).insert_text((20, 50), f"page {number}: the budget is {number * 100} euros")
    document.save(pdf)
    code = main(["ask", "--base-url", tiny.url, "--model", "tiny-smolvlm", "--max-tokens", "3", "--pdf", str(pdf),
                 "--pages", "2", "--json", "What is the budget?"])
    out, err = capsys.readouterr()
    assert code == 0, err
    import json

    record = json.loads(out)
    assert record["status"] == "ok" and record["tokens"]["prompt"] > 60  # the page image was encoded by the server


def test_a_personal_adapter_through_the_server_changes_the_answer(tiny: Server) -> None:
    def answer(model: str) -> str:
        bot = Assistant.from_profile("tiny-smolvlm", base_url=tiny.url, model=model)
        return bot.chat().ask("What colour is the square?", max_new_tokens=6).text

    base, styled = answer("tiny-smolvlm"), answer("tiny-smolvlm+style")
    assert styled != base and answer("tiny-smolvlm") == base  # greedy: same model, same words


def test_tool_call_round_trip_through_the_agent(scripted: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVE_KEY", API_KEY)
    bot = Assistant.from_profile(keyed_profile(tmp_path, scripted))
    asked = []

    def weather(city: str = "") -> ToolResult:
        asked.append(city)
        return ToolResult(text=f"sunny in {city}")

    tool = Tool(name="weather", description="Weather in a city.", parameters={"type": "object", "properties": {"city": {"type": "string"}}}, run=weather)
    agent = Agent(bot.chat(), Permissions(), tools={"weather": tool})
    events = list(agent.run("What is the weather?"))
    assert isinstance(events[-1], Finished) and asked == ["Paris"]
    saved = bot.store.get_conversation(agent.chat.id).messages
    assert saved[-1].role == "assistant" and saved[-1].text == "The tool said: sunny in Paris"


def test_stopping_mid_stream_cancels_on_the_server(scripted: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVE_KEY", API_KEY)
    bot = Assistant.from_profile(keyed_profile(tmp_path, scripted))
    before = scripted.health()
    chat = bot.chat()
    stream = chat.stream("endless")
    pieces = []
    for piece in stream:
        pieces.append(piece)
        if len(pieces) == 5:
            threading.Thread(target=stream.cancel).start()
    assert stream.reply is not None and stream.reply.status == "stopped" and "tick" in stream.reply.text
    scripted.wait_for(lambda h: h["cancelled"] >= before["cancelled"] + 1 and not h["generating"], "the server to cancel")
    assert chat.ask("hello again").status == "ok"


def test_every_failure_is_one_line(scripted: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVE_KEY", "wrong-key")
    with pytest.raises(AssistantError, match=r"refused the request \(HTTP 401.*check the key in the environment variable SERVE_KEY"):
        Assistant.from_profile(keyed_profile(tmp_path, scripted)).chat().ask("hi")
    monkeypatch.setenv("SERVE_KEY", API_KEY)
    with pytest.raises(AssistantError, match=r"does not serve model 'nope' \(it serves: .*scripted"):
        Assistant.from_profile(keyed_profile(tmp_path, scripted, model="nope")).chat().ask("hi")

    # a full queue: one reply held on the server, one waiting, so the next is refused with 429 (retried once)
    gate = tmp_path / "release"
    held = [Assistant.from_profile(keyed_profile(tmp_path, scripted)) for _ in range(2)]
    threads = [threading.Thread(target=bot.chat().ask, args=(f"wait:{gate}",)) for bot in held]
    threads[0].start()
    scripted.wait_for(lambda h: h["generating"], "the first reply to hold the model")
    threads[1].start()
    scripted.wait_for(lambda h: h["waiting"] >= 1, "the second reply to wait in the queue")
    try:
        with pytest.raises(AssistantError, match=r"is busy \(HTTP 429\) after 2 attempt\(s\)"):
            Assistant.from_profile(keyed_profile(tmp_path, scripted)).chat().ask("one more")
    finally:
        gate.write_text("go")
        for thread in threads:
            thread.join(60)


def test_a_stopped_server_is_connection_refused(tmp_path: Path, shared_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "short-lived"
    root.mkdir()
    server = start_server(root / "home", shared_cache, "--profile", str(scripted_profile(root)),
                          plugin_dir=install_scripted_plugin(root / "site"))
    url = server.url
    server.stop()
    assert main(["ask", "--base-url", url, "--model", "scripted", "hi"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "(connection refused); is the server running there?" in err[0]
