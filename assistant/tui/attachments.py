"""What waits to be sent with the next message: images and document text, numbered and shown as chips."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from ..images import LoadedImage


@dataclass
class Attachment:
    """One chip: an image (ready to store), a block of text (e.g. a PDF's text layer), or a document whose
    pages are chosen by the question when it is sent (`choose(question)` -> assistant.documents.DocumentContext)."""

    kind: Literal["image", "text", "document", "video"]
    number: int
    source: str
    image: LoadedImage | None = None
    text: str = ""
    choose: Callable[[str], Any] | None = None
    video: Any = None
    """A video's stored frames (conversation.VideoPart), for kind "video"."""

    @property
    def label(self) -> str:
        """`[Image #1 cat.png 640x480]`, `[Text #1 report.pdf p.2 1,234 chars]` or `[Document #1 manual.pdf ...]`."""
        if self.image is not None:
            return f"[Image #{self.number} {self.source} {self.image.width}x{self.image.height}]"
        if self.kind == "document":
            return f"[Document #{self.number} {self.source}: pages chosen by your question]"
        if self.kind == "video":
            from ..video import describe

            return f"[Video #{self.number} {describe(self.video)}]"
        return f"[Text #{self.number} {self.source} {len(self.text):,} chars]"


@dataclass
class Outgoing:
    """What one message sends along with its question."""

    images: list[LoadedImage] = field(default_factory=list)
    context_text: str = ""
    sources: list[str] = field(default_factory=list)
    videos: list[Any] = field(default_factory=list)
    """Stored videos (conversation.VideoPart) to ask about: at most one a message."""


@dataclass
class Attachments:
    """The pending chips, in order. Numbers count per kind and restart after each message."""

    items: list[Attachment] = field(default_factory=list)
    _next: dict[str, int] = field(default_factory=lambda: {"image": 1, "text": 1, "document": 1, "video": 1})

    def add_image(self, image: LoadedImage) -> Attachment:
        return self._add(Attachment("image", self._take_number("image"), image.source, image=image))

    def add_text(self, text: str, source: str) -> Attachment:
        return self._add(Attachment("text", self._take_number("text"), source, text=text))

    def add_video(self, part: Any) -> Attachment:
        """A video whose frames are sampled and stored (`part`: conversation.VideoPart)."""
        return self._add(Attachment("video", self._take_number("video"), part.source, video=part))

    def add_document(self, source: str, choose: Callable[[str], Any]) -> Attachment:
        return self._add(Attachment("document", self._take_number("document"), source, choose=choose))

    @property
    def documents(self) -> list[Attachment]:
        """Documents whose pages wait for the question (the app turns them into image and text chips first)."""
        return [item for item in self.items if item.kind == "document"]

    def remove(self, attachment: Attachment) -> None:
        if attachment in self.items:
            self.items.remove(attachment)

    def take(self) -> Outgoing:
        """Everything pending, as the next message's images and context; the chips are cleared."""
        images = [item.image for item in self.items if item.image is not None]
        texts = [item for item in self.items if item.kind == "text"]
        if len(texts) == 1:
            context = texts[0].text
        else:
            context = "\n\n".join(f"[{item.source}]\n{item.text}" for item in texts)
        outgoing = Outgoing(images=images, context_text=context, sources=[item.source for item in self.items])
        outgoing.videos = [item.video for item in self.items if item.kind == "video"]
        self.clear()
        return outgoing

    def clear(self) -> None:
        self.items.clear()
        self._next = {"image": 1, "text": 1, "document": 1}

    def __len__(self) -> int:
        return len(self.items)

    def _take_number(self, kind: str) -> int:
        number = self._next[kind]
        self._next[kind] = number + 1
        return number

    def _add(self, attachment: Attachment) -> Attachment:
        self.items.append(attachment)
        return attachment
