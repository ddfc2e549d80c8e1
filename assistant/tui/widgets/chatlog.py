"""The chat log: user messages with their thumbnails, assistant replies streamed as Markdown, notices."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Protocol, Sequence, Union

from PIL import Image as PILImage
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message as TextualMessage
from textual.widgets import Markdown, Static
from textual.widgets.markdown import MarkdownStream

from ...conversation import Message
from ..config import REPLY
from ..format import reply_footer, user_display_text
from ..guard import guard_callback, report
from ..keys import bindings
from ..screens.dialogs import EditorDialog
from .thumbnail import Thumbnail

ThumbSource = tuple[Union[PILImage.Image, Path], str]
"""An image (bitmap or stored file) and its caption."""

WELCOME = (
    "Ask about an image, a screenshot or a document.\n"
    "Paste or drop an image file to attach it, or type /image PATH. Enter sends, Ctrl+J adds a line.\n"
    "F1 lists every key and command · Ctrl+P opens the command palette · Ctrl+B shows your saved chats."
)


class UserMessage(Vertical):
    """A question as sent: its text, thumbnails of its images and labels of attached text."""

    def __init__(
        self,
        text: str,
        images: Sequence[ThumbSource] = (),
        attached: Sequence[str] = (),
        renderer: str = "auto",
        message_id: int | None = None,
    ) -> None:
        super().__init__(classes="message user-message")
        self.text = text
        self.message_id = message_id
        self._images = list(images)
        self._attached = list(attached)
        self._renderer = renderer

    def compose(self) -> ComposeResult:
        yield Static("You", classes="role")
        if self._images:
            with Horizontal(classes="thumbnails"):
                for image, caption in self._images:
                    yield Thumbnail(image, caption, renderer=self._renderer, classes="thumbnail")
        if self._attached:
            yield Static("  ".join(self._attached), classes="attached", markup=False)
        yield Static(user_display_text(self.text), classes="body", markup=False)

    def set_text(self, text: str) -> None:
        self.text = text
        for body in self.query(".body"):
            if isinstance(body, Static):
                body.update(user_display_text(text))


class ReplyActions(Static):
    """Clickable actions beside a reply's footer."""

    def __init__(self) -> None:
        super().__init__(
            "[@click=reply('up')]+1[/] [@click=reply('down')]-1[/] "
            "[@click=reply('correct')]correct[/] [@click=reply('copy')]copy[/]",
            classes="reply-actions",
        )

    def action_reply(self, what: str) -> None:
        reply = next((node for node in self.ancestors if isinstance(node, AssistantMessage)), None)
        if reply is not None:
            reply.focus()
            reply.post_message(AssistantMessage.ActionRequested(reply, what))


