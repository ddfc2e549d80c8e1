"""The /command registry and dispatcher: which commands exist (built-in and plugins'), completion, and running one.

`SlashCommands` is a small object the app owns, not part of the app: built-in commands are the plain functions of
builtins.py (given the narrow `CommandHost`), plugins' commands get the documented `SlashContext` (context.py).
Whatever a command raises becomes a notification; the chat goes on.
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Any, Callable

from ..errors import AssistantError
from ..paths import user_paths
from .builtins import BUILTINS, CommandHost
from .commands import BUILTIN_COMMANDS, CommandInfo, CommandTable, complete_prompt, parse_command
from .completion import Completion

if TYPE_CHECKING:
    from ..hooktypes import SlashContext
    from ..plugins import PluginManager

log = logging.getLogger(__name__)

missing = sorted({info.name for info in BUILTIN_COMMANDS} ^ set(BUILTINS))
assert not missing, f"built-in commands without a function or a CommandInfo: {missing}"


def plugin_name_of(plugins: "PluginManager", run: Callable[..., Any]) -> str:
    """Which plugin a /command comes from: the plugin object of a bound method, or the plugin module."""
    owner = getattr(run, "__self__", None)
    module = getattr(run, "__module__", "") or ""
    for name, plugin in plugins.pm.list_name_plugin():
        if plugin is owner or getattr(plugin, "__name__", None) == module:
            return str(name)
    return module.split(".")[0] or "plugin"


class SlashCommands:
    """`/name argument` -> the built-in function or the plugin's `SlashCommand.run(context, argument)`."""

    def __init__(
        self,
        host: CommandHost,
        context: "SlashContext",
        report_error: Callable[[BaseException, str], None],
    ) -> None:
        self.host = host
        self.context = context
        """What plugins' commands receive (the narrow, documented SlashContext)."""
        self.report_error = report_error
        self.table = CommandTable()

    # --- which commands exist --------------------------------------------------------------------------------------

    def reload(self, plugins: "PluginManager | None") -> None:
        """Collect the plugins' /commands again (at start, after a plugin is registered at run time)."""
        if plugins is None:
            return
        try:
            found = plugins.collect("register_slash_commands")
        except Exception as error:  # noqa: BLE001 - a built-in plugin's bug: report it, keep the built-in commands
            self.report_error(error, "collecting plugin commands")
            found = []
        self.table = CommandTable([(command.plugin or plugin_name_of(plugins, command.run), command) for command in found])

    def choices(self, kind: str) -> list[str]:
        """The values a profile, adapter or theme argument completes to."""
        if kind == "profile":
            from ..profiles import available_profiles

            return list(available_profiles())
        if kind == "adapter":
            folder = user_paths().adapters_dir
            names = sorted(entry.name for entry in folder.iterdir() if entry.is_dir()) if folder.is_dir() else []
            return ["none", *names]
        if kind == "theme":
            return sorted(self.host.available_themes)
        return []

    def complete(self, text: str) -> list[Completion]:
        """The prompt's completions for `text` (never raises: completion must not break typing)."""
        try:
            return complete_prompt(text, self.table, self.choices)
        except Exception as error:  # noqa: BLE001
            log.warning("completion failed: %s", error)
            return []

    # --- running one -----------------------------------------------------------------------------------------------

    async def submit(self, text: str) -> bool:
        """Run `text` when it is a /command (True); False when it is a message to send."""
        parsed = parse_command(text)
        if parsed is None:
            return False
        await self.run(*parsed)
        return True

    async def run(self, name: str, argument: str) -> None:
        info = self.table.get(name)
        if info is None:
            self.host.notify(
                f"unknown command /{name}; F1 lists the commands (start a message with // to send a /)",
                severity="warning",
                markup=False,
            )
            return
        if info.plugin is not None:
            await self.run_plugin(info, argument)
            return
        try:
            result = BUILTINS[name](self.host, argument)
            if inspect.isawaitable(result):
                await result
        except Exception as error:  # noqa: BLE001 - AssistantError: its line; a bug: logged and shown
            self.report_error(error, f"/{name}")

    async def run_plugin(self, info: CommandInfo, argument: str) -> None:
        """Run a plugin's /command; whatever it raises becomes a notification."""
        assert info.plugin is not None
        try:
            result = info.plugin.run(self.context, argument)
            if inspect.isawaitable(result):
                await result
        except AssistantError as error:
            self.host.notify(str(error), title=f"/{info.name}", severity="error", markup=False)
        except Exception as error:  # noqa: BLE001 - a plugin's bug must not take the chat down
            log.exception("plugin command /%s (%s) failed", info.name, info.source)
            self.host.notify(
                f"/{info.name} (plugin {info.source}) failed: {type(error).__name__}: {error}",
                title="Plugin command failed",
                severity="error",
                markup=False,
            )
