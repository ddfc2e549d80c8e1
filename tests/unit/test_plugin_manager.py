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
    assert len(DEFAULT_PLUGINS) >= 5
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


# --- loading: clear messages (issue 14.6) ----------------------------------------------------------------------------

class EntryPoint:
    def __init__(self, name, plugin):
        self.name, self.value, self._plugin = name, f"tests:{name}", plugin

    def load(self):
        return self._plugin


def _with_entry_points(monkeypatch, **plugins):
    import assistant.plugins as plugins_module

    found = [EntryPoint(name, plugin) for name, plugin in plugins.items()]
    monkeypatch.setattr(plugins_module, "entry_points", lambda group: found)
    return create_plugin_manager(builtins=())


def _failure(manager, name):
    ((failure),) = [f for f in manager.failures if f.name == name]
    return failure


def test_a_misspelt_hook_says_did_you_mean(monkeypatch):
    class Typo:
        @hookimpl
        def register_comands(self, cli):
            pass

    manager = _with_entry_points(monkeypatch, typo=Typo())
    failure = _failure(manager, "typo")
    assert failure.stage == "register"
    assert "unknown hook register_comands (did you mean register_commands?)" in failure.error
    with pytest.raises(pluggy.PluginValidationError, match=r"did you mean register_commands\?"):
        create_plugin_manager(builtins=(), load_entry_points=False).register(Typo(), name="typo")


def test_a_wrong_argument_name_is_a_register_failure_in_one_line(monkeypatch):
    class WrongArgument:
        @hookimpl
        def capture_screenshot(self, req):
            return None

    manager = _with_entry_points(monkeypatch, wrong=WrongArgument())
    failure = _failure(manager, "wrong")
    assert failure.stage == "register"  # not "import": the module imported fine
    assert "\n" not in failure.error
    assert "capture_screenshot takes: request" in failure.error
    info = {info.name: info for info in manager.plugins()}["wrong"]
    assert info.status == "failed" and "\n" not in info.error


def test_an_entry_point_naming_a_class_is_instantiated_or_refused_clearly(monkeypatch):
    class Provider:
        @hookimpl
        def page_text(self, request):
            return None

    class NeedsArguments:
        def __init__(self, config):
            self.config = config

        @hookimpl
        def page_text(self, request):
            return None

    manager = _with_entry_points(monkeypatch, provider=Provider, needy=NeedsArguments)
    infos = {info.name: info for info in manager.plugins()}
    assert infos["provider"].status == "ok" and infos["provider"].hooks == ["page_text"]
    failure = _failure(manager, "needy")
    assert failure.stage == "register"
    assert "names the class NeedsArguments, which cannot be created without arguments" in failure.error
    assert "point the entry point at a module or at an instance" in failure.error


@pytest.mark.parametrize("marker", [{"wrapper": True}, {"hookwrapper": True}])
def test_wrapper_hooks_are_refused_at_registration(monkeypatch, marker):
    class Wrapper:
        @hookimpl(**marker)
        def capture_screenshot(self, request):
            yield

    manager = _with_entry_points(monkeypatch, wrapping=Wrapper())
    failure = _failure(manager, "wrapping")
    assert failure.stage == "register"
    assert "hook capture_screenshot is a wrapper (wrapper=True or hookwrapper=True)" in failure.error
    assert manager.pm.get_plugin("wrapping") is None
    with pytest.raises(AssistantError, match="is a wrapper"):
        create_plugin_manager(builtins=(), load_entry_points=False).register(Wrapper(), name="wrapping")


def test_a_registration_of_the_wrong_type_is_skipped_and_named():
    class Junk:
        @hookimpl
        def register_tools(self, register):
            register({"name": "shout"})

    manager = create_plugin_manager(load_entry_points=False)
    manager.register(Junk(), name="junk")
    assert "shout" not in {tool.name for tool in manager.collect("register_tools")}
    assert _failure(manager, "junk").error == "registered dict, not a Tool"


# --- name clashes: one policy (issue 14.4) ----------------------------------------------------------------------------

def _noop(*args, **kwargs):
    return None


