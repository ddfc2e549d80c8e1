"""`python -m assistant`: the same as the `assistant` command."""

from .cli import entry_point

entry_point()
