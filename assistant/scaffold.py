"""`assistant plugins new NAME`: write a minimal installable plugin package that passes its own test."""

from __future__ import annotations

import re
from pathlib import Path

from .errors import AssistantError

NAME_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "assistant-{name}"
version = "0.1.0"
description = "A plugin for vlm-assistant: adds `assistant {name}`."
requires-python = ">=3.11"
dependencies = ["vlm-assistant"]

[project.optional-dependencies]
test = ["pytest"]

[project.entry-points.assistant]
{name} = "{module}"

[tool.setuptools]
py-modules = ["{module}"]
"""

MODULE = '''\
"""assistant-{name}: a vlm-assistant plugin (see docs/plugins.md of the assistant for every hook)."""

import click

from assistant import hookimpl


@hookimpl
def register_commands(cli):
    @cli.command("{name}")
    @click.argument("who", default="world")
    def command(who):
        """Say hello (replace with what your plugin does)."""
        click.echo(f"Hello from {name}, {{who}}!")
'''

TEST = '''\
"""Tests for assistant-{name}, with the assistant's testing kit (no model, no real user data)."""

import {module}
from assistant.testing import installed, run_cli, temporary_home


def test_the_command_says_hello():
    with temporary_home(), installed(**{{"{name}": {module}}}):
        result = run_cli("{name}", "Ada")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Hello from {name}, Ada!\\n"


def test_the_plugin_loads_without_failures_or_clashes():
    with temporary_home(), installed(**{{"{name}": {module}}}):
        result = run_cli("plugins", "list")
    (line,) = [line for line in result.stdout.splitlines() if line.split()[:1] == ["{name}"]]
    assert line.split()[1:3] == ["third-party", "ok"], result.stdout
    assert "clash" not in result.stdout and "error:" not in result.stdout
'''

README = """\
# assistant-{name}

A plugin for vlm-assistant. Work on it with:

```console
$ pip install -e '.[test]'
$ assistant plugins list      # {name} third-party ok register_commands
$ assistant {name} Ada
$ pytest
```
"""


def new_plugin(name: str, directory: Path, taken: set[str] = frozenset()) -> Path:  # type: ignore[assignment]
    """Write the package `assistant-NAME` into `directory`; returns its folder. AssistantError for a bad name."""
    if not NAME_RE.match(name):
        raise AssistantError(
            f"{name!r} is not a plugin name: use lowercase letters, digits and dashes, starting with a letter "
            "(e.g. weather or pdf-notes)"
        )
    if name in taken:
        raise AssistantError(f"`assistant {name}` already exists; choose another name for the plugin")
    module = "assistant_" + name.replace("-", "_")
    target = directory / f"assistant-{name}"
    if target.exists():
        raise AssistantError(f"{target} already exists; remove it or choose another name or --directory")
    files = {
        "pyproject.toml": PYPROJECT,
        f"{module}.py": MODULE,
        f"tests/test_{module}.py": TEST,
        "README.md": README,
    }
    for relative, template in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(name=name, module=module), encoding="utf-8")
    return target
