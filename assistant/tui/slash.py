"""The app's /commands (built-in and plugins'), the plugins' SlashContext services, and the command palette."""

from __future__ import annotations

import functools
import gc
import inspect
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from textual import work
from textual.actions import SkipAction

from ..api import Assistant, Chat
from ..errors import AssistantError
from ..paths import user_paths
from .commands import complete_prompt
from .completion import Completion
from .config import key_label
from .messages import AdapterChanged
from .palette import PaletteEntry
from .screens.dialogs import TextPrompt
from .screens.help import HelpScreen
from .widgets.chatlog import Notice

if TYPE_CHECKING:
    from .app import AssistantApp

    _App = AssistantApp
else:
    _App = object

log = logging.getLogger(__name__)


class SlashMixin(_App):
    """Part of AssistantApp: `/name argument` runs `cmd_name` or a plugin's command; the palette lists them all."""

    def _choices(self, kind: str) -> list[str]:
        if kind == "profile":
            from ..profiles import available_profiles

            return list(available_profiles())
        if kind == "adapter":
            folder = user_paths().adapters_dir
            names = sorted(entry.name for entry in folder.iterdir() if entry.is_dir()) if folder.is_dir() else []
            return ["none", *names]
        if kind == "theme":
            return sorted(self.available_themes)
        return []

    def _complete(self, text: str) -> list[Completion]:
        try:
            return complete_prompt(text, self.commands, self._choices)
        except Exception as error:  # noqa: BLE001 - completion must never break typing
            log.warning("completion failed: %s", error)
            return []

    async def run_command(self, name: str, argument: str) -> None:
        info = self.commands.get(name)
        if info is None:
            self.notify(f"unknown command /{name}; F1 lists the commands (start a message with // to send a /)", severity="warning", markup=False)
            return
        if info.plugin is not None:
            await self.run_plugin_command(info.name, info.source, info.plugin.run, argument)
            return
        handler = getattr(self, f"cmd_{name}")
        result = handler(argument)
        if inspect.isawaitable(result):
            await result

    async def run_plugin_command(self, name: str, source: str, run: Callable[..., Any], argument: str) -> None:
        """Run a plugin's /command; whatever it raises becomes a notification."""
        try:
            result = run(self.slash_context, argument)
            if inspect.isawaitable(result):
                await result
        except AssistantError as error:
            self.notify(str(error), title=f"/{name}", severity="error", markup=False)
        except Exception as error:  # noqa: BLE001 - a plugin's bug must not take the chat down
            log.exception("plugin command /%s (%s) failed", name, source)
            self.notify(
                f"/{name} (plugin {source}) failed: {type(error).__name__}: {error}",
                title="Plugin command failed",
                severity="error",
                markup=False,
            )

    def run_plugin_work(self, work_fn: Callable[[], Any], done: Callable[[Any], None]) -> None:
        self._plugin_work(work_fn, done)

    def ask_secret(self, prompt: str, done: Callable[["str | None"], None]) -> None:
        """Ask for a password (hidden input); `done(None)` when cancelled. Errors in `done` are reported."""
        self.push_screen(TextPrompt(prompt, password=True), self._guard_callback(done))

    @work(thread=True, group="plugin", exit_on_error=False)
    def _plugin_work(self, work_fn: Callable[[], Any], done: Callable[[Any], None]) -> None:
        try:
            result = work_fn()
        except AssistantError as error:
            self.call_from_thread(self.notify, str(error), severity="error", markup=False)
            return
        except Exception as error:  # noqa: BLE001
            log.exception("plugin background work failed")
            self.call_from_thread(
                self.notify, f"plugin work failed: {type(error).__name__}: {error}", severity="error", markup=False
            )
            return
        self.call_from_thread(self._finish_plugin_work, done, result)

    def _finish_plugin_work(self, done: Callable[[Any], None], result: Any) -> None:
        try:
            done(result)
        except AssistantError as error:
            self.notify(str(error), severity="error", markup=False)
        except Exception as error:  # noqa: BLE001
            log.exception("plugin callback failed")
            self.notify(f"plugin command failed: {type(error).__name__}: {error}", severity="error", markup=False)

    def _guard_callback(self, callback: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """A dialog callback whose errors are reported rather than raised."""

        async def guarded_callback(value: Any) -> None:
            try:
                result = callback(value)
                if inspect.isawaitable(result):
                    await result
            except Exception as error:  # noqa: BLE001
                self.report_error(error, getattr(callback, "__name__", "dialog"))

        return guarded_callback

    def cmd_image(self, argument: str) -> None:
        if not argument:
            self.notify("usage: /image PATH (Tab completes the path)", severity="warning")
            return
        path = argument.strip()
        if len(path) >= 2 and path[0] == path[-1] and path[0] in "\"'":
            path = path[1:-1]
        self.composer.attach_image_files([Path(path).expanduser()])

    async def cmd_new(self, argument: str) -> None:
        await self.new_chat(title=argument)

    async def cmd_clear(self, argument: str) -> None:
        await self.new_chat()

    async def cmd_profile(self, argument: str) -> None:
        if not argument:
            from ..profiles import available_profiles

            current = self.assistant.profile.name if self.assistant is not None else "none"
            self.notify(
                f"usage: /profile NAME (now {current}); known: {', '.join(available_profiles())}", markup=False
            )
            return
        if self.job is not None:
            self.notify("stop the reply (Esc) before switching profile", severity="warning")
            return
        assistant = Assistant.from_profile(argument, store=self.store, plugins=self.plugins)
        if self.pending is not None:
            await self._cancel_pending()
        self.assistant = assistant
        self.load_state = "idle"
        self.load_error = None
        self.startup_error = None
        if self.chat is not None:
            self.chat = Chat(assistant, self.chat.conversation)
        elif self.current_chat_id is not None and self.store is not None:
            self.chat = Chat(assistant, self.store.get_conversation(self.current_chat_id))
        gc.collect()  # let the previous model go before the next one loads
        await self.chat_log.add(Notice(f"switched to profile {assistant.profile.name}"))
        if self.plugins is None:
            self._setup_plugins()
        self.start_loading()

    def cmd_adapter(self, argument: str) -> None:
        if self.assistant is None:
            self.notify("no profile is active; switch with /profile NAME", severity="error")
            return
        if not argument:
            self.notify(f"usage: /adapter NAME|none (now {self.assistant.adapter or 'none'})", markup=False)
            return
        if self.job is not None:
            self.notify("stop the reply (Esc) before switching adapter", severity="warning")
            return
        name = None if argument.lower() in ("none", "off", "base") else argument
        self._switch_adapter(self.assistant, name)

    @work(thread=True, group="adapter", exclusive=True, exit_on_error=False)
    def _switch_adapter(self, assistant: Assistant, name: str | None) -> None:
        try:
            assistant.set_adapter(name)
        except AssistantError as error:
            self.post_message(AdapterChanged(assistant, name, str(error)))
        except Exception as error:  # noqa: BLE001
            log.exception("switching adapter failed")
            self.post_message(AdapterChanged(assistant, name, f"switching adapter failed: {type(error).__name__}: {error}"))
        else:
            self.post_message(AdapterChanged(assistant, name))

    def on_adapter_changed(self, event: AdapterChanged) -> None:
        if not self.ui_alive:
            return
        if event.error:
            self.notify(event.error, severity="error", markup=False)
        else:
            self.notify(f"adapter: {event.adapter or 'none (base model)'}", markup=False)
        self.update_status()

    def cmd_agent(self, argument: str) -> None:
        choice = argument.strip().lower()
        if choice not in ("", "on", "off"):
            self.notify("usage: /agent [on|off]", severity="warning", markup=False)
            return
        self.set_agent_mode(not self.agent_mode if not choice else choice == "on")

    def action_toggle_agent(self) -> None:
        self.set_agent_mode(not self.agent_mode)

    def set_agent_mode(self, on: bool) -> None:
        self.agent_mode = on
        if on:
            self.notify(
                "agent mode on: the model may call tools (screenshots, PDF pages, …); tools with side effects ask first",
                markup=False,
            )
        else:
            self.notify("agent mode off: plain replies")
        self.update_status()

    async def cmd_regenerate(self, argument: str) -> None:
        await self.action_regenerate()

    async def cmd_edit(self, argument: str) -> None:
        if argument:
            await self._resend_edited(argument)
        else:
            await self.action_edit_last()

    def cmd_rate(self, argument: str) -> None:
        values = {"up": 1, "+1": 1, "+": 1, "good": 1, "down": -1, "-1": -1, "-": -1, "bad": -1, "clear": 0, "0": 0}
        if argument.lower() not in values:
            self.notify("usage: /rate up|down|clear", severity="warning")
            return
        value = values[argument.lower()]
        reply = self.target_reply()
        if value == 0:
            if reply is not None and reply.message is not None and reply.message.rating:
                self.action_rate(reply.message.rating)  # rating again clears it
            return
        if reply is not None and reply.message is not None and reply.message.rating == value:
            return
        self.action_rate(value)

    def cmd_correct(self, argument: str) -> None:
        self.action_correct()

    def cmd_copy(self, argument: str) -> None:
        self.action_copy_reply()

    def _current_chat_or_warn(self) -> int | None:
        if self.current_chat_id is None:
            self.notify("this chat is not saved yet: send a message first", severity="warning")
        return self.current_chat_id

    def cmd_rename(self, argument: str) -> None:
        chat_id = self._current_chat_or_warn()
        if chat_id is not None:
            self.rename_chat(chat_id, argument or None)

    def cmd_delete(self, argument: str) -> None:
        chat_id = self._current_chat_or_warn()
        if chat_id is not None:
            self.delete_chat(chat_id)

    def cmd_export(self, argument: str) -> None:
        chat_id = self._current_chat_or_warn()
        if chat_id is not None:
            self.export_chat(chat_id, argument or None)

    def cmd_chats(self, argument: str) -> None:
        self.action_toggle_sidebar()

    def cmd_theme(self, argument: str) -> None:
        if argument in self.available_themes:
            self.theme = argument
            return
        self.notify(f"usage: /theme NAME; themes: {', '.join(sorted(self.available_themes))}", markup=False)

    def cmd_help(self, argument: str) -> None:
        self.action_help()

    def cmd_quit(self, argument: str) -> None:
        self.exit()

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.config, self.commands.all(), self.config_file_display))

    # --- command palette -------------------------------------------------------------------------------

    def _prefill(self, text: str) -> None:
        self.prompt.set_prompt(text)
        self.prompt.focus()

    def palette_entries(self) -> list[PaletteEntry]:
        def keys(binding_id: str) -> str:
            return f" ({key_label(self.config.keys_for(binding_id))})"

        def chat_command(name: str) -> Callable[[], Any]:
            return lambda: self.run_command(name, "")

        entries = [
            PaletteEntry("New chat", "Start a new chat; the current one stays saved" + keys("new_chat"), self.action_new_chat),
            PaletteEntry("Show or hide the chat list", "Saved chats, newest first, with search" + keys("toggle_sidebar"), self.action_toggle_sidebar),
            PaletteEntry("Stop the reply", "The partial reply is kept, marked stopped" + keys("stop"), self.action_stop),
            PaletteEntry("Regenerate the last reply", "Answer the last question again" + keys("regenerate"), self.action_regenerate),
            PaletteEntry("Edit the last question", "Change it and send it again" + keys("edit_last"), self.action_edit_last),
            PaletteEntry("Rate the reply up", "The selected or last reply" + keys("rate_up"), functools.partial(self.action_rate, 1)),
            PaletteEntry("Rate the reply down", "The selected or last reply" + keys("rate_down"), functools.partial(self.action_rate, -1)),
            PaletteEntry("Correct the reply", "Kept as training data for adapters" + keys("correct"), self.action_correct),
            PaletteEntry("Copy the reply", "To the clipboard", self.action_copy_reply),
            PaletteEntry("Agent mode on/off", "Let the model call tools" + keys("toggle_agent"), self.action_toggle_agent),
            PaletteEntry("Rename this chat", "/rename TITLE", chat_command("rename")),
            PaletteEntry("Delete this chat", "Asks first", chat_command("delete")),
            PaletteEntry("Export this chat to Markdown", "/export [PATH]", chat_command("export")),
            PaletteEntry("Attach an image…", "Fills in /image; Tab completes the path", lambda: self._prefill("/image ")),
            PaletteEntry("Switch profile…", "Fills in /profile; Tab lists the profiles", lambda: self._prefill("/profile ")),
            PaletteEntry("Switch adapter…", "Fills in /adapter; Tab lists the adapters", lambda: self._prefill("/adapter ")),
            PaletteEntry("Help: keys and commands", "Every key and /command" + keys("help"), self.action_help),
        ]
        for info in self.commands.all():
            if info.plugin is None:
                continue
            if info.complete:
                run: Callable[[], Any] = functools.partial(self._prefill, f"/{info.name} ")
            else:
                run = functools.partial(self.run_plugin_command, info.name, info.source, info.plugin.run, "")
            entries.append(PaletteEntry(f"/{info.name}", f"{info.help} (plugin {info.source})", run))
        return [PaletteEntry(entry.title, entry.help, self._palette_runner(entry.run)) for entry in entries]

    def _palette_runner(self, run: Callable[[], Any]) -> Callable[[], Any]:
        async def runner() -> None:
            try:
                result = run()
                if inspect.isawaitable(result):
                    await result
            except SkipAction:
                pass
            except Exception as error:  # noqa: BLE001
                self.report_error(error, "the command")

        return runner

