"""The plugin manager: built-ins load, a test plugin registers and unregisters, broken plugins are isolated."""

from __future__ import annotations

import pluggy
import pytest

from assistant import AssistantError, hookimpl
from assistant.hooktypes import ScreenshotRequest, SlashCommand
from assistant.guard import PluginError
from assistant.plugins import DEFAULT_PLUGINS, create_plugin_manager


def test_builtins_are_registered_and_hooks_validated():
    manager = create_plugin_manager(load_entry_points=False)
    names = {info.name for info in manager.plugins()}
    assert {"screenshot", "pdf", "grounding", "finetune", "tools"} <= names
    assert len(DEFAULT_PLUGINS) == 5
    assert manager.failures == []


def test_disable_by_env_and_by_profile(monkeypatch):
    monkeypatch.setenv("ASSISTANT_DISABLE_PLUGINS", "pdf, tools")
    manager = create_plugin_manager(disable=["screenshot"], load_entry_points=False)
    statuses = {info.name: info.status for info in manager.plugins()}
    assert statuses["pdf"] == statuses["tools"] == statuses["screenshot"] == "disabled"
    assert statuses["grounding"] == "ok"


class Greeter:
    @hookimpl
    def register_slash_commands(self, register):
        register(SlashCommand(name="hello", help="say hello", run=lambda context, argument: "hi"))


class Broken:
    @hookimpl
    def register_slash_commands(self, register):
        raise RuntimeError("boom")

    @hookimpl
    def capture_screenshot(self, request):
        raise RuntimeError("no screen here")

    @hookimpl
    def reply_finished(self, chat, reply):
        raise ValueError("observer bug")


def test_register_and_unregister_a_plugin():
    manager = create_plugin_manager(load_entry_points=False)
    manager.register(Greeter(), name="greeter")
    assert "hello" in {command.name for command in manager.collect("register_slash_commands")}
    manager.unregister("greeter")
    assert "hello" not in {command.name for command in manager.collect("register_slash_commands")}


def test_broken_third_party_plugin_is_isolated():
    manager = create_plugin_manager(builtins=(), load_entry_points=False)
    manager.register(Greeter(), name="greeter")
    manager.register(Broken(), name="broken")
    commands = manager.collect("register_slash_commands")
    assert [command.name for command in commands] == ["hello"]
    # nobody else captures: the failure names the plugin instead of looking like "no screenshot plugin"
    with pytest.raises(PluginError, match=r"plugin broken failed in capture_screenshot: RuntimeError: no screen here; "
                                          r"disable it with ASSISTANT_DISABLE_PLUGINS=broken"):
        manager.call_first("capture_screenshot", request=ScreenshotRequest())
    manager.notify("reply_finished", chat=None, reply=None)
    failed = {info.name: info for info in manager.plugins()}["broken"]
    assert failed.status == "failing"  # loaded, but failing when called
    assert "boom" in failed.error
    stages = [failure.stage for failure in manager.failures]
    assert stages == ["register_slash_commands", "capture_screenshot", "reply_finished"]


def test_assistant_error_from_a_plugin_reaches_the_user():
    class NoDisplay:
        @hookimpl
        def capture_screenshot(self, request):
            raise AssistantError("no display")

    manager = create_plugin_manager(builtins=(), load_entry_points=False)
    manager.register(NoDisplay(), name="nodisplay")
    with pytest.raises(AssistantError, match="no display"):
        manager.call_first("capture_screenshot", request=ScreenshotRequest())


def test_misspelt_hook_fails_loudly():
    class Misspelt:
        @hookimpl
        def register_comands(self, cli):
            pass

    manager = create_plugin_manager(builtins=(), load_entry_points=False)
    with pytest.raises(pluggy.PluginValidationError):
        manager.register(Misspelt(), name="misspelt")


def test_several_misspelt_third_party_plugins_are_all_isolated(monkeypatch):
    """check_pending reports one offender at a time: every one must be unregistered, the rest keep working."""
    import assistant.plugins as plugins_module

    class Typo1:
        @hookimpl
        def register_comands(self, cli):
            pass

    class Typo2:
        @hookimpl
        def capture_screenshots(self, request):
            pass

    class EntryPoint:
        def __init__(self, name, plugin):
            self.name, self._plugin = name, plugin

        def load(self):
            return self._plugin

    found = [EntryPoint("typo1", Typo1()), EntryPoint("typo2", Typo2()), EntryPoint("greeter", Greeter())]
    monkeypatch.setattr(plugins_module, "entry_points", lambda group: found)
    manager = create_plugin_manager(builtins=())
    assert sorted(failure.name for failure in manager.failures) == ["typo1", "typo2"]
    assert [command.name for command in manager.collect("register_slash_commands")] == ["hello"]
