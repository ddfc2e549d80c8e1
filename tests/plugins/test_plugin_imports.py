"""Plugins broken at import or registration, pip-installed as real packages (issue 22.14), run in real processes.

A plugin that calls sys.exit() or raises KeyboardInterrupt at import, one that sleeps at import, one that exits
while registering its commands, and one that registers `chats` (and `chats list`) over the built-in: none of them
stops a command, `assistant --help` imports none of them, the slow one is named, the user's own Ctrl+C still
stops the command, and the built-in `chats` stays.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.plugins import SLOW_IMPORT_S

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "assistant-{name}"
version = "0.1.0"

[project.entry-points.assistant]
{name} = "assistant_{module}"

[tool.setuptools]
py-modules = ["assistant_{module}"]
"""

MODULES = {
    "slowpoke": '''\
"""Sleeps at import (as a plugin importing a big library at the top would); marks that it was imported."""
import os
import pathlib
import time

import click

from assistant import hookimpl

if os.environ.get("SLOWPOKE_MARKER"):
    pathlib.Path(os.environ["SLOWPOKE_MARKER"]).write_text("imported")
time.sleep(float(os.environ.get("SLOWPOKE_SLEEP", "0")))


@hookimpl
def register_commands(cli):
    @cli.command("slowpoke")
    def slowpoke():
        click.echo("slow hello")
''',
    "exiter": '''\
"""Calls sys.exit at import."""
import sys

sys.exit(3)
''',
    "interrupter": '''\
"""Raises KeyboardInterrupt at import, although nobody pressed Ctrl+C."""
raise KeyboardInterrupt
''',
    "exits-registering": '''\
"""Imports fine, then calls sys.exit while registering its commands."""
import sys

from assistant import hookimpl


@hookimpl
def register_commands(cli):
    sys.exit(4)
''',
    "chats-clash": '''\
"""Registers `chats` over the built-in group, and `list` inside the built-in `chats` group."""
import click

from assistant import hookimpl


@hookimpl
def register_commands(cli):
    original = cli.commands["chats"]

    @original.command("list")
    def hijacked_list():
        click.echo("hijacked chats list")

    @cli.command("chats")
    def chats():
        click.echo("hijacked chats")
''',
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build and pip-install every plugin above into one folder (put on PYTHONPATH for the processes)."""
    root = tmp_path_factory.mktemp("broken-plugins")
    target = root / "site"
    sources = []
    for name, text in MODULES.items():
        module = name.replace("-", "_")
        folder = root / name
        folder.mkdir()
        (folder / "pyproject.toml").write_text(PYPROJECT.format(name=name, module=module), encoding="utf-8")
        (folder / f"assistant_{module}.py").write_text(text, encoding="utf-8")
        sources.append(str(folder))
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
        "--disable-pip-version-check", "--target", str(target), *sources,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=root)
    assert done.returncode == 0, f"pip install failed:\n{done.stdout}\n{done.stderr}"
    return target


@pytest.fixture
def environment(site: Path, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    env["SLOWPOKE_MARKER"] = str(tmp_path / "slowpoke-imported")
    env.pop("ASSISTANT_DISABLE_PLUGINS", None)
    yield env


def assistant(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "assistant", *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=cwd)


def test_help_imports_no_third_party_plugin(environment: dict[str, str], tmp_path: Path) -> None:
    environment["SLOWPOKE_SLEEP"] = "30"  # were it imported, --help would wait half a minute
    done = assistant(environment, tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    assert "Commands:" in done.stdout and "chats" in done.stdout
    assert "Third-party plugins are not loaded for this list" in done.stdout
    assert not Path(environment["SLOWPOKE_MARKER"]).exists()  # never imported
    assert done.stderr == ""  # and none of the broken ones either (nothing to report)
    version = assistant(environment, tmp_path, "--version")
    assert version.returncode == 0 and version.stdout.startswith("assistant, version")
    assert not Path(environment["SLOWPOKE_MARKER"]).exists()


def test_broken_imports_never_stop_a_command_and_the_slow_one_is_named(environment: dict[str, str], tmp_path: Path) -> None:
    environment["SLOWPOKE_SLEEP"] = str(SLOW_IMPORT_S + 0.5)
    done = assistant(environment, tmp_path, "plugins", "list")
    assert done.returncode == 0, done.stderr  # not 3 (sys.exit at import), not 130 (a plugin's KeyboardInterrupt)
    assert Path(environment["SLOWPOKE_MARKER"]).exists()
    assert "warning: plugin slowpoke took " in done.stderr and " s to import" in done.stderr
    assert "ASSISTANT_DISABLE_PLUGINS=slowpoke" in done.stderr
    assert re.search(r"^exiter\s+third-party\s+failed\s*\n\s+error: import: SystemExit: 3$", done.stdout, re.M)
    assert re.search(r"^interrupter\s+third-party\s+failed\s*\n\s+error: import: KeyboardInterrupt$", done.stdout, re.M)
    assert re.search(r"^slowpoke\s+third-party\s+ok\s+register_commands$", done.stdout, re.M)
    assert "clash: command 'chats': assistant's is used, chats-clash's is ignored" in done.stdout
    assert "clash: command 'chats list': assistant's is used, chats-clash's is ignored" in done.stdout


def test_a_plugin_exiting_while_it_registers_is_skipped(environment: dict[str, str], tmp_path: Path) -> None:
    done = assistant(environment, tmp_path, "slowpoke")  # a third-party command still runs
    assert done.returncode == 0, done.stderr
    assert done.stdout == "slow hello\n"
    assert "plugin exits-registering failed in register_commands: SystemExit: 4" in done.stderr


def test_a_plugin_command_named_chats_does_not_replace_the_builtin(environment: dict[str, str], tmp_path: Path) -> None:
    done = assistant(environment, tmp_path, "chats", "list")
    assert done.returncode == 0, done.stderr
    assert "hijacked" not in done.stdout
    listed = assistant(environment, tmp_path, "chats", "--help")
    assert listed.returncode == 0 and "hijacked" not in listed.stdout
    assert "search" in listed.stdout and "export" in listed.stdout  # the built-in group, all its commands


def test_the_users_ctrl_c_during_a_plugin_import_still_stops_the_command(environment: dict[str, str], tmp_path: Path) -> None:
    environment["SLOWPOKE_SLEEP"] = "120"
    marker = Path(environment["SLOWPOKE_MARKER"])
    process = subprocess.Popen([sys.executable, "-m", "assistant", "chats", "list"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=environment, cwd=tmp_path,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal's
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():  # the plugin is being imported (it sleeps right after writing the marker)
            assert process.poll() is None and time.monotonic() < deadline, "the plugin was never imported"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted"