class Clasher:
    """Takes names the built-ins use: the tool `screenshot`, the format `json1000`, the trainer `lora`, /pdf, /quit."""

    def __init__(self, override=False):
        self.override = override

    @hookimpl
    def register_tools(self, register):
        from assistant.hooktypes import Tool

        register(Tool("screenshot", "mine", {"type": "object"}, _noop, override=self.override))

    @hookimpl
    def register_grounding_formats(self, register):
        from assistant.hooktypes import GroundingFormat

        register(GroundingFormat("json1000", "mine", _noop, override=self.override))

    @hookimpl
    def register_trainers(self, register):
        from assistant.hooktypes import Trainer

        register(Trainer("lora", "mine", _noop, override=self.override))

    @hookimpl
    def register_slash_commands(self, register):
        register(SlashCommand("pdf", "mine", _noop, override=self.override))
        register(SlashCommand("quit", "mine", _noop, override=self.override))


HOOK_KINDS = {"register_tools": "screenshot", "register_grounding_formats": "json1000",
              "register_trainers": "lora", "register_slash_commands": "pdf"}


def test_builtins_win_a_clash_unless_the_plugin_overrides():
    manager = create_plugin_manager(load_entry_points=False)
    manager.register(Clasher(), name="clasher")
    for hook, name in HOOK_KINDS.items():
        (winner,) = [item for item in manager.collect(hook) if item.name == name]
        assert winner.plugin != "clasher", hook
        assert winner.description if hasattr(winner, "description") else winner.help != "mine"
    slash = manager.collect("register_slash_commands")
    assert "quit" not in {command.name for command in slash}  # the TUI's own /quit stays
    described = {clash.describe() for clash in manager.clashes}
    assert "tool 'screenshot': tools's is used, clasher's is ignored (declare override=True to replace it)" in described
    assert "slash command /quit: assistant's is used, clasher's is ignored (declare override=True to replace it)" in described
    assert {clash.kind for clash in manager.clashes} == {"tool", "grounding format", "trainer", "slash command"}
    info = {info.name: info for info in manager.plugins()}["clasher"]
    assert len(info.clashes) == 5


def test_an_override_replaces_the_builtin_and_is_reported():
    manager = create_plugin_manager(load_entry_points=False)
    manager.register(Clasher(override=True), name="clasher")
    for hook, name in HOOK_KINDS.items():
        (winner,) = [item for item in manager.collect(hook) if item.name == name]
        assert winner.plugin == "clasher", hook
    assert "quit" in {command.name for command in manager.collect("register_slash_commands")}
    assert all(clash.override and clash.kept == "clasher" for clash in manager.clashes)


def test_between_two_third_party_plugins_the_first_registered_wins():
    manager = create_plugin_manager(builtins=(), load_entry_points=False)
    manager.register(Greeter(), name="first")
    manager.register(Greeter(), name="second")
    (command,) = manager.collect("register_slash_commands")
    assert command.plugin == "first"
    ((clash),) = manager.clashes
    assert (clash.kept, clash.dropped) == ("first", "second")


def test_registrations_record_their_plugin_whatever_it_wrote():
    class Liar:
        @hookimpl
        def register_slash_commands(self, register):
            register(SlashCommand("hi", "hi", _noop, plugin="grounding"))

    manager = create_plugin_manager(builtins=(), load_entry_points=False)
    manager.register(Liar(), name="liar")
    (command,) = manager.collect("register_slash_commands")
    assert command.plugin == "liar"


# --- disable lists (issue 14.5) ---------------------------------------------------------------------------------------

def test_a_misspelt_disable_name_is_a_one_line_warning_with_did_you_mean(monkeypatch):
    from assistant.guard import add_notice_listener, reset_notices

    reset_notices()
    lines = []
    remove = add_notice_listener(lines.append)
    try:
        monkeypatch.setenv("ASSISTANT_DISABLE_PLUGINS", "screenshots")
        manager = create_plugin_manager(disable=["grounding-formats"], load_entry_points=False)
    finally:
        remove()
    assert sorted(lines) == sorted(manager.warnings)
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    assert any("ASSISTANT_DISABLE_PLUGINS names 'screenshots', which is not an installed plugin (did you mean "
               "screenshot?)" in line for line in lines)
    assert any("the profile's [plugins] disable names 'grounding-formats'" in line and "did you mean grounding?" in line
               for line in lines)


