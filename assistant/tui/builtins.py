"""The built-in /commands: one plain function each, `(host, argument)`, registered with `@builtin("name")`.

Why functions and not app methods: each command says in a few lines what it does with a narrow `CommandHost`
(the app implements it; tests use a small fake), and most only ask for an app action by name
(`await host.run_action("regenerate")`), so a key, the palette and the /command run the same code.

Adding one: a `CommandInfo` line in commands.BUILTIN_COMMANDS (usage, help, completion) and a function here.
No Textual import here (the purity test checks it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol

BuiltinRun = Callable[["CommandHost", str], "Awaitable[None] | None"]
BUILTINS: dict[str, BuiltinRun] = {}
"""Command name -> its function (filled by @builtin)."""


class ChatActions(Protocol):
    """Rename, delete and export a saved chat (the sidebar does them, asking first where it should)."""

    def rename_chat(self, chat_id: int, title: str | None = None) -> None: ...

    def delete_chat(self, chat_id: int) -> None: ...

    def export_chat(self, chat_id: int, path: str | None = None) -> None: ...


class CommandHost(Protocol):
    """What a built-in /command may use."""

    theme: str
    agent_mode: bool
    current_chat_id: int | None
    """The open chat's id (None: a new chat, not saved yet)."""
    chats: ChatActions

    @property
    def available_themes(self) -> dict[str, Any]: ...

    def notify(self, message: str, *, title: str = "", severity: Any = "information", timeout: float | None = None,
               markup: bool = True) -> None: ...

    async def run_action(self, action: str) -> bool:
        """Run an app action by name, e.g. "regenerate" or "set_rating(1)" (Textual's action strings)."""
        ...

    def attach_image_files(self, paths: list[Path]) -> None: ...

    def attach_video_files(self, paths: list[Path]) -> None: ...

    async def new_chat(self, title: str = "") -> None: ...

    async def switch_profile(self, name: str) -> None:
        """Switch to the profile `name` and load its model; an empty name says the usage and what is known."""
        ...

    def switch_adapter(self, argument: str) -> None:
        """Use the adapter named (none/off/base: the base model); empty: say the usage and the current one."""
        ...

    def set_agent_mode(self, on: bool) -> None: ...

    async def resend_edited(self, text: str) -> None: ...


def builtin(name: str) -> Callable[[BuiltinRun], BuiltinRun]:
    """Register `function` as the built-in /`name` (its usage and help are in commands.BUILTIN_COMMANDS)."""

    def register(function: BuiltinRun) -> BuiltinRun:
        BUILTINS[name] = function
        return function

    return register


ACTION_COMMANDS = {
    "clear": "new_chat",
    "regenerate": "regenerate",
    "correct": "correct",
    "copy": "copy_reply",
    "chats": "toggle_sidebar",
    "help": "help",
    "quit": "quit",
}
"""Commands that only run the app action of the same meaning (the key and the palette run the same code)."""


def _runs_action(action: str) -> BuiltinRun:
    async def run(host: CommandHost, argument: str) -> None:
        await host.run_action(action)

    run.__name__ = f"cmd_{action}"
    return run


for name, action in ACTION_COMMANDS.items():
    BUILTINS[name] = _runs_action(action)
del name, action


def _file_argument(host: CommandHost, command: str, argument: str) -> Path | None:
    """The file a /command names (quotes around it dropped), or None after saying the usage."""
    if not argument:
        host.notify(f"usage: /{command} PATH (Tab completes the path)", severity="warning")
        return None
    path = argument.strip()
    if len(path) >= 2 and path[0] == path[-1] and path[0] in "\"'":
        path = path[1:-1]
    return Path(path).expanduser()


@builtin("image")
def cmd_image(host: CommandHost, argument: str) -> None:
    path = _file_argument(host, "image", argument)
    if path is not None:
        host.attach_image_files([path])


@builtin("video")
def cmd_video(host: CommandHost, argument: str) -> None:
    path = _file_argument(host, "video", argument)
    if path is not None:
        host.attach_video_files([path])


@builtin("new")
async def cmd_new(host: CommandHost, argument: str) -> None:
    await host.new_chat(title=argument)


@builtin("profile")
async def cmd_profile(host: CommandHost, argument: str) -> None:
    await host.switch_profile(argument)


@builtin("adapter")
def cmd_adapter(host: CommandHost, argument: str) -> None:
    host.switch_adapter(argument)


@builtin("agent")
def cmd_agent(host: CommandHost, argument: str) -> None:
    choice = argument.strip().lower()
    if choice not in ("", "on", "off"):
        host.notify("usage: /agent [on|off]", severity="warning", markup=False)
        return
    host.set_agent_mode(not host.agent_mode if not choice else choice == "on")


@builtin("edit")
async def cmd_edit(host: CommandHost, argument: str) -> None:
    if argument:
        await host.resend_edited(argument)
    else:
        await host.run_action("edit_last")


RATINGS = {"up": 1, "+1": 1, "+": 1, "good": 1, "down": -1, "-1": -1, "-": -1, "bad": -1, "clear": 0, "0": 0}


@builtin("rate")
async def cmd_rate(host: CommandHost, argument: str) -> None:
    if argument.lower() not in RATINGS:
        host.notify("usage: /rate up|down|clear", severity="warning")
        return
    await host.run_action(f"set_rating({RATINGS[argument.lower()]})")


def _saved_chat(host: CommandHost) -> int | None:
    if host.current_chat_id is None:
        host.notify("this chat is not saved yet: send a message first", severity="warning")
    return host.current_chat_id


@builtin("rename")
def cmd_rename(host: CommandHost, argument: str) -> None:
    chat_id = _saved_chat(host)
    if chat_id is not None:
        host.chats.rename_chat(chat_id, argument or None)


@builtin("delete")
def cmd_delete(host: CommandHost, argument: str) -> None:
    chat_id = _saved_chat(host)
    if chat_id is not None:
        host.chats.delete_chat(chat_id)


@builtin("export")
def cmd_export(host: CommandHost, argument: str) -> None:
    chat_id = _saved_chat(host)
    if chat_id is not None:
        host.chats.export_chat(chat_id, argument or None)


@builtin("theme")
def cmd_theme(host: CommandHost, argument: str) -> None:
    if argument in host.available_themes:
        host.theme = argument
        return
    host.notify(f"usage: /theme NAME; themes: {', '.join(sorted(host.available_themes))}", markup=False)
