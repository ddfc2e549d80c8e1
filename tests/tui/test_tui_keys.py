"""Key bindings: the config's [keys] table, the help screen listing every key, themes from the config."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from assistant.tui.app import AssistantApp
from assistant.tui.commands import BUILTIN_COMMANDS, CommandTable
from assistant.tui.config import KEY_SPECS, TuiConfig, key_label, load_tui_config, parse_tui_config
from assistant.tui.screens.help import HelpScreen, commands_table, keys_table
from assistant.paths import user_paths
from tests.tui.tuihelpers import SIZE, async_test, notes, wait_dialog, wait_for


def text_of(renderable) -> str:
    console = Console(width=140, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_the_config_file_overrides_keys_and_reports_mistakes():
    config = parse_tui_config(
        {
            "keys": {"toggle_sidebar": "f9", "regenerate": ["ctrl+g", "f5"], "launch_rockets": "f10", "help": 3},
            "tui": {"theme": "nord", "timings": "yes", "images": "halfcell"},
        }
    )
    assert config.keys == {"toggle_sidebar": "f9", "regenerate": "ctrl+g,f5"}
    assert config.keys_for("toggle_sidebar") == "f9"
    assert config.keys_for("new_chat") == "ctrl+n"
    assert config.theme == "nord" and config.images == "halfcell" and config.timings is True
    problems = " | ".join(config.problems)
    assert "launch_rockets" in problems and "[keys] help" in problems and "timings" in problems


def test_a_broken_config_file_means_defaults_and_one_problem(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[keys\n", encoding="utf-8")
    config = load_tui_config(path)
    assert config.keys == {} and len(config.problems) == 1 and "not valid TOML" in config.problems[0]
    assert load_tui_config(tmp_path / "missing.toml") == TuiConfig()


def test_key_labels_read_like_a_keyboard():
    assert key_label("ctrl+b") == "Ctrl+B"
    assert key_label("escape") == "Esc"
    assert key_label("ctrl+j,shift+enter") == "Ctrl+J / Shift+Enter"
    assert key_label("f2") == "F2"
    assert key_label("d,delete") == "d / Delete"


def test_the_help_lists_every_key_and_every_command():
    config = TuiConfig(keys={"toggle_sidebar": "f9"})
    keys = text_of(keys_table(config))
    for spec in KEY_SPECS:
        assert spec.description in keys
        assert spec.id in keys
    assert "F9" in keys and "Ctrl+B" not in keys
    commands = text_of(commands_table(CommandTable().all()))
    for info in BUILTIN_COMMANDS:
        assert info.signature in commands


def test_every_bound_action_exists():
    app = AssistantApp(config=TuiConfig())
    from assistant.tui.widgets.chatlog import AssistantMessage
    from assistant.tui.widgets.prompt import PromptArea
    from assistant.tui.widgets.sidebar import ChatList

    owners = {"Anywhere": app, "Prompt": PromptArea, "A selected reply": AssistantMessage, "Chat list (sidebar)": ChatList}
    for spec in KEY_SPECS:
        action = spec.action.split("(")[0]
        assert hasattr(owners[spec.scope], f"action_{action}"), spec


@async_test
async def test_user_keys_from_the_config_file_take_effect(make_app):
    config_file = user_paths().ensure().config_file
    config_file.write_text('[keys]\ntoggle_sidebar = "f9"\n\n[tui]\ntheme = "nord"\n', encoding="utf-8")
    app = make_app(autoload=False, config=load_tui_config())
    async with app.run_test(size=SIZE) as pilot:
        assert app.theme == "nord"
        await pilot.press("ctrl+b")
        assert not app.sidebar.display
        await pilot.press("f9")
        assert app.sidebar.display
        await pilot.press("f1")
        await wait_dialog(pilot, "#help-body")
        assert isinstance(app.screen, HelpScreen)
        assert "F9" in text_of(keys_table(app.screen.config))
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


@async_test
async def test_an_unknown_theme_is_a_warning(make_app):
    app = make_app(autoload=False, config=TuiConfig(theme="no-such-theme"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert any("unknown theme 'no-such-theme'" in note for note in notes(app, "warning"))
        app.prompt.insert("/theme gruv")
        await pilot.pause()
        assert [c.label for c in app.query_one("#completions").completions] == ["gruvbox"]
        await pilot.press("tab", "enter")
        await pilot.pause()
        assert app.theme == "gruvbox"


@async_test
async def test_the_help_names_the_plugin_each_command_comes_from(make_app):
    app = make_app(autoload=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.commands.get("train") is not None, "the plugin commands")
        sources = {info.name: info.source for info in app.commands.all()}
        assert sources["train"] == "finetune" and sources["pdf"] == "pdf" and sources["ground"] == "grounding"
        assert "assistant_plugins" not in set(sources.values())
        assert "plugin finetune" in text_of(commands_table(app.commands.all()))


def test_the_default_keys_do_not_clash():
    assert TuiConfig().clashes() == []


def test_a_key_bound_twice_is_reported_once_and_marked_in_the_help():
    config = parse_tui_config({"keys": {"toggle_sidebar": "f2", "copy_reply": "ctrl+n", "rename_chat": "c"}}, "cfg")
    clash_lines = [problem for problem in config.problems if "bound to" in problem]
    assert len(clash_lines) == 2  # F2 (both Anywhere) and Ctrl+N (Anywhere + a selected reply); c is free now
    assert clash_lines[0].startswith("key F2 is bound to toggle_sidebar (Chat list on/off) and rate_up (Rate the reply")
    assert clash_lines[0].endswith("change one in [keys] of cfg")
    assert {clash.key for clash in config.clashes()} == {"f2", "ctrl+n"}
    keys = text_of(keys_table(config))
    assert "⚠ F2 is also rate_up" in keys and "⚠ F2 is also toggle_sidebar" in keys and "⚠ Ctrl+N is also" in keys
    assert parse_tui_config({"keys": {"rename_chat": "c"}}).clashes() == []  # scopes never active together


@async_test
async def test_the_readme_config_example_starts_without_warnings_and_a_clash_warns_once(make_app):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("    [keys]", 1)[1].split("\n\n## ", 1)[0]
    example = "[keys]" + "\n".join(line[4:] for line in block.splitlines())
    config_file = user_paths().ensure().config_file
    config_file.write_text(example, encoding="utf-8")
    assert load_tui_config().problems == []
    config_file.write_text(example.replace('toggle_sidebar = "f9"', 'toggle_sidebar = "f2"'), encoding="utf-8")
    app = make_app(autoload=False, config=load_tui_config())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        warnings = [note for note in notes(app, "warning") if "bound to" in note]
        assert len(warnings) == 1 and warnings[0].startswith("key F2 is bound to toggle_sidebar")
        await pilot.press("f1")
        await wait_dialog(pilot, "#help-body")
        assert "⚠ F2 is also rate_up" in text_of(keys_table(app.screen.config))
