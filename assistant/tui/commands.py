"""The /commands of the prompt: the built-in table, plugin commands, parsing and completion.

Pure Python (no textual): slash.SlashCommands runs a built-in command's function (builtins.py, same name) and a
plugin command through its `SlashCommand.run(context, argument)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from ..hooktypes import SlashCommand
from .completion import Completion, complete_choice, complete_path


@dataclass(frozen=True)
class CommandInfo:
    """A command as the prompt, the help screen and the palette show it."""

    name: str
    usage: str
    """The argument part, e.g. `PATH` or `[TITLE]`; empty when the command takes none."""
    help: str
    complete: str = ""
    """How the argument completes: path, image, profile, adapter, theme, rate, toggle or nothing."""
    source: str = "built-in"
    plugin: SlashCommand | None = None

    @property
    def takes_argument(self) -> bool:
        return bool(self.usage)

    @property
    def signature(self) -> str:
        return f"/{self.name} {self.usage}".rstrip()


BUILTIN_COMMANDS: tuple[CommandInfo, ...] = (
    CommandInfo("image", "PATH", "Attach an image file", complete="image"),
    CommandInfo("video", "PATH", "Attach a video file", complete="path"),
    CommandInfo("new", "[TITLE]", "New chat (this one stays saved)"),
    CommandInfo("clear", "", "Fresh context: a new chat"),
    CommandInfo("profile", "NAME", "Switch profile (loads its model)", complete="profile"),
    CommandInfo("adapter", "NAME|none", "LoRA adapter, or none", complete="adapter"),
    CommandInfo("agent", "[on|off]", "Agent mode: the model may call tools", complete="toggle"),
    CommandInfo("regenerate", "", "Answer the last question again"),
    CommandInfo("edit", "[TEXT]", "Edit and resend the last question"),
    CommandInfo("rate", "up|down|clear", "Rate the selected/last reply", complete="rate"),
    CommandInfo("correct", "", "Correct the selected/last reply"),
    CommandInfo("copy", "", "Copy the selected/last reply"),
    CommandInfo("rename", "TITLE", "Rename this chat"),
    CommandInfo("delete", "", "Delete this chat (asks first)"),
    CommandInfo("export", "[PATH]", "Export this chat as Markdown", complete="path"),
    CommandInfo("chats", "", "Chat list on/off"),
    CommandInfo("theme", "NAME", "Switch the colour theme", complete="theme"),
    CommandInfo("help", "", "Keys and commands"),
    CommandInfo("quit", "", "Quit"),
)

RATE_CHOICES = ["up", "down", "clear"]
TOGGLE_CHOICES = ["on", "off"]


def parse_command(text: str) -> tuple[str, str] | None:
    """`/name argument` -> (name, argument); None for anything else. `//text` is a message starting with `/`."""
    stripped = text.strip()
    if not stripped.startswith("/") or stripped.startswith("//") or len(stripped) < 2:
        return None
    head, _, rest = stripped[1:].partition(" ")
    if not head or "/" in head:  # `/home/me/cat.png` is a path, not a command
        return None
    return head, rest.strip()


class CommandTable:
    """Built-in commands first, then plugin commands (a plugin shadows a built-in only with override=True; the
    plugin manager reports the clash either way)."""

    def __init__(self, plugin_commands: Iterable[tuple[str, SlashCommand]] = ()) -> None:
        self._commands: dict[str, CommandInfo] = {info.name: info for info in BUILTIN_COMMANDS}
        self.shadowed: list[str] = []
        for source, command in plugin_commands:
            name = command.name.lstrip("/").strip()
            if not name or (name in self._commands and not getattr(command, "override", False)):
                self.shadowed.append(name)
                continue
            usage = "PATH" if command.complete_paths else "[ARGS]"
            self._commands[name] = CommandInfo(
                name, usage, command.help, complete="path" if command.complete_paths else "", source=source, plugin=command
            )

    def all(self) -> list[CommandInfo]:
        return list(self._commands.values())

    def get(self, name: str) -> CommandInfo | None:
        return self._commands.get(name)

    def names(self) -> list[str]:
        return list(self._commands)


def complete_prompt(
    text: str, table: CommandTable, choices: Callable[[str], list[str]] | None = None
) -> list[Completion]:
    """Completions for a prompt that starts with `/`: command names first, then the command's argument.

    `choices(kind)` lists the values for profile, adapter and theme arguments.
    """
    if not text.startswith("/") or "\n" in text or text.startswith("//"):
        return []
    head, space, argument = text[1:].partition(" ")
    if not space:
        matches = [info for info in table.all() if info.name.startswith(head)]
        return [
            Completion(
                replacement=f"/{info.name} " if info.takes_argument else f"/{info.name}",
                label=info.signature,
                detail=info.help if info.source == "built-in" else f"{info.help} ({info.source})",
                kind="command",
            )
            for info in matches
        ]
    info = table.get(head)
    if info is None or not info.complete:
        return []
    if info.complete in ("path", "image"):
        return [
            Completion(replacement=f"/{head} {value}", label=value, final=not is_dir, kind="path")
            for value, is_dir in complete_path(argument, images_only=info.complete == "image")
        ]
    if info.complete in ("rate", "toggle"):
        values = RATE_CHOICES if info.complete == "rate" else TOGGLE_CHOICES
    else:
        values = choices(info.complete) if choices else []
    detail = adapter_detail if info.complete == "adapter" else (lambda value: "")
    return [Completion(replacement=f"/{head} {value}", label=value, detail=detail(value))
            for value in complete_choice(argument, values)]


def adapter_detail(name: str) -> str:
    """What the adapter menu shows next to a name: its last `assistant eval` (score, base, difference, p-value)."""
    if name == "none":
        return "the base model"
    from ..evaluation.saved import last_eval_line

    return last_eval_line(name) or f"not evaluated yet: assistant eval FILE --format F --adapter {name} --compare base"
