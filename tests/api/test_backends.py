"""The backend seam: `[model] backend` picks a registered backend; a plugin's backend serves the API and CLI."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

import assistant.plugins as plugins_module
from assistant import Assistant, hookimpl
from assistant.cli import main
from assistant.errors import AssistantError
from assistant.hooktypes import Backend, BackendCapabilities, BackendInfo, GenerationRequest, GenerationStats


class EchoReply:
    """Says back the last user text, word by word (a real ReplyEvents implementation)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.stats = GenerationStats(prompt_tokens=len(text.split()))
        self.input_sizes: dict[str, tuple[int, int]] = {}
        self.dropped = 0
        self.finished = False
        self._cancel = threading.Event()

    def __iter__(self) -> Iterator[str]:
        words = self.text.split()
        for index, word in enumerate(words):
            if self._cancel.is_set():
                break
            yield word if index == 0 else " " + word
            self.stats.completion_tokens += 1
        self.stats.stopped = self._cancel.is_set()
        self.stats.finish_reason = "stopped" if self.stats.stopped else "eos"
        self.finished = True

    def cancel(self) -> None:
        self._cancel.set()


class EchoBackend:
    name = "echo"
    capabilities = BackendCapabilities(max_context=1000)

    def __init__(self, profile: Any) -> None:
        self.profile = profile
        self.requests: list[GenerationRequest] = []
        self.closed = False

    @property
    def info(self) -> BackendInfo:
        return BackendInfo(profile=self.profile.name, model="echo", remote="")

    def stream(self, request: GenerationRequest) -> EchoReply:
        self.requests.append(request)
        return EchoReply("echo: " + request.messages[-1].text)

    def set_adapter(self, name: str | None) -> None:
        raise AssertionError("never called: capabilities say no adapters")

    def close(self) -> None:
        self.closed = True


class EchoPlugin:
    @hookimpl
    def register_backends(self, register):
        register(Backend(name="echo", load=lambda profile, progress: EchoBackend(profile), description="says it back"))


class _EntryPoint:
    name, value = "echo-plugin", "tests:echo"

    def load(self) -> Any:
        return EchoPlugin()


@pytest.fixture
def echo_installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(plugins_module, "entry_points", lambda group: [_EntryPoint()])
    plugins_module.reset_plugin_manager(None)
    yield
    plugins_module.reset_plugin_manager(None)


def profile_file(tmp_path: Path, backend: str) -> Path:
    path = tmp_path / "echo.toml"
    path.write_text(f'[model]\nbackend = "{backend}"\nid = "whatever/model"\n', encoding="utf-8")
    return path


def test_the_built_in_transformers_backend_is_registered_and_used() -> None:
    bot = Assistant.from_profile("tiny-smolvlm")
    backend = bot.load()
    assert backend.name == "transformers" and backend.capabilities.adapters and backend.capabilities.kv_reuse
    assert bot.engine is backend.engine  # type: ignore[attr-defined]
    reply = bot.chat().ask("hello", max_new_tokens=2)
    assert reply.status == "ok" and reply.completion_tokens >= 1


def test_an_unknown_backend_is_one_line_listing_the_available_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = profile_file(tmp_path, "no-such-backend")
    with pytest.raises(AssistantError, match=r"backend 'no-such-backend', which no plugin provides; available: .*transformers"):
        Assistant.from_profile(path).load()
    assert main(["ask", "--profile", str(path), "hi"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no-such-backend" in err[0] and "transformers" in err[0]


def test_a_plugin_backend_answers_through_the_api_and_the_cli(
    echo_installed: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = profile_file(tmp_path, "echo")
    bot = Assistant.from_profile(path)
    chat = bot.chat()
    reply = chat.ask("what is this", temperature=0.5, max_new_tokens=7)
    assert reply.text == "echo: what is this" and reply.status == "ok"
    request = bot.backend.requests[-1]  # type: ignore[attr-defined]
    assert request.settings.temperature == 0.5 and request.max_new_tokens == 7
    assert [message.role for message in request.messages] == ["user"]
    second = chat.ask("and now")
    assert second.text == "echo: and now"
    assert [message.role for message in bot.backend.requests[-1].messages] == ["user", "assistant", "user"]  # type: ignore[attr-defined]
    # features only the in-process engine has are refused in one line naming the backend
    with pytest.raises(AssistantError, match="adapters need the transformers backend; this profile uses echo"):
        bot.set_adapter("mine")
    assert main(["ask", "--profile", str(path), "--no-stats", "piped through the CLI"]) == 0
    assert capsys.readouterr().out.strip() == "echo: piped through the CLI"
    assert main(["ask", "--profile", str(path), "--adapter", "mine", "hi"]) == 2
    assert "adapters need the transformers backend" in capsys.readouterr().err


def test_the_backend_example_in_the_plugin_guide_works_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The docs' example module, installed as a plugin through the entry-point group, answers a question."""
    import re
    import types

    docs = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text(encoding="utf-8")
    [source] = [block for block in re.findall(r"```python\n(.*?)```", docs, re.S) if "assistant-echo" in block]
    module = types.ModuleType("assistant_echo")
    exec(compile(source, "docs/plugins.md", "exec"), module.__dict__)

    class DocsEntryPoint:
        name, value = "assistant-echo", "assistant_echo"

        def load(self) -> Any:
            return module

    monkeypatch.setattr(plugins_module, "entry_points", lambda group: [DocsEntryPoint()])
    plugins_module.reset_plugin_manager(None)
    try:
        bot = Assistant.from_profile(profile_file(tmp_path, "echo"))
        chat = bot.chat()
        assert chat.ask("hello from the guide").text == "hello from the guide"
        stream = chat.stream("one two three four")
        pieces = []
        for piece in stream:
            pieces.append(piece)
            stream.cancel()
        assert stream.reply is not None and stream.reply.status == "stopped" and pieces == ["one"]
    finally:
        plugins_module.reset_plugin_manager(None)
