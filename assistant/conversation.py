"""Conversations as plain values: messages made of typed parts (text, image, video, tool call, tool result).

Pure Python on purpose: the store, the engine, the plugins and the three surfaces all pass these around,
and none of them should need torch or textual to read a chat.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, Union

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")

Status = Literal["ok", "streaming", "stopped", "failed", "interrupted"]
"""ok: complete; streaming: being generated; stopped: cut short by the user; failed: generation raised;
interrupted: the process writing it ended mid-reply (kill, crash, power loss): its text up to the last save is kept."""


@dataclass
class TextPart:
    text: str
    kind: Literal["text"] = "text"


@dataclass
class ImagePart:
    """An image stored by content: `sha256` names the file in the store's image directory.

    `source` says where it came from for display ("cat.png", "screenshot monitor 1", "report.pdf p.3");
    it is never used to read the image again, so moving or deleting the original breaks nothing.
    """

    sha256: str
    width: int
    height: int
    source: str = ""
    kind: Literal["image"] = "image"


@dataclass
class VideoPart:
    """A video as the frames sampled from it, each stored by content like an image (`frames`: their sha256).

    The model gets the frames with their times, so a saved chat replays without the original file; `source` is
    for display only. `frame_indices` are frame numbers in the original stream, `timestamps` seconds from its
    start, `fps` its frame rate, `sample_fps` the rate asked for (None: frames spread uniformly).
    """

    source: str
    frames: list[str]
    timestamps: list[float]
    frame_indices: list[int]
    width: int
    height: int
    fps: float
    duration: float
    total_frames: int = 0
    sample_fps: float | None = None
    truncated: bool = False
    """The file ended before its stated length (a cut download): the frames cover only what was there."""
    kind: Literal["video"] = "video"


@dataclass
class ToolCallPart:
    name: str
    arguments: dict[str, Any]
    call_id: str = ""
    kind: Literal["tool_call"] = "tool_call"


@dataclass
class ToolResultPart:
    call_id: str
    name: str
    text: str = ""
    is_error: bool = False
    kind: Literal["tool_result"] = "tool_result"


Part = Union[TextPart, ImagePart, VideoPart, ToolCallPart, ToolResultPart]


@dataclass
class ReplyMeta:
    """What produced an assistant reply and how fast: stored with the message."""

    profile: str = ""
    model: str = ""
    adapter: str | None = None
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Message:
    role: Role
    parts: list[Part] = field(default_factory=list)
    id: int | None = None
    created_at: float = field(default_factory=time.time)
    status: Status = "ok"
    rating: int = 0
    """+1 rated up, -1 rated down, 0 not rated (assistant messages only)."""
    correction: str | None = None
    """The user's corrected text for an assistant reply; it replaces the reply when training."""
    meta: ReplyMeta | None = None

    @property
    def text(self) -> str:
        """All text parts joined: what a person reads as this message."""
        return "".join(part.text for part in self.parts if isinstance(part, TextPart))

    @property
    def images(self) -> list[ImagePart]:
        return [part for part in self.parts if isinstance(part, ImagePart)]

    @property
    def videos(self) -> list[VideoPart]:
        return [part for part in self.parts if isinstance(part, VideoPart)]

    @property
    def tool_calls(self) -> list[ToolCallPart]:
        return [part for part in self.parts if isinstance(part, ToolCallPart)]

    @property
    def training_text(self) -> str:
        """The text to learn from: the user's correction when there is one."""
        return self.correction if self.correction is not None else self.text


@dataclass
class Conversation:
    id: int | None = None
    title: str = ""
    profile: str = ""
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    messages: list[Message] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    @property
    def images(self) -> list[ImagePart]:
        return [image for message in self.messages for image in message.images]

    def last(self, role: Role) -> Message | None:
        for message in reversed(self.messages):
            if message.role == role:
                return message
        return None


def part_to_dict(part: Part) -> dict[str, Any]:
    """A JSON-ready dict of a part (the store and exports use it)."""
    from dataclasses import asdict

    return asdict(part)


def part_from_dict(data: dict[str, Any]) -> Part:
    """The inverse of part_to_dict; unknown kinds raise ValueError."""
    kinds: dict[str, type] = {
        "text": TextPart,
        "image": ImagePart,
        "video": VideoPart,
        "tool_call": ToolCallPart,
        "tool_result": ToolResultPart,
    }
    kind = data.get("kind")
    if kind not in kinds:
        raise ValueError(f"unknown message part kind {kind!r}")
    return kinds[kind](**data)
