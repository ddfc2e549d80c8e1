"""The /command registry and dispatcher without the app: built-ins get a small fake CommandHost, plugins the context."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from assistant.errors import AssistantError
from assistant.hooktypes import SlashCommand
from assistant.tui.builtins import BUILTINS
from assistant.tui.commands import BUILTIN_COMMANDS, CommandTable
from assistant.tui.palette import palette_entries
from assistant.tui.slash import SlashCommands


class FakeChats:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str | None]] = []

    def rename_chat(self, chat_id: int, title: str | None = None) -> None:
        self.calls.append(("rename", chat_id, title))

    def delete_chat(self, chat_id: int) -> None:
        self.calls.append(("delete", chat_id, None))

    def export_chat(self, chat_id: int, path: str | None = None) -> None:
        self.calls.append(("export", chat_id, path))


class FakeHost:
    """Records what the built-in commands ask for."""

    def __init__(self) -> None:
        self.theme = "textual-dark"
        self.available_themes = {"textual-dark": object(), "nord": object()}
        self.agent_mode = False
        self.current_chat_id: int | None = None
        self.chats = FakeChats()
        self.notes: list[tuple[str, str]] = []
        self.actions: list[str] = []
        self.calls: list[tuple[str, Any]] = []

    def notify(self, message: str, *, title: str = "", severity: Any = "information", timeout: float | None = None,
               markup: bool = True) -> None:
        self.notes.append((severity, message))

    async def run_action(self, action: str) -> bool:
        self.actions.append(action)
        return True

    def attach_image_files(self, paths: list[Path]) -> None:
        self.calls.append(("attach", paths))

    async def new_chat(self, title: str = "") -> None:
        self.calls.append(("new_chat", title))

    async def switch_profile(self, name: str) -> None:
        if name == "broken":
            raise AssistantError("no profile named 'broken'; see assistant profiles")
        self.calls.append(("profile", name))

    def switch_adapter(self, argument: str) -> None:
        self.calls.append(("adapter", argument))

    def set_agent_mode(self, on: bool) -> None:
        self.agent_mode = on

    async def resend_edited(self, text: str) -> None:
        self.calls.append(("edit", text))


def make() -> tuple[FakeHost, SlashCommands, list[tuple[str, BaseException]]]:
    host = FakeHost()
    errors: list[tuple[str, BaseException]] = []
    commands = SlashCommands(host, context="the plugin context", report_error=lambda e, what: errors.append((what, e)))
    return host, commands, errors


def run(commands: SlashCommands, *lines: str) -> list[bool]:
    async def go() -> list[bool]:
        return [await commands.submit(line) for line in lines]

    return asyncio.run(go())


def test_every_built_in_command_has_a_function_and_a_help_line():
    assert {info.name for info in BUILTIN_COMMANDS} == set(BUILTINS)


def test_plain_text_and_double_slash_are_messages_not_commands():
    host, commands, _ = make()
    assert run(commands, "hello", "//etc is a folder", "/nosuch thing") == [False, False, True]
    assert host.notes == [("warning", "unknown command /nosuch; F1 lists the commands (start a message with // to send a /)")]


def test_built_ins_ask_the_host_for_actions_and_parts():
    host, commands, _ = make()
    run(commands, "/regenerate", "/rate up", "/rate clear", "/rate sideways", "/copy", "/chats", "/edit", "/clear")
    assert host.actions == ["regenerate", "set_rating(1)", "set_rating(0)", "copy_reply", "toggle_sidebar",
                            "edit_last", "new_chat"]
    assert host.notes == [("warning", "usage: /rate up|down|clear")]
    run(commands, "/new Holiday plans", "/edit a better question", "/image '~/my cat.png'", "/adapter none",
        "/profile tiny-smolvlm")
    assert host.calls == [("new_chat", "Holiday plans"), ("edit", "a better question"),
                          ("attach", [Path("~/my cat.png").expanduser()]), ("adapter", "none"),
                          ("profile", "tiny-smolvlm")]
    run(commands, "/agent", "/agent", "/agent on", "/theme nord")
    assert host.agent_mode and host.theme == "nord"


def test_chat_commands_need_a_saved_chat():
    host, commands, _ = make()
    run(commands, "/rename Sums")
    assert host.chats.calls == [] and host.notes == [("warning", "this chat is not saved yet: send a message first")]
    host.current_chat_id = 7
    run(commands, "/rename Sums", "/export", "/delete")
    assert host.chats.calls == [("rename", 7, "Sums"), ("export", 7, None), ("delete", 7, None)]


def test_a_failing_built_in_is_reported_and_the_next_command_runs():
    host, commands, errors = make()
    run(commands, "/profile broken", "/profile tiny-smolvlm")
    assert [(what, str(error)) for what, error in errors] == [("/profile", "no profile named 'broken'; see assistant profiles")]
    assert host.calls == [("profile", "tiny-smolvlm")]


def test_plugin_commands_get_the_context_and_their_errors_become_notices():
    host, commands, _ = make()
    seen: list[tuple[Any, str]] = []

    def hello(context: Any, argument: str) -> None:
        seen.append((context, argument))

    def broken(context: Any, argument: str) -> None:
        raise AssistantError("the scanner is offline; plug it in")

    def buggy(context: Any, argument: str) -> None:
        raise KeyError("oops")

    commands.table = CommandTable([("hello-plugin", SlashCommand("hello", "Say hello", hello)),
                                   ("scan", SlashCommand("scan", "Scan", broken)),
                                   ("bug", SlashCommand("bug", "Bug", buggy))])
    run(commands, "/hello world", "/scan", "/bug")
    assert seen == [("the plugin context", "world")]
    assert host.notes[0] == ("error", "the scanner is offline; plug it in")
    assert host.notes[1][0] == "error" and "/bug (plugin bug) failed: KeyError" in host.notes[1][1]


def test_theme_names_complete_from_the_host():
    _, commands, _ = make()
    assert [c.label for c in commands.complete("/theme n")] == ["nord"]
    assert [c.label for c in commands.complete("/rate ")] == ["up", "down", "clear"]


def test_the_palette_runs_actions_by_name_and_commands_through_the_registry():
    host, commands, _ = make()
    host.current_chat_id = 3

    class PaletteHost:
        config = __import__("assistant.tui.config", fromlist=["TuiConfig"]).TuiConfig()
        slash = commands
        run_action = host.run_action
        prefilled: list[str] = []

        def prefill(self, text: str) -> None:
            self.prefilled.append(text)

        def report_error(self, error: BaseException, what: str) -> None:
            raise AssertionError(error)

    palette_host = PaletteHost()
    entries = {entry.title: entry for entry in palette_entries(palette_host)}
    for title in ("Regenerate the last reply", "Rate the reply down", "Rename this chat", "Switch profile…"):
        asyncio.run(entries[title].run())
    assert host.actions == ["regenerate", "rate(-1)"]
    assert host.chats.calls == [("rename", 3, None)]
    assert palette_host.prefilled == ["/profile "]


def test_the_registry_the_built_ins_and_the_controller_import_no_textual():
    import json
    import subprocess
    import sys

    modules = ["assistant.tui.commands", "assistant.tui.builtins", "assistant.tui.slash", "assistant.tui.controller"]
    code = ("import importlib, json, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "print(json.dumps([m for m in ('textual', 'torch', 'transformers') if m in sys.modules]))\n")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(output.strip().splitlines()[-1]) == []