class AssistantMessage(Vertical, can_focus=True):
    """A reply: Markdown streamed as it is written, a footer with timings and marks, boxes drawn on the image."""

    BINDINGS = bindings(REPLY)

    class ActionRequested(TextualMessage):
        """A click on one of the reply's actions (up, down, correct, copy) or its copy key."""

        def __init__(self, reply: "AssistantMessage", action: str) -> None:
            super().__init__()
            self.reply = reply
            self.action = action

    def __init__(self, message: Message | None = None, timings: bool = True, renderer: str = "auto") -> None:
        super().__init__(classes="message assistant-message")
        self.message = message
        self.timings = timings
        self.renderer = renderer
        self._stream: MarkdownStream | None = None
        self.text = message.text if message is not None else ""
        # The parts are made here and kept: updates never depend on finding them in the DOM (which may be
        # torn down while a worker still reports), and a streamed piece costs no query.
        error = message.meta.error if message is not None and message.meta else None
        self._body = Markdown(self.text, classes="body")
        self._error = Static(f"⚠ {error}" if error else "", classes="reply-error", markup=False)
        self._error.display = bool(error)
        self._footer = Static(self._footer_text(), classes="reply-footer", markup=False)
        self._actions = ReplyActions()
        self._actions.display = message is not None
        self._grounding = Vertical(classes="grounding")
        self._correction = Vertical(classes="correction")

    @property
    def message_id(self) -> int | None:
        return self.message.id if self.message is not None else None

    @property
    def streaming(self) -> bool:
        return self._stream is not None

    def compose(self) -> ComposeResult:
        yield Static("Assistant", classes="role")
        yield self._body
        yield self._error
        with Horizontal(classes="reply-footer-row"):
            yield self._footer
            yield self._actions
        yield self._grounding
        yield self._correction

    def on_mount(self) -> None:
        self._show_correction()

    # --- streaming -------------------------------------------------------------------------------

    def waiting(self, text: str) -> None:
        """Show what the reply waits for (the model loading, the first token)."""
        self._footer.update(text)
        self.add_class("pending")

    def begin(self) -> None:
        self.text = ""
        self._stream = Markdown.get_stream(self._body)
        self.waiting("thinking…")

    async def append(self, piece: str) -> None:
        if self._stream is None:
            self.begin()
        assert self._stream is not None
        if not self.text:
            self._footer.update("writing…")
        self.text += piece
        await self._stream.write(piece)

    async def finish(self, message: Message | None, error: str | None = None) -> None:
        """The reply ended: show the final text, footer, error and actions."""
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        self.remove_class("pending")
        if message is not None:
            self.message = message
            if message.text != self.text:
                self.text = message.text
                await self._body.update(self.text)
        self._error.update(f"⚠ {error}" if error else "")
        self._error.display = bool(error)
        self.refresh_marks()
        self._actions.display = self.message is not None and self.message.id is not None

    # --- marks -----------------------------------------------------------------------------------

    def refresh_marks(self) -> None:
        """Redraw the footer (after a rating or correction) and the correction block."""
        self._footer.update(self._footer_text())
        self._show_correction()

    def show_grounding(self, image: PILImage.Image | None, caption: str) -> None:
        """The reply's boxes and points drawn on its image (or, without a drawing helper, just what was found)."""
        box = self._grounding
        box.remove_children()
        if image is None:
            box.mount(Static(f"Found {caption}", classes="grounding-caption", markup=False))
        else:
            box.mount(Thumbnail(image, f"Found {caption}", renderer=self.renderer, classes="thumbnail grounding-image"))

    def action_copy(self) -> None:
        self.post_message(self.ActionRequested(self, "copy"))

    def _footer_text(self) -> str:
        if self.message is None:
            return ""
        return reply_footer(self.message, timings=self.timings)

    def _show_correction(self) -> None:
        box = self._correction
        if not box.is_attached:
            return
        box.remove_children()
        correction = self.message.correction if self.message is not None else None
        box.display = correction is not None
        if correction is not None:
            box.mount(Static("✎ Your correction (used for training):", classes="correction-title"))
            box.mount(Markdown(correction, classes="correction-body"))


class Notice(Static):
    """A line from the app itself in the log (a load failure, a profile switch)."""

    def __init__(self, text: str, severity: str = "information") -> None:
        super().__init__(text, markup=False, classes=f"notice notice-{severity}")


class ReplyMarks(Protocol):
    """Saving a rating or a correction (the ChatController), and the reply being written (never marked)."""

    job: Any

    def rate(self, message: Message, value: int) -> int: ...

    def correct(self, message: Message, text: str) -> str: ...


