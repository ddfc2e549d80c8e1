"""docs/plugins.md documents every hook with its exact signature, every hooktypes value, and code that compiles."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path
from typing import Any, Callable

import pytest

from assistant import hooktypes, hookspecs

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def _docs() -> str:
    return DOCS.read_text(encoding="utf-8")


def hookspec_functions() -> dict[str, Callable[..., Any]]:
    """Every hook declared in assistant.hookspecs (found through pluggy's marker, so new hooks are included)."""
    return {
        name: function
        for name, function in vars(hookspecs).items()
        if callable(function) and getattr(function, "assistant_spec", None) is not None
    }


def _annotation(annotation: Any) -> str:
    """An annotation as written in hookspecs.py: `"click.Group"` -> click.Group (quotes are only for typing)."""
    text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
    while len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return text


def signature_text(name: str, function: Callable[..., Any]) -> str:
    """`capture_screenshot(request: ScreenshotRequest) -> Screenshot | None`, built with inspect."""
    signature = inspect.signature(function)
    params = []
    for parameter in signature.parameters.values():
        text = parameter.name
        if parameter.annotation is not inspect.Parameter.empty:
            text += f": {_annotation(parameter.annotation)}"
        if parameter.default is not inspect.Parameter.empty:
            text += f" = {parameter.default!r}"
        params.append(text)
    result = f"{name}({', '.join(params)})"
    if signature.return_annotation is not inspect.Signature.empty:
        result += f" -> {_annotation(signature.return_annotation)}"
    return result


def hook_section(docs: str, name: str) -> str:
    """The text under the hook's `### \\`name\\`` heading, up to the next heading."""
    match = re.search(rf"^### `{re.escape(name)}`\n(.*?)(?=^#{{1,3}} )", docs + "\n## end", re.S | re.M)
    assert match, f"docs/plugins.md has no '### `{name}`' section"
    return match.group(1)


HOOKS = hookspec_functions()


def test_the_hook_list_is_not_empty() -> None:
    assert {"capture_screenshot", "render_page", "page_text", "register_commands"} <= set(HOOKS)


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_every_hook_is_documented_with_its_exact_signature(name: str) -> None:
    expected = signature_text(name, HOOKS[name])
    section = hook_section(_docs(), name)
    assert f"def {expected}: ..." in section, f"docs/plugins.md: section {name} must show `def {expected}: ...`"


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_first_result_hooks_say_so(name: str) -> None:
    first_result = HOOKS[name].assistant_spec["firstresult"]
    section = " ".join(hook_section(_docs(), name).lower().split())
    if first_result:
        assert "first result wins" in section
    else:
        assert "first result wins" not in section
        assert "called on every plugin" in section or "concatenated" in section


def test_no_hook_is_documented_that_does_not_exist() -> None:
    documented = set(re.findall(r"^### `(\w+)`$", _docs(), re.M))
    assert documented == set(HOOKS)


def _hooktypes_values() -> dict[str, type]:
    return {
        name: value
        for name, value in vars(hooktypes).items()
        if inspect.isclass(value) and value.__module__ == hooktypes.__name__ and not name.startswith("_")
    }


@pytest.mark.parametrize("name", sorted(_hooktypes_values()))
def test_every_hooktypes_value_and_field_is_documented(name: str) -> None:
    docs = _docs()
    value = _hooktypes_values()[name]
    assert f"`{name}" in docs, f"docs/plugins.md does not describe assistant.hooktypes.{name}"
    if dataclasses.is_dataclass(value):
        members = [field.name for field in dataclasses.fields(value)]
    else:  # the SlashContext protocol: its attributes and methods
        members = [m for m in list(getattr(value, "__annotations__", {})) + list(vars(value)) if not m.startswith("_")]
    for member in members:
        assert re.search(rf"`{re.escape(member)}\b", docs) or re.search(rf"\b{re.escape(member)}[=,)]", docs), (
            f"docs/plugins.md does not mention {name}.{member}"
        )


def test_python_examples_compile() -> None:
    blocks = re.findall(r"```python[^\n]*\n(.*?)```", _docs(), re.S)
    assert len(blocks) >= len(HOOKS)
    for block in blocks:
        compile(block, str(DOCS), "exec")


def test_the_example_plugin_files_are_complete() -> None:
    files = dict(re.findall(r'```\w+ title="([^"]+)"\n(.*?)```', _docs(), re.S))
    assert set(files) == {"pyproject.toml", "assistant_hello.py"}
    import tomllib

    project = tomllib.loads(files["pyproject.toml"])
    assert project["project"]["entry-points"]["assistant"] == {"hello": "assistant_hello"}
    assert "@hookimpl" in files["assistant_hello.py"]


# --- every hook has a caller (issue 14.1): a recording plugin, and the application's own surfaces ----------------------

def _recorder() -> tuple[Any, set[str]]:
    """A plugin module implementing every hookspec with its exact arguments; it records the hooks called."""
    import types

    from assistant import hookimpl

    called: set[str] = set()
    module = types.ModuleType("assistant_recorder")
    for name, spec in HOOKS.items():
        params = ", ".join(inspect.signature(spec).parameters)
        namespace: dict[str, Any] = {"called": called}
        exec(f"def {name}({params}):\n    called.add({name!r})\n", namespace)  # noqa: S102 - a test plugin
        setattr(module, name, hookimpl(namespace[name]))
    return module, called


class _EntryPoint:
    def __init__(self, name: str, plugin: Any) -> None:
        self.name, self.value, self._plugin = name, "tests:recorder", plugin

    def load(self) -> Any:
        return self._plugin


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The recording plugin, installed through the entry-point group as pip would; yields the set of hooks called."""
    import assistant.plugins as plugins_module

    module, called = _recorder()
    monkeypatch.setattr(plugins_module, "entry_points", lambda group: [_EntryPoint("recorder", module)])
    plugins_module.reset_plugin_manager(None)
    yield called
    plugins_module.reset_plugin_manager(None)


def _cli(*args: str) -> int:
    from assistant.cli import main

    return main(list(args))


def _pdf(path: Path, pages: int) -> Path:
    import pymupdf

    document = pymupdf.open()
    for number in range(1, pages + 1):
        document.new_page(width=200, height=100).insert_text((20, 40), f"page {number} about topic{number}")
    document.save(path)
    return path


def _drive_tui(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from assistant.tui.app import AssistantApp
    from assistant.tui.config import TuiConfig

    async def run() -> None:
        app = AssistantApp("tiny-smolvlm", config=TuiConfig(), autoload=False)
        async with app.run_test(size=(100, 30)) as pilot:
            for _ in range(50):
                if "screenshot" in app.commands.names():
                    break
                await pilot.pause(0.05)

    asyncio.run(run())


def _drive_reply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant import Assistant

    Assistant.from_profile("tiny-smolvlm").chat().ask("hello", max_new_tokens=2)


def _drive_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.conversation import Message, TextPart
    from assistant.store import Store

    with Store.open_default() as store:
        chat = store.create_conversation(title="t", profile="tiny-smolvlm")
        store.add_message(chat.id, Message(role="user", parts=[TextPart("question")]))
        store.add_message(chat.id, Message(role="assistant", parts=[TextPart("answer")]))
    _cli("chats", "export-dataset", "-o", str(tmp_path / "data.jsonl"))


def _drive_screenshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    _cli("screenshot", "-o", str(tmp_path / "s.png"))


def _drive_ranking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.documents import prepare_document
    from assistant.plugins import get_plugin_manager

    prepare_document(get_plugin_manager(), _pdf(tmp_path / "long.pdf", 12), "what about topic7?", None)


DRIVERS: dict[str, Callable[[Path, pytest.MonkeyPatch], None]] = {
    "register_commands": lambda tmp_path, mp: _cli("chats", "--help"),  # `assistant --help` loads no third-party plugin
    "register_slash_commands": _drive_tui,
    "register_backends": _drive_reply,
    "capture_screenshot": _drive_screenshot,
    "render_page": lambda tmp_path, mp: _cli("pdf", "render", str(_pdf(tmp_path / "a.pdf", 1)), "-o", str(tmp_path / "p.png")),
    "page_text": lambda tmp_path, mp: _cli("pdf", "text", str(_pdf(tmp_path / "a.pdf", 1))),
    "document_text": _drive_ranking,
    "register_grounding_formats": lambda tmp_path, mp: _cli("ground", "--list-formats"),
    "register_tools": lambda tmp_path, mp: _cli("tools", "list"),
    "register_trainers": lambda tmp_path, mp: _cli("train", "--name", "x", "--trainer", "none-such"),
    "conversation_to_examples": _drive_export,
    "reply_finished": _drive_reply,
}
"""For each hook, one way the application itself calls it (a CLI command, the TUI, the API)."""


def test_every_hook_has_a_caller_to_test() -> None:
    missing = sorted(set(HOOKS) - set(DRIVERS))
    assert not missing, f"add to DRIVERS how the application calls: {', '.join(missing)}"


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_every_hook_is_called_by_the_application(
    name: str, recorder: set[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    DRIVERS[name](tmp_path, monkeypatch)
    capsys.readouterr()
    assert name in recorder, f"nothing in the application called the documented hook {name}"
