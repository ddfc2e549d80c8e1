"""Which files the user attached or named in a chat: the paths a file-reading tool may open without asking.

Only the user's own words count: the questions of `user` messages (without a document's text attached before
them) and the names of what the user attached. Replies and tool results never do, so a path written by the
model or found in a web page, a PDF or any other tool result cannot approve reading that file.
Pure Python: the conversation's messages in, plain strings out.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from .conversation import Message

_TOKEN = re.compile(r'"([^"\n]+)"|\'([^\'\n]+)\'|`([^`\n]+)`|(\S+)')
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,5}$")
_STRIP = "\"'`.,;:!?()[]{}<>"


def path_tokens(text: str) -> list[str]:
    """The words of `text` that look like file paths: quoted or bare, with a directory part, ~ or a file extension."""
    found = []
    for match in _TOKEN.finditer(text):
        token = next(group for group in match.groups() if group is not None).strip()
        if match.group(4) is not None:
            token = token.lstrip("\"'`([{<").rstrip(_STRIP)
        if token and ("/" in token or "\\" in token or token.startswith("~") or _EXTENSION.search(token)):
            found.append(token)
    return found


def _questions(messages: Sequence[Message]) -> Iterator[str]:
    """What the user typed in each `user` message. When a document's text was attached to the message (the next
    reply's metadata lists `attached`), that text comes first and only the last paragraph, the question, counts:
    a path inside an attached document is not one the user named."""
    for index, message in enumerate(messages):
        if message.role != "user":
            continue
        reply = next((later for later in messages[index + 1 :] if later.role == "assistant"), None)
        attached = reply is not None and reply.meta is not None and reply.meta.extra.get("attached")
        text = message.text
        yield text.rstrip().rsplit("\n\n", 1)[-1] if attached else text


def _attached_names(messages: Sequence[Message]) -> set[str]:
    """File names of what the user attached (image sources such as `report.pdf page 2`, attached documents)."""
    names: set[str] = set()
    for index, message in enumerate(messages):
        sources: list[str] = []
        if message.role == "user":
            sources += [image.source for image in message.images]
        elif message.role == "assistant" and message.meta is not None and index > 0:
            attached = message.meta.extra.get("attached")
            if isinstance(attached, list) and any(m.role == "user" for m in messages[:index]):
                sources += [str(item) for item in attached]
        for source in sources:
            names.update(Path(token).name for token in path_tokens(source or ""))
    return names


def resolve(path: str, cwd: Path | None = None) -> Path:
    """The absolute, symlink-free form of a path as typed (~ expanded, relative to `cwd` or the working folder)."""
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = (cwd or Path.cwd()) / candidate
    return Path(os.path.realpath(candidate))


def _resolved(path: str, cwd: Path | None) -> Path | None:
    try:
        return resolve(path, cwd)
    except (ValueError, OSError, RuntimeError):  # a NUL byte, an unknown ~user: no file the user named
        return None


def unnamed_paths(values: Iterable[str], messages: Sequence[Message], cwd: Path | None = None) -> list[str]:
    """The paths in `values` the user neither named (typed) nor attached in this chat.

    A typed path matches the same file however it is written (./a.pdf, ~/a.pdf, a symlink to it); an attached
    file is known by its name only, so it matches only a bare name (`report.pdf`), never another folder's file.
    """
    named = {_resolved(token, cwd) for text in _questions(messages) for token in path_tokens(text)} - {None}
    names = _attached_names(messages)
    unknown = []
    for value in values:
        if _resolved(value, cwd) in named:
            continue
        if Path(value).name == value and value in names:
            continue
        unknown.append(value)
    return unknown
