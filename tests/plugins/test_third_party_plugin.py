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
from collections.abc import Callable, Iterator
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
    core = dict(cli.commands)
    chats = dict(cli.commands["chats"].commands)
    assert main(["hello", "Ada"]) == 0
    assert capsys.readouterr().out == "Hello, Ada!\n"
    assert main(["chats", "--help"]) == 0
    assert "import" in capsys.readouterr().out  # the finetune plugin's subcommand of a core group
    # main() ran on its own copy of the command group: the process-wide one is as the core defined it
    assert cli.commands == core and "hello" not in cli.commands
    assert cli.commands["chats"].commands == chats and "import" not in chats


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


# --- plugins broken on purpose (issue 14): installed through the entry-point group, as pip would --------------------

import json  # noqa: E402
import math  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import click  # noqa: E402
from PIL import Image  # noqa: E402

import assistant.plugins as plugins_module  # noqa: E402
from assistant import Assistant, hookimpl  # noqa: E402
from assistant.geometry import Box, Grounding, Point  # noqa: E402
from assistant.guard import PluginError  # noqa: E402
from assistant.hooktypes import GroundingFormat, PageText, Screenshot, Tool, ToolResult, Trainer  # noqa: E402
from assistant.plugin_records import read_failures  # noqa: E402
from tests.helpers import make_image  # noqa: E402


class FakeEntryPoint:
    """An entry point of the `assistant` group whose `load()` returns the plugin object (a module, an instance)."""

    def __init__(self, name: str, plugin: object) -> None:
        self.name, self.value, self._plugin = name, f"tests:{name}", plugin

    def load(self) -> object:
        return self._plugin


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """install(name=plugin, ...): these plugins are what the entry-point group lists (plus nothing else)."""
    found: list[FakeEntryPoint] = []
    monkeypatch.setattr(plugins_module, "entry_points", lambda group: list(found))
    reset_plugin_manager(None)

    def add(**plugins: object) -> None:
        found.extend(FakeEntryPoint(name, plugin) for name, plugin in plugins.items())
        reset_plugin_manager(None)

    yield add
    reset_plugin_manager(None)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _format(name: str, parse: Callable[..., object], override: bool = False) -> GroundingFormat:
    return GroundingFormat(name=name, description="test format", parse=parse, override=override)


class ExplodingParser:
    """A grounding format that takes over json1000 (the tiny profile's format) and raises."""

    @hookimpl
    def register_grounding_formats(self, register):
        def parse(text, image_size, input_size=None):
            raise ValueError("parser exploded")

        register(_format("json1000", parse, override=True))


def test_a_raising_parser_never_loses_the_reply_api(install, tmp_path: Path) -> None:
    """Issue 13.6: the reply is kept (status ok, not `streaming`), the footer names the plugin."""
    install(bad=ExplodingParser())
    bot = Assistant.from_profile("tiny-smolvlm")
    chat = bot.chat()
    reply = chat.ask("Where is the square?", images=[make_image(tmp_path / "a.png")], max_new_tokens=3)
    assert reply.status == "ok" and reply.grounding is not None and not reply.grounding.shapes
    assert "plugin bad failed in grounding format json1000: ValueError: parser exploded" in reply.footer()
    assert "ASSISTANT_DISABLE_PLUGINS=bad" in reply.footer()
    stored = bot.store.get_conversation(chat.id).messages[-1]
    assert stored.status == "ok" and stored.text == reply.text
    ((record),) = read_failures()
    assert (record.plugin, record.stage, record.count) == ("bad", "grounding format json1000", 1)


def test_a_raising_parser_in_ask_prints_the_reply_and_exits_0(install, capsys, tmp_path: Path) -> None:
    install(bad=ExplodingParser())
    code, out, err = run_cli(capsys, "ask", "-p", "tiny-smolvlm", "--max-tokens", "3", "-i",
                             str(make_image(tmp_path / "a.png")), "Where is it?")
    assert code == 0, err
    assert "internal error" not in err
    assert "plugin bad failed in grounding format json1000" in err