class ChatLog(VerticalScroll):
    """All messages of the open chat, kept scrolled to the newest while it grows.

    It owns what is done to a finished reply (rate, correct, copy): the focused one, else the newest; the marks are
    saved through `marks` (the chat controller).
    """

    marks: ReplyMarks | None = None

    def on_mount(self) -> None:
        self.anchor()

    async def reset(self, welcome: bool = True) -> None:
        await self.remove_children()
        if welcome:
            await self.mount(Static(WELCOME, classes="welcome", markup=False))

    async def add(self, widget: Any) -> Any:
        for welcome in self.query(".welcome"):
            await welcome.remove()
        await self.mount(widget)
        self.anchor()
        return widget

    @property
    def replies(self) -> list[AssistantMessage]:
        return list(self.query(AssistantMessage))

    @property
    def questions(self) -> list[UserMessage]:
        return list(self.query(UserMessage))

    async def remove_after_last_question(self) -> None:
        """Take away what follows the last question (the reply about to be written again)."""
        children = list(self.children)
        last = max((index for index, child in enumerate(children) if isinstance(child, UserMessage)), default=None)
        if last is None:
            return
        for child in children[last + 1 :]:
            await child.remove()

    # --- rate, correct, copy the focused or newest finished reply -----------------------------------------------------

    def target_reply(self) -> AssistantMessage | None:
        """The focused reply, else the newest finished one."""
        node = self.screen.focused
        while node is not None:
            if isinstance(node, AssistantMessage):
                return node
            node = node.parent  # type: ignore[assignment]
        finished = [reply for reply in self.replies if reply.message_id is not None and not reply.streaming]
        return finished[-1] if finished else None

    def _finished_target(self, what: str) -> AssistantMessage | None:
        reply = self.target_reply()
        if reply is None or reply.message is None or reply.message_id is None:
            self.notify(f"no reply to {what} yet", severity="warning")
            return None
        job = self.marks.job if self.marks is not None else None
        if reply.streaming or (job is not None and job.widget is reply):
            self.notify(f"wait until the reply is finished to {what} it", severity="warning")
            return None
        return reply

    def rate(self, value: int) -> None:
        """Rate the target reply +1/-1 (the same rating again clears it)."""
        reply = self._finished_target("rate")
        if reply is None or reply.message is None or self.marks is None:
            return
        rating = self.marks.rate(reply.message, value)
        reply.refresh_marks()
        self.notify({1: "rated +1 (good)", -1: "rated -1 (bad)", 0: "rating cleared"}[rating])

    def set_rating(self, value: int) -> None:
        """Give the target reply this rating (0 clears it); unlike `rate`, the same rating again keeps it."""
        reply = self.target_reply()
        current = reply.message.rating if reply is not None and reply.message is not None else None
        if value == 0:
            if current:
                self.rate(current)  # rating again clears it
        elif current != value:
            self.rate(value)

    def correct(self) -> None:
        """Ask for the reply the user wanted; it is kept as training data beside the original."""
        reply = self._finished_target("correct")
        if reply is None or reply.message is None:
            return
        message = reply.message
        self.app.push_screen(
            EditorDialog(
                "Correct the reply",
                message.correction if message.correction is not None else message.text,
                "Write the reply you wanted; it is kept as training data for your adapters and the original stays "
                "in the chat. Ctrl+S saves · Esc cancels · empty text removes the correction.",
            ),
            guard_callback(self._report, functools.partial(self._save_correction, reply)),
        )

    def _save_correction(self, reply: AssistantMessage, text: str | None) -> None:
        if text is None or reply.message is None or reply.message_id is None or self.marks is None:
            return
        outcome = self.marks.correct(reply.message, text)
        if outcome == "unchanged":
            self.notify("the text is unchanged; no correction stored", severity="warning")
            return
        reply.refresh_marks()
        self.notify(f"correction {outcome}")

    def copy_reply(self) -> None:
        reply = self._finished_target("copy")
        if reply is not None:
            self.app.copy_to_clipboard(reply.text)
            self.notify("reply copied to the clipboard")

    def on_assistant_message_action_requested(self, event: AssistantMessage.ActionRequested) -> None:
        event.stop()
        try:
            {"up": functools.partial(self.rate, 1), "down": functools.partial(self.rate, -1), "correct": self.correct,
             "copy": self.copy_reply}[event.action]()
        except Exception as error:  # noqa: BLE001 - e.g. the store is gone: a notice, the chat goes on
            self._report(error, event.action)

    def _report(self, error: BaseException, what: str) -> None:
        report(self.notify, error, what)
