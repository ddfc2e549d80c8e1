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
