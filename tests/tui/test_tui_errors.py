"""Errors never kill the TUI: a model that cannot load, an unknown profile, plugin /commands that raise."""

from __future__ import annotations

from PIL import Image

from assistant import hookimpl
from assistant.errors import AssistantError
from assistant.hooktypes import SlashCommand
from assistant.tui.screens.dialogs import ErrorDialog
from tests.tui.tuihelpers import SIZE, async_test, wait_dialog, notes, type_and_send, wait_for, wait_ready, wait_reply


def dialog_text(dialog: ErrorDialog) -> str:
    return " ".join(str(widget.render()) for widget in dialog.query(".dialog-title, .error-cause, .error-fix"))


@async_test
async def test_a_model_that_cannot_load_shows_a_dialog_with_cause_and_fix(make_app, tmp_path):
    profile = tmp_path / "missing-model.toml"
    profile.write_text(f'[model]\nid = "{tmp_path / "no-such-model"}"\ndevice = "cpu"\n', encoding="utf-8")
    app = make_app(profile)
    async with app.run_test(size=SIZE) as pilot:
        await wait_dialog(pilot, ".error-cause")
        text = dialog_text(app.screen)
        assert "The model could not be loaded" in text
        assert "no-such-model" in text
        assert "What to do:" in text
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, ErrorDialog)
        assert app.load_state == "failed"
        assert "model not loaded" in str(app.query_one("#status-text").render())
        await type_and_send(pilot, "hello?")
        assert any("no model is loaded" in note for note in notes(app, "error"))
        assert app.prompt.text == "hello?"  # kept for after the fix
        assert app.is_running


@async_test
async def test_an_unknown_profile_shows_a_dialog_and_another_profile_can_be_chosen(make_app, store):
    app = make_app("no-such-profile")
    async with app.run_test(size=SIZE) as pilot:
        await wait_dialog(pilot, ".error-cause")
        assert "unknown profile 'no-such-profile'" in dialog_text(app.screen)
        await pilot.press("escape")
        await pilot.pause()
        await type_and_send(pilot, "/profile tiny-smolvlm")
        await wait_ready(pilot)
        await type_and_send(pilot, "now it works")
        await wait_reply(pilot)
        assert store.get_conversation(app.chat.id).messages[-1].status == "ok"
        await type_and_send(pilot, "/profile nope")
        assert any("unknown profile 'nope'" in note for note in notes(app, "error"))
        assert app.assistant.profile.name == "tiny-smolvlm"


class ExamplePlugin:
    """A third-party plugin with /commands: one raises, one attaches an image, one works in the background."""

    def __init__(self) -> None:
        self.background_results: list[str] = []

    @hookimpl
    def register_slash_commands(self, register):
        register(SlashCommand("explode", "Always fails", self.explode))
        register(SlashCommand("refuse", "Fails the way users can fix", self.refuse))
        register(SlashCommand("swatch", "Attach a colour swatch", self.swatch))
        register(SlashCommand("later", "Work off the UI thread", self.later))

    def explode(self, context, argument):
        raise ZeroDivisionError("division by zero in the plugin")

    def refuse(self, context, argument):
        raise AssistantError("the swatch printer is offline; plug it in")

    def swatch(self, context, argument):
        context.attach_image(Image.new("RGB", (30, 20), argument or "red"), f"swatch {argument or 'red'}")
        context.attach_text("some notes", "notes.txt")
        context.notify("swatch attached")

    def later(self, context, argument):
        def work():
            context.notify("working on it")  # from the worker thread, as progress reports do
            return argument.upper()

        context.run_in_background(work, self.background_results.append)


@async_test
async def test_plugin_commands_run_and_a_raising_one_is_a_notification(make_app):
    plugin = ExamplePlugin()
    app = make_app(autoload=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.plugins is not None, "the plugins")
        app.plugins.register(plugin, name="example")
        app.reload_commands()
        assert app.commands.get("explode").plugin is not None
        await type_and_send(pilot, "/explode")
        errors = notes(app, "error")
        assert any("/explode" in note and "ZeroDivisionError" in note for note in errors), errors
        await type_and_send(pilot, "/refuse")
        assert "the swatch printer is offline; plug it in" in notes(app, "error")
        await type_and_send(pilot, "/swatch blue")
        assert app.chips.labels == ["[Image #1 swatch blue 30x20]", "[Text #1 notes.txt 10 chars]"]
        assert "swatch attached" in notes(app)
        await type_and_send(pilot, "/later hello")
        await wait_for(pilot, lambda: plugin.background_results, "the background work")
        assert plugin.background_results == ["HELLO"]
        assert "working on it" in notes(app)
        assert app.is_running
        app.prompt.insert("/expl")
        await pilot.pause()
        assert [c.label for c in app.query_one("#completions").completions] == ["/explode [ARGS]"]


@async_test
async def test_plugin_commands_are_in_the_palette_and_the_palette_runs_them(make_app):
    plugin = ExamplePlugin()
    app = make_app(autoload=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.plugins is not None, "the plugins")
        app.plugins.register(plugin, name="example")
        app.reload_commands()
        titles = [entry.title for entry in app.palette_entries()]
        assert "/explode" in titles and "Regenerate the last reply" in titles and "New chat" in titles
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"explode")
        await pilot.pause(0.3)
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: notes(app, "error"), "the plugin's failure")
        assert any("ZeroDivisionError" in note for note in notes(app, "error"))
        assert app.is_running


@async_test
async def test_an_untested_dependency_version_is_a_notice_at_start(make_app, monkeypatch):
    """The CLI prints it on stderr; under the TUI stderr is hidden, so it is a warning notice (and the app runs)."""
    from assistant import stack

    real = stack.installed_version
    monkeypatch.setattr(stack, "installed_version", lambda name: "0.30.0" if name == "peft" else real(name))
    app = make_app(autoload=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: any("peft" in note for note in notes(app, "warning")), "the notice")
        [line] = [note for note in notes(app, "warning") if "peft" in note]
        [problem] = [problem for problem in stack.stack_problems() if problem.startswith("peft 0.30.0 is outside")]
        assert line == f"{problem} (see `assistant doctor`)"
        assert app.is_running and app.load_state == "idle"