def test_a_disabled_builtin_is_still_a_builtin():
    manager = create_plugin_manager(disable=["pdf"], load_entry_points=False)
    info = {info.name: info for info in manager.plugins()}["pdf"]
    assert (info.status, info.builtin) == ("disabled", True)
    assert info.disabled_by == "the profile's [plugins] disable"


# --- what plugins hand back runs through the guard -------------------------------------------------------------------

def test_a_slash_command_that_raises_names_its_plugin():
    from assistant.guard import PluginError

    class Loud:
        @hookimpl
        def register_slash_commands(self, register):
            def run(context, argument):
                raise KeyError("nope")

            register(SlashCommand("loud", "raises", run))

    manager = create_plugin_manager(builtins=(), load_entry_points=False)
    manager.register(Loud(), name="loud-plugin")
    (command,) = manager.collect("register_slash_commands")
    with pytest.raises(PluginError, match=r"^plugin loud-plugin failed in /loud: KeyError: 'nope'; disable it"):
        command.run(None, "")
    assert manager.plugins()[0].status == "failing"


def test_a_plugin_slash_command_overrides_a_tui_command_only_when_it_says_so():
    from assistant.tui.commands import CommandTable

    plain = SlashCommand("quit", "mine", lambda context, argument: None, plugin="p")
    table = CommandTable([("p", plain)])
    assert table.get("quit").plugin is None and table.shadowed == ["quit"]
    table = CommandTable([("p", SlashCommand("quit", "mine", plain.run, override=True, plugin="p"))])
    assert table.get("quit").source == "p"


def test_conversation_to_examples_results_are_checked():
    from assistant.conversation import Conversation
    from assistant.guard import PluginError

    class Junk:
        @hookimpl
        def conversation_to_examples(self, conversation):
            return "not a list"

    manager = create_plugin_manager(builtins=(), load_entry_points=False)
    manager.register(Junk(), name="junk")
    with pytest.raises(PluginError, match="conversation_to_examples returned str, not a list of dicts or None"):
        manager.call_each("conversation_to_examples", conversation=Conversation())


def test_an_observer_that_raises_does_not_stop_the_observers_after_it():
    seen: list[str] = []

    class Exploding:
        @hookimpl
        def reply_finished(self, chat, reply):
            raise ValueError("observer bug")

    class Listening:
        @hookimpl
        def reply_finished(self, chat, reply):
            seen.append(reply)

    manager = create_plugin_manager(builtins=(), load_entry_points=False)
    manager.persist_failures = False
    manager.register(Exploding(), name="exploding")
    manager.register(Listening(), name="listening")
    assert [manager.plugin_name(impl) for impl in manager.pm.hook.reply_finished.get_hookimpls()] == [
        "exploding", "listening"]  # notify calls in this order: the failing observer comes first
    manager.notify("reply_finished", chat=None, reply="the reply")
    manager.notify("reply_finished", chat=None, reply="the next one")
    assert seen == ["the reply", "the next one"]
    assert [(failure.name, failure.stage) for failure in manager.failures] == [("exploding", "reply_finished")] * 2


def test_a_plugin_failing_half_way_through_registering_keeps_nothing():
    class HalfWay:
        @hookimpl
        def register_slash_commands(self, register):
            register(SlashCommand(name="first", help="registered before the failure", run=lambda context, argument: ""))
            raise RuntimeError("broke after one registration")

    manager = create_plugin_manager(builtins=(), load_entry_points=False)
    manager.persist_failures = False
    manager.register(Greeter(), name="greeter")
    manager.register(HalfWay(), name="halfway")
    assert [command.name for command in manager.collect("register_slash_commands")] == ["hello"]
    assert [(failure.name, failure.stage) for failure in manager.failures] == [("halfway", "register_slash_commands")]
