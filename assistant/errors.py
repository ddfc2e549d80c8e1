"""AssistantError: a failure the user caused or can fix, carried as one actionable line."""

from __future__ import annotations


class AssistantError(Exception):
    """An error with a message a person can act on: what happened and what to do.

    The CLI prints it as one line and exits with status 2; the TUI shows it and keeps running.
    Anything that is not an AssistantError is a bug and gets a traceback in the log file.
    """

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