@pytest.mark.parametrize(
    ("returned", "problem"),
    [
        (None, "returned None, not a Grounding"),
        ({"shapes": []}, "returned dict, not a Grounding"),
        ([Box(1, 1, 2, 2)], "returned list, not a Grounding"),
        (Grounding("x", shapes=["box"]), "shape 1 is str, not a Box, Point or Polygon"),
        (Grounding("x", shapes=[Box(math.nan, 1, 2, 2)]), "shape 1 has x = nan, not a finite number"),
        (Grounding("x", shapes=[Point(math.inf, 1)]), "shape 1 has x = inf, not a finite number"),
        (Grounding("x", shapes=[Point("10", 1)]), "shape 1 has x = '10', not a finite number"),
        (Grounding("x", shapes=[Box(50, 10, 20, 30)]), "shape 1 is inverted"),
        (Grounding("x", shapes=[Box(-5, 10, 20, 30)]), "shape 1 has x = -5 outside the image"),
        (Grounding("x", shapes=[Point(10, 500)]), "shape 1 has y = 500 outside the image (0 to 240 pixels)"),
    ],
)
def test_invalid_parser_results_are_refused_naming_the_plugin(install, capsys, monkeypatch, returned, problem) -> None:
    class Returns:
        @hookimpl
        def register_grounding_formats(self, register):
            register(_format("weird", lambda text, image_size, input_size=None: returned))

    install(bad=Returns())
    monkeypatch.setattr("sys.stdin", SimpleNamespace(read=lambda: "[1, 2, 3, 4]"))
    code, out, err = run_cli(capsys, "ground", "--format", "weird", "--image-size", "320x240")
    assert code == 0, err
    data = json.loads(out)  # valid JSON: no NaN
    assert data["format"] == "generic" and len(data["shapes"]) == 1  # the fallback parser still answers
    assert problem in data["raw"]["error"] and "plugin bad" in data["raw"]["error"]
    assert f"warning: plugin bad failed in grounding format weird: the parser {problem}"[:60] in err or problem in err


def test_a_tool_that_raises_or_returns_junk_is_an_error_result_naming_the_plugin(install) -> None:
    from assistant.agent import available_tools, run_tool

    class Tools:
        @hookimpl
        def register_tools(self, register):
            register(Tool("explode", "raises", {"type": "object"}, run=lambda: 1 / 0))
            register(Tool("junk", "returns a str", {"type": "object"}, run=lambda: "not a result"))
            register(Tool("pixels", "bad image", {"type": "object"}, run=lambda: ToolResult(images=["x.png"])))

    install(bad=Tools())
    tools = available_tools(plugins_module.get_plugin_manager())
    assert tools["explode"].plugin == "bad" and tools["screenshot"].plugin == "tools"
    for name, problem in [("explode", "ZeroDivisionError: division by zero"),
                          ("junk", "the tool returned str, not a ToolResult"),
                          ("pixels", "ToolResult.images[0] is str, not a PIL image")]:
        result, _seconds = run_tool(tools[name], {})
        assert result.is_error
        assert f"plugin bad failed in tool {name}: {problem}" in result.text


def test_a_plugin_cli_command_and_trainer_that_raise_name_the_plugin(install, capsys) -> None:
    class Commands:
        @hookimpl
        def register_commands(self, cli):
            @cli.command("explode")
            def explode():
                raise RuntimeError("command exploded")

        @hookimpl
        def register_trainers(self, register):
            def train(config, progress=None, **options):
                raise RuntimeError("trainer exploded")

            register(Trainer("boom", "raises", train))

    install(bad=Commands())
    code, _out, err = run_cli(capsys, "explode")
    assert code == 1
    assert err.strip().splitlines() == [
        "error: plugin bad failed in command `explode`: RuntimeError: command exploded; "
        'disable it with ASSISTANT_DISABLE_PLUGINS=bad or [plugins] disable = ["bad"] in the profile'
    ]
    code, _out, err = run_cli(capsys, "train", "--name", "x", "--trainer", "boom")
    assert code == 1, err
    assert "plugin bad failed in trainer boom: RuntimeError: trainer exploded" in err
    assert "internal error" not in err


