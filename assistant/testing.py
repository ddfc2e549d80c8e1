"""A testing kit for plugin authors: test a plugin without a real model or the user's own data.

- `temporary_home()`: a fresh ASSISTANT_HOME (data, config, cache) for the duration of a test.
- `installed(name=plugin, ...)`: plugins loaded as if pip-installed (entry points), by every surface.
- `plugin_manager(name=plugin, ...)`: a plugin manager with the built-ins and these plugins.
- `run_cli(*args)`: run the `assistant` command in-process; exit code, stdout and stderr.
- `scripted_assistant(replies)`: an `assistant.Assistant` whose model replies with the given texts (and tool
  calls, see `tool_call`), for the API, the agent loop and the TUI (`AssistantApp(..., plugins=...)`).
- `SlashRecorder(plugins, ...)`: the SlashContext a TUI /command receives, run synchronously, recording what the
  command attached, sent and said (with an `assistant`, `send` asks its chat for real).

Pure Python: nothing here loads torch or a model.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence, Union

if TYPE_CHECKING:
    from .api import Assistant
    from .conversation import Message
    from .plugins import PluginManager

Reply = Union[str, Callable[[Sequence["Message"]], str]]
"""A scripted reply: the text, or a function of the messages the model was given that returns it."""


@contextlib.contextmanager
def temporary_home(path: str | Path | None = None) -> Iterator[Path]:
    """Point ASSISTANT_HOME at a fresh folder (a temporary one unless `path` is given), then restore it."""
    from .plugins import reset_plugin_manager

    saved = {key: os.environ.get(key) for key in ("ASSISTANT_HOME", "ASSISTANT_DISABLE_PLUGINS")}
    with contextlib.ExitStack() as stack:
        home = Path(path) if path is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        os.environ["ASSISTANT_HOME"] = str(home)
        os.environ.pop("ASSISTANT_DISABLE_PLUGINS", None)
        reset_plugin_manager(None)
        try:
            yield home
        finally:
            reset_plugin_manager(None)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@contextlib.contextmanager
def installed(**plugins: Any) -> Iterator[None]:
    """Load these plugins (name -> module or object) as if installed through the `assistant` entry-point group:
    the CLI, the TUI and `Assistant` all see them, third-party, with the guard and the clash policy applied."""
    from .plugins import EXTRA_PLUGINS, reset_plugin_manager

    before = dict(EXTRA_PLUGINS)
    EXTRA_PLUGINS.update(plugins)
    reset_plugin_manager(None)
    try:
        yield
    finally:
        EXTRA_PLUGINS.clear()
        EXTRA_PLUGINS.update(before)
        reset_plugin_manager(None)


def plugin_manager(builtins: bool = True, **plugins: Any) -> "PluginManager":
    """A plugin manager with the built-ins (unless `builtins=False`) and these third-party plugins by name."""
    from .plugins import DEFAULT_PLUGINS, create_plugin_manager

    manager = create_plugin_manager(load_entry_points=False, builtins=DEFAULT_PLUGINS if builtins else ())
    for name, plugin in plugins.items():
        manager.register(plugin, name=name)
    return manager


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def run_cli(*args: str, input: str = "") -> CliResult:
    """Run `assistant ARGS...` in this process (with `input` on stdin) and capture what it prints."""
    from .cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_stdin = sys.stdin
    sys.stdin = io.StringIO(input)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        sys.stdin = saved_stdin
    return CliResult(code, out.getvalue(), err.getvalue())


def tool_call(name: str, **arguments: Any) -> str:
    """The text of a tool call as a model writes it (Hermes/Qwen `<tool_call>` JSON), for scripted replies."""
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


# --- a scripted model backend ----------------------------------------------------------------------------------------

class ScriptedReplyEvents:
    """One scripted reply, word by word; `cancel()` ends it early (status stopped), like a real one."""

    def __init__(self, text: str) -> None:
        from .hooktypes import GenerationStats

        self.text = text
        self.stats = GenerationStats(prompt_tokens=10)
        self.input_sizes: dict[str, tuple[int, int]] = {}
        self.dropped = 0
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def __iter__(self) -> Iterator[str]:
        produced = ""
        for index, word in enumerate(self.text.split(" ")):
            if self._cancel.is_set():
                break
            piece = word if index == 0 else " " + word
            produced += piece
            yield piece
        self.stats.completion_tokens = len(produced.split())
        self.stats.ttft_s = 0.001
        self.stats.stopped = self._cancel.is_set()
        self.stats.finish_reason = "stopped" if self.stats.stopped else "eos"
        self.stats.raw_text = produced


@dataclass
class ScriptedBackend:
    """A model backend whose replies are given in advance: each reply takes the next one from `replies`.

    `prompts` keeps the messages each reply was asked with (check what your plugin added to the prompt).
    """

    replies: list[Reply]
    prompts: list[list[Any]] = field(default_factory=list)
    name: str = "scripted"
    capabilities: Any = None

    def __post_init__(self) -> None:
        from .hooktypes import BackendCapabilities

        if self.capabilities is None:
            self.capabilities = BackendCapabilities(max_context=8192)

    @property
    def info(self) -> Any:
        from .hooktypes import BackendInfo

        return BackendInfo(profile="scripted", model="scripted", context_limit=8192)

    def stream(self, request: Any) -> ScriptedReplyEvents:
        from .errors import AssistantError

        self.prompts.append(list(request.messages))
        if not self.replies:
            raise AssistantError("the scripted backend has no replies left; give scripted_assistant more replies")
        reply = self.replies.pop(0)
        return ScriptedReplyEvents(reply(request.messages) if callable(reply) else reply)

    def set_adapter(self, name: str | None) -> None:
        from .errors import AssistantError

        if name is not None:
            raise AssistantError("the scripted backend has no adapters")

    def close(self) -> None:
        pass


def scripted_assistant(
    replies: Sequence[Reply], profile: str = "tiny-smolvlm", plugins: "PluginManager | None" = None, **named_plugins: Any
) -> "tuple[Assistant, ScriptedBackend]":
    """An Assistant on `profile` whose model is a ScriptedBackend (no model is loaded), with the built-in plugins
    and `named_plugins` (name -> plugin) registered third-party; use inside `temporary_home()`."""
    from .api import Assistant
    from .profiles import load_profile

    manager = plugins if plugins is not None else plugin_manager(**named_plugins)
    assistant = Assistant(load_profile(profile), plugins=manager)
    backend = ScriptedBackend(list(replies))
    assistant._backend = backend  # the model is "loaded": nothing else is
    return assistant, backend


# --- a TUI /command's context without the TUI --------------------------------------------------------------------------

@dataclass
class SlashRecorder:
    """Implements `assistant.hooktypes.SlashContext` without a UI: background work runs at once (an AssistantError is
    recorded as an error notice, as the TUI shows it), `ask_password` answers from `passwords` in turn, and
    everything the command does is kept in the lists below. With `assistant`, `send` asks `chat` for real, with
    the images attached so far; without, it only records the text."""

    plugin_manager: Any
    profile: Any = None
    assistant: "Assistant | None" = None
    chat: Any = None
    passwords: list[str | None] = field(default_factory=list)
    images: list[tuple[Any, str]] = field(default_factory=list)
    texts: list[tuple[str, str]] = field(default_factory=list)
    documents: list[tuple[str, Callable[[str], Any]]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    """(message, severity) of every notification."""
    prompts: list[str] = field(default_factory=list)
    """The password prompts shown."""
    sent: list[tuple[str, "dict[str, Any] | None"]] = field(default_factory=list)
    replies: list[Any] = field(default_factory=list)
    progress: list[Callable[[], Any]] = field(default_factory=list)
    """The poll functions of the progress screens opened."""

    def __post_init__(self) -> None:
        if self.assistant is not None:
            self.profile = self.profile if self.profile is not None else self.assistant.profile
            self.chat = self.chat if self.chat is not None else self.assistant.chat()

    def send(self, text: str, extra: "dict[str, Any] | None" = None) -> None:
        self.sent.append((text, extra))
        if self.assistant is not None:
            images = [image for image, _source in self.images]
            self.images = []
            self.replies.append(self.chat.ask(text, images=images, extra=extra or {}))

    def attach_image(self, image: Any, source: str) -> None:
        self.images.append((image, source))

    def attach_text(self, text: str, source: str) -> None:
        self.texts.append((text, source))

    def attach_document(self, source: str, choose: Callable[[str], Any]) -> None:
        self.documents.append((source, choose))

    def notify(self, message: str, severity: str = "information") -> None:
        self.notes.append((message, severity))

    def run_in_background(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        from .errors import AssistantError

        try:
            result = work()
        except AssistantError as error:
            self.notify(str(error), "error")
            return
        done(result)

    def ask_password(self, prompt: str, done: Callable[["str | None"], None]) -> None:
        self.prompts.append(prompt)
        if not self.passwords:
            raise AssertionError(f"the command asked for a password ({prompt!r}); give SlashRecorder(passwords=[...])")
        done(self.passwords.pop(0))

    def show_progress(self, poll: Callable[[], Any], stop: "Callable[[], None] | None" = None) -> None:
        self.progress.append(poll)
