"""The help screen: every key (with the user's overrides) and every /command, plugins' included."""

from __future__ import annotations

from typing import Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ..commands import CommandInfo
from ..config import FIXED_KEYS, KEY_SPECS, SCOPES, TuiConfig, key_label


def keys_table(config: TuiConfig) -> Group:
    """Every key by where it works; rebindable ones show their id (the name to use in [keys]), dimmed."""
    clashing = {binding_id: clash for clash in config.clashes() for binding_id in clash.ids}
    tables = []
    for scope in SCOPES:
        table = Table.grid(padding=(0, 1), expand=True)
        table.title = scope
        table.title_justify = "left"
        table.title_style = "bold underline"
        table.add_column(style="bold", width=16)
        table.add_column(ratio=1)
        table.add_column(style="dim", no_wrap=True)
        for spec in KEY_SPECS:
            if spec.scope == scope:
                description = Text(spec.description)
                clash = clashing.get(spec.id)
                if clash is not None:
                    others = ", ".join(other for other in clash.ids if other != spec.id)
                    description.append(f"  ⚠ {key_label(clash.key)} is also {others}", style="bold red")
                table.add_row(Text(key_label(config.keys_for(spec.id))), description, Text(spec.id))
        for keys, description, fixed_scope in FIXED_KEYS:
            if fixed_scope == scope:
                table.add_row(Text(keys), Text(description), "")
        tables.append(table)
    return Group(*tables)


def commands_table(commands: Sequence[CommandInfo]) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", width=20)
    table.add_column(ratio=1)
    for info in commands:
        help_text = Text(info.help)
        if info.source != "built-in":
            help_text.append(f"  plugin {info.source}", style="dim")
        table.add_row(Text(info.signature), help_text)
    return table


class HelpScreen(ModalScreen[None]):
    """Esc, F1 or q closes it."""

    BINDINGS = [Binding("escape,f1,q", "close", "Close", show=False)]

    def __init__(self, config: TuiConfig, commands: Sequence[CommandInfo], config_file: str) -> None:
        super().__init__(classes="dialog-screen")
        self.config = config
        self.commands = list(commands)
        self.config_file = config_file

    def compose(self) -> ComposeResult:
        with Vertical(id="help", classes="dialog"):
            yield Static("Keys and commands", classes="dialog-title")
            with Horizontal(id="help-body"):
                with VerticalScroll(classes="help-column help-keys-column"):
                    yield Static(keys_table(self.config), classes="help-keys")
                with VerticalScroll(classes="help-column help-commands-column"):
                    yield Static(Text("Slash commands (Tab completes)", style="bold underline"))
                    yield Static(commands_table(self.commands), classes="help-commands")
                    yield Static(
                        f"Rebind a key in the [keys] table of {self.config_file} with the dimmed id, "
                        'e.g.  toggle_sidebar = "f9" (⚠ marks a key bound twice).  Theme, thumbnails and timings: '
                        "the [tui] table.\n"
                        "To send a message that starts with /, begin it with //.",
                        classes="help-footnote",
                        markup=False,
                    )
            yield Static("Esc closes", classes="dialog-hint")

    def action_close(self) -> None:
        self.dismiss(None)
