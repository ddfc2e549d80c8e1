"""A real third-party plugin package, built and pip-installed by the test, is discovered through its entry point.

The good plugin is the complete example from docs/plugins.md (so the guide is proven to work); a second
package fails on import and must be reported, not fatal. Both are installed with `pip install --target` into
a temporary folder put on sys.path (and PYTHONPATH for subprocesses): a real pip install, offline, that
never touches the shared venv, so an interrupted run or a parallel test process never sees these plugins.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from assistant.cli import cli, main
from assistant.plugins import ENTRY_POINT_GROUP, create_plugin_manager, reset_plugin_manager

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"

BROKEN_PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "assistant-broken-example"
version = "0.1.0"

[project.entry-points.assistant]
broken-example = "assistant_broken_example"

[tool.setuptools]
py-modules = ["assistant_broken_example"]
"""

BROKEN_MODULE = '''\
"""A plugin that fails on import, as a plugin with a missing dependency would."""

raise ImportError("assistant_broken_example needs the package 'not-installed-anywhere'")
'''


def _example_files() -> dict[str, str]:
    return dict(re.findall(r'```\w+ title="([^"]+)"\n(.*?)```', DOCS.read_text(encoding="utf-8"), re.S))


@pytest.fixture(scope="module")
def installed_plugins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Build and install the docs' example plugin and a broken one; yield the folder they are installed in."""
    root = tmp_path_factory.mktemp("third-party")
    good, broken, target = root / "assistant-hello", root / "assistant-broken", root / "site"
    good.mkdir()
    broken.mkdir()
    for name, text in _example_files().items():
        (good / name).write_text(text, encoding="utf-8")
    (broken / "pyproject.toml").write_text(BROKEN_PYPROJECT, encoding="utf-8")
    (broken / "assistant_broken_example.py").write_text(BROKEN_MODULE, encoding="utf-8")
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
        "--disable-pip-version-check", "--target", str(target), str(good), str(broken),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=root)
    assert done.returncode == 0, f"pip install failed:\n{done.stdout}\n{done.stderr}"
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    try:
        yield target
    finally:
        sys.path.remove(str(target))
        for module in ("assistant_hello", "assistant_broken_example"):
            sys.modules.pop(module, None)
        importlib.invalidate_caches()


@pytest.fixture
def fresh_manager() -> Iterator[None]:
    reset_plugin_manager(None)
    yield
    reset_plugin_manager(None)


def test_pip_installed_the_entry_points(installed_plugins: Path) -> None:
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert found["hello"] == "assistant_hello"
    assert found["broken-example"] == "assistant_broken_example"
    assert (installed_plugins / "assistant_hello.py").is_file()


def test_the_good_plugin_is_discovered_and_the_broken_one_reported(installed_plugins: Path) -> None:
    manager = create_plugin_manager()
    infos = {info.name: info for info in manager.plugins()}
    assert infos["hello"].builtin is False
    assert infos["hello"].status == "ok"
    assert infos["hello"].hooks == ["register_commands"]
    assert infos["broken-example"].status == "failed"
    assert "not-installed-anywhere" in infos["broken-example"].error
    ((failure),) = [f for f in manager.failures if f.name == "broken-example"]
    assert failure.stage == "import"
    assert failure.error.startswith("ImportError: ")
    assert not [f for f in manager.failures if f.name == "hello"]
    # the built-ins are unaffected by the broken plugin
    assert infos["pdf"].status == "ok" and infos["screenshot"].status == "ok"


def test_a_third_party_plugin_can_be_disabled(installed_plugins: Path) -> None:
    manager = create_plugin_manager(disable=["hello", "broken-example"])
    names = {info.name: info.status for info in manager.plugins()}
    assert names["hello"] == "disabled" and names["broken-example"] == "disabled"
    assert manager.failures == []


def test_the_plugin_command_runs(installed_plugins: Path, capsys: pytest.CaptureFixture[str], fresh_manager: None) -> None:
    try:
        assert main(["hello", "Ada"]) == 0
        assert capsys.readouterr().out == "Hello, Ada!\n"
    finally:
        cli.commands.pop("hello", None)  # main() added it to the process-wide group: leave no trace


def test_plugins_list_shows_both(installed_plugins: Path, tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(installed_plugins), os.environ.get("PYTHONPATH")])))
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "plugins", "list"], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line and not line[0].isspace()}
    assert re.search(r"third-party\s+ok\s+register_commands", lines["hello"])
    assert re.search(r"third-party\s+failed", lines["broken-example"])
    assert "not-installed-anywhere" in done.stdout
