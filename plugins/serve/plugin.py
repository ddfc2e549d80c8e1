"""Built-in plugin: registers the `assistant serve` command."""

from __future__ import annotations

from typing import Any

from assistant import hookimpl


@hookimpl
def register_commands(cli: Any) -> None:
    from .command import serve

    cli.add_command(serve)