class ShotAndPages:
    """A screenshot provider and a document provider (for .notes files and PDFs) that raise."""

    @hookimpl
    def capture_screenshot(self, request):
        raise RuntimeError("compositor said no")

    @hookimpl
    def page_text(self, request):
        raise RuntimeError("cannot read pages")

    @hookimpl
    def render_page(self, request):
        raise RuntimeError("cannot render pages")


def test_a_failing_screenshot_provider_is_named_not_the_missing_display(install, capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    install(bad=ShotAndPages())
    code, _out, err = run_cli(capsys, "screenshot", "-o", str(tmp_path / "s.png"))
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("error: plugin bad failed in capture_screenshot: RuntimeError: compositor said no; disable")
    assert "the built-in screenshot could not help either: no display" in line


def test_a_failing_document_provider_is_named(install, capsys, tmp_path) -> None:
    from assistant.documents import prepare_document

    install(bad=ShotAndPages())
    notes = tmp_path / "a.notes"
    notes.write_text("hello", encoding="utf-8")
    with pytest.raises(PluginError, match="plugin bad failed in page_text: RuntimeError: cannot read pages"):
        prepare_document(plugins_module.get_plugin_manager(), notes, "what?", None)
    # a PDF: the built-in reads it after the plugin failed, and the user is told which plugin was skipped
    import pymupdf

    document = pymupdf.open()
    for text in ("one", "two", "three"):
        document.new_page(width=200, height=100).insert_text((20, 40), text)
    document.save(tmp_path / "three.pdf")
    code, out, err = run_cli(capsys, "pdf", "text", str(tmp_path / "three.pdf"), "--page", "2")
    assert code == 0, err
    assert "two" in out
    assert "warning: plugin bad failed in page_text: RuntimeError: cannot read pages" in err


def test_run_time_failures_are_listed_and_cleared(install, capsys, monkeypatch) -> None:
    """Issue 14.3: a failure in another process shows in `plugins list` with a count, until --clear."""
    install(bad=ExplodingParser())
    monkeypatch.setattr("sys.stdin", SimpleNamespace(read=lambda: "[1, 2, 3, 4]"))
    for _ in range(2):
        code, _out, _err = run_cli(capsys, "ground", "--format", "json1000", "--image-size", "10x10")
        reset_plugin_manager(None)  # each command as its own process: only the data dir remembers
    code, out, err = run_cli(capsys, "plugins", "list")
    assert code == 0, err
    lines = out.splitlines()
    (row,) = [line for line in lines if line.startswith("bad ")]
    assert re.search(r"third-party\s+failing\s+register_grounding_formats", row)
    assert re.search(r"^\s+failed at run time: grounding format json1000: ValueError: parser exploded "
                     r"\(2 times, last \d{4}-\d\d-\d\d \d\d:\d\d\)$", out, re.M)
    assert re.search(r"^\s+clash: grounding format 'json1000': replaces the one of grounding \(override=True\)$", out, re.M)
    code, out, err = run_cli(capsys, "plugins", "list", "--clear")
    assert code == 0 and "cleared 1 recorded run-time failure" in err
    assert "failed at run time" not in out
    assert re.search(r"^bad\s+third-party\s+ok\b", out, re.M)


class Everywhere:
    """A plugin present on every surface: a command, a tool, a grounding format, a trainer."""

    @hookimpl
    def register_commands(self, cli):
        @cli.command("wave")
        def wave():
            click.echo("waving")

    @hookimpl
    def register_tools(self, register):
        register(Tool("shout", "shouts", {"type": "object"}, run=lambda: ToolResult("HI")))

    @hookimpl
    def register_grounding_formats(self, register):
        register(_format("boxes", lambda text, image_size, input_size=None: Grounding("boxes")))

    @hookimpl
    def register_trainers(self, register):
        register(Trainer("quick", "trains nothing", lambda config, progress=None, **options: None))


def test_a_profile_disable_list_reaches_every_surface(install, capsys, assistant_home: Path) -> None:
    """Issue 14.5: `[plugins] disable` in the profile used is obeyed by plugins list, tools list, ground, train and
    the plugin's own command, not only by ask and the TUI."""
    install(bad=Everywhere())
    profiles = assistant_home / "config" / "profiles"
    profiles.mkdir(parents=True)
    shipped = Path(__file__).resolve().parents[2] / "profiles" / "tiny-smolvlm.toml"
    (profiles / "nobad.toml").write_text(shipped.read_text(encoding="utf-8") + '\n[plugins]\ndisable = ["bad"]\n',
                                         encoding="utf-8")
    # without the profile, the plugin is everywhere
    assert run_cli(capsys, "wave")[1] == "waving\n"
    assert "shout  [" in run_cli(capsys, "tools", "list")[1]
    assert re.search(r"^boxes\s", run_cli(capsys, "ground", "--list-formats")[1], re.M)
    # with it, nowhere
    code, out, err = run_cli(capsys, "-p", "nobad", "plugins", "list")
    assert code == 0, err
    assert re.search(r"^bad\s+third-party\s+disabled\s*$", out, re.M)
    assert "disabled by profile nobad [plugins] disable" in out
    assert run_cli(capsys, "-p", "nobad", "wave")[0] == 2  # no such command
    assert "shout" not in run_cli(capsys, "-p", "nobad", "tools", "list")[1]
    assert not re.search(r"^boxes\s", run_cli(capsys, "-p", "nobad", "ground", "--list-formats")[1], re.M)
    code, _out, err = run_cli(capsys, "train", "-p", "nobad", "--name", "x", "--trainer", "quick")
    assert code == 2 and "unknown trainer 'quick'" in err


@pytest.mark.parametrize("override", [False, True])
def test_a_plugin_command_named_like_a_builtin_one(install, capsys, monkeypatch, override: bool) -> None:
    """Issue 14.4: `ask` (core) and `ground` (built-in plugin) stay unless the plugin's command says override."""

    class Shadow:
        @hookimpl
        def register_commands(self, cli):
            @cli.command("ask")
            @click.argument("question")
            def ask(question):
                click.echo("shadowed ask")

            @cli.command("ground")
            def ground():
                click.echo("shadowed ground")

            ask.override = ground.override = override

    install(bad=Shadow())
    code, out, err = run_cli(capsys, "ground")
    assert (code, out) == (0, "shadowed ground\n") if override else code == 2 and "Give --format NAME" in err
    code, out, err = run_cli(capsys, "plugins", "list")
    if override:
        assert "clash: command 'ask': replaces the one of assistant (override=True)" in out
        assert "clash: command 'ground': replaces the one of grounding (override=True)" in out
    else:
        assert "clash: command 'ask': assistant's is used, bad's is ignored (declare override=True to replace it)" in out
        assert "clash: command 'ground': grounding's is used, bad's is ignored" in out
    monkeypatch.setattr(plugins_module, "entry_points", lambda group: [])  # uninstalled:
    reset_plugin_manager(None)
    assert "qwen2vl" in run_cli(capsys, "ground", "--list-formats")[1]  # the built-in commands are back
    assert "Where is" in run_cli(capsys, "ask", "--help")[1] or "Ask a question" in run_cli(capsys, "ask", "--help")[1]


# --- the kit: assistant.testing and `assistant plugins new` -----------------------------------------------------------

def test_plugins_new_makes_a_package_that_installs_and_passes_its_own_test(tmp_path: Path, capsys) -> None:
    code, out, err = run_cli(capsys, "plugins", "new", "demo-notes", "--directory", str(tmp_path))
    assert code == 0, err
    package = tmp_path / "assistant-demo-notes"
    assert out.startswith(f"created {package}")
    target = tmp_path / "site"
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
               "--disable-pip-version-check", "--target", str(target), str(package)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "demo-notes = assistant_demo_notes" in next(target.glob("*.dist-info/entry_points.txt")).read_text()
    env = dict(os.environ, PYTHONPATH=str(target))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(package / "tests")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
    # a name that is taken, or not a name, is one line
    assert run_cli(capsys, "plugins", "new", "ask", "-d", str(tmp_path))[2].startswith("error: `assistant ask` already exists")
    assert "is not a plugin name" in run_cli(capsys, "plugins", "new", "Bad_Name", "-d", str(tmp_path))[2]


def test_the_testing_kit_scripts_replies_and_loads_plugins(tmp_path: Path) -> None:
    from assistant.testing import installed, plugin_manager, run_cli as kit_run_cli, scripted_assistant, temporary_home

    seen: list[str] = []

    class Observer:
        @hookimpl
        def reply_finished(self, chat, reply):
            seen.append(reply.text)

    with temporary_home(tmp_path / "kit-home") as home:
        assert os.environ["ASSISTANT_HOME"] == str(home)
        bot, backend = scripted_assistant(["a scripted answer", "second"], observer=Observer())
        reply = bot.chat().ask("what is this?")
        assert (reply.text, reply.status, seen) == ("a scripted answer", "ok", ["a scripted answer"])
        assert backend.prompts[0][-1].text == "what is this?"
        assert "observer" in {info.name for info in plugin_manager(observer=Observer()).plugins()}
        with installed(bad=ExplodingParser()):
            result = kit_run_cli("ground", "--format", "json1000", "--image-size", "10x10", input="[1,2,3,4]")
        assert result.exit_code == 0 and "plugin bad failed in grounding format json1000" in result.stderr
        listed = kit_run_cli("plugins", "list").stdout
        assert not re.search(r"^bad\s+third-party", listed, re.M)  # uninstalled again (its failure stays recorded)
        assert re.search(r"^bad\s+\?\s+not loaded", listed, re.M)
    assert os.environ["ASSISTANT_HOME"] != str(home)


def test_in_the_tui_a_raising_parser_keeps_the_reply_and_names_the_plugin(tmp_path: Path) -> None:
    """Issue 14.2: in the TUI every reply of a chat with an image showed `generation failed`."""
    import asyncio

    from assistant.testing import plugin_manager
    from assistant.tui.app import AssistantApp
    from assistant.tui.config import TuiConfig
    from tests.tui.tuihelpers import type_and_send, wait_ready, wait_reply

    image = make_image(tmp_path / "ui.png")
    shown: list[str] = []

    async def scenario() -> None:
        app = AssistantApp("tiny-smolvlm", config=TuiConfig(), plugins=plugin_manager(bad=ExplodingParser()),
                           max_new_tokens=3, image_renderer="halfcell")
        original = app.notify
        app.notify = lambda message, **options: (shown.append(message), original(message, **options))[1]
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_ready(pilot)
            await type_and_send(pilot, f"/image {image}")
            await type_and_send(pilot, "Where is the square?")
            await wait_reply(pilot)
            reply = app.chat.messages[-1]
            assert reply.status == "ok", reply.meta.error
            assert any("plugin bad failed in grounding format json1000" in note for note in reply.meta.extra["notes"])

    asyncio.run(scenario())
    assert any(note.startswith("warning: plugin bad failed in grounding format json1000") for note in shown), shown
    assert not any("generation failed" in note for note in shown)


def test_ask_pdf_names_a_failing_document_plugin_it_skipped(install, capsys, tmp_path: Path) -> None:
    """Issue 14.2: `ask --pdf` said "all 3 pages" as if nothing had failed; now it names the skipped plugin."""
    import pymupdf

    install(bad=ShotAndPages())
    document = pymupdf.open()
    for text in ("alpha", "beta", "gamma"):
        document.new_page(width=200, height=100).insert_text((20, 40), text)
    document.save(tmp_path / "three.pdf")
    code, _out, err = run_cli(capsys, "ask", "-p", "tiny-smolvlm", "--max-tokens", "2", "--pdf",
                              str(tmp_path / "three.pdf"), "What is on page 2?")
    assert code == 0, err
    assert "warning: plugin bad failed in render_page: RuntimeError: cannot render pages" in err
    assert "three.pdf: all 3 pages" in err  # true: the built-in rendered them after the plugin was skipped
