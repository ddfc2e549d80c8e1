"""Helpers for the hostile-input suite: run the real CLI (in-process or as a subprocess) and check nothing was lost."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from assistant.cli import main
from assistant.paths import user_paths


@dataclass
class Result:
    code: int
    out: str
    err: str

    def one_line(self) -> str:
        """The single non-empty stderr line (an error, a refusal); fails the test when there are more or a traceback."""
        lines = [line for line in self.err.splitlines() if line.strip()]
        assert len(lines) == 1, self.err
        assert "Traceback" not in self.err and "internal error" not in self.err, self.err
        return lines[0]


    def error_line(self) -> str:
        """The single `error:` line on stderr (progress lines before it allowed); no traceback."""
        errors = [line for line in self.err.splitlines() if line.startswith(("error:", "internal error"))]
        assert len(errors) == 1 and errors[0].startswith("error: "), self.err
        assert "Traceback" not in self.err, self.err
        return errors[0]


def cli(capsys, *args: str) -> Result:
    """`assistant ARGS` in this process (exit status, stdout, stderr)."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return Result(code, out, err)


def cli_process(*args: str, umask: int | None = None, timeout: float = 300, stdin: str | None = "") -> Result:
    """`python -m assistant ARGS` as a real subprocess (same ASSISTANT_HOME), optionally under another umask."""
    preexec = (lambda: os.umask(umask)) if umask is not None else None
    completed = subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        env=dict(os.environ),
        preexec_fn=preexec,
    )
    return Result(completed.returncode, completed.stdout, completed.stderr)


def integrity_ok(store_file: Path | None = None) -> bool:
    """PRAGMA integrity_check on the user's store (a missing store counts as intact: nothing was written)."""
    path = store_file or user_paths().store_file
    if not path.exists():
        return True
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def stored_messages() -> list[tuple[str, str, str]]:
    """(role, status, text) of every stored message, oldest first."""
    path = user_paths().store_file
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        return [tuple(row) for row in conn.execute("SELECT role, status, text FROM messages ORDER BY id")]
