"""The composer: completion menu, attachment chips and prompt, and everything that attaches or detaches a chip.

It owns the pending attachments: image files read off the UI thread, a pasted clipboard, images and text from
plugins, document chips whose pages the question chooses. A question typed while an image is still being read
waits for it (`hold`). When a question is ready to go it posts `Composer.SendRequested`; the app sends it and
takes the attachments with `take()`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message

from ...errors import AssistantError
from ..attachments import Attachment, Attachments, Outgoing
from ..guard import guarded
from ..messages import ImageLoaded, ImagesDone
from .prompt import Chip, ChipBar, CompletionMenu, PromptArea

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger(__name__)

Fit = Callable[[Any, str, list[Any]], Any]
"""`fit(document_context, question, other_images)`: the document's pages fitted to the model's context."""


class Composer(Vertical):
    """Completion menu, chips and prompt, stacked at the bottom of the chat; the pending attachments."""

    class SendRequested(Message):
        """A question is ready to go with the attachments (after its images were read or its pages chosen)."""

        def __init__(self, question: str, extra: dict[str, Any] | None = None) -> None:
            super().__init__()
            self.question = question
            self.extra = extra

    class ImageAttached(Message):
        """An image chip was added: the app may encode it while the question is typed."""

        def __init__(self, image: Any) -> None:
            super().__init__()
            self.image = image
            """The chip's PIL image (RGB), the pixels the reply will send."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.menu = CompletionMenu(id="completions")
        self.menu.display = False
        self.chips = ChipBar(id="chips")
        self.chips.display = False
        self.prompt = PromptArea(self.menu, id="prompt")
        self.attachments = Attachments()
        self._image_loads = 0
        self._held_question: str | None = None
        self._choosing_pages = False

    def compose(self) -> ComposeResult:
        yield self.menu
        yield self.chips
        yield self.prompt

    def report_error(self, error: BaseException, what: str) -> None:
        self.app.report_error(error, what)  # type: ignore[attr-defined]

    # --- what the app asks ---------------------------------------------------------------------------------

    @property
    def reading(self) -> bool:
        """True while images are being read (a question sent now waits for their chips)."""
        return self._image_loads > 0

    def hold(self, question: str) -> None:
        """Send `question` when the images being read are chips."""
        self._held_question = question

    def take(self) -> tuple[list[Attachment], Outgoing]:
        """The pending attachments (as listed, and as sent), cleared from the composer."""
        items = list(self.attachments.items)
        outgoing = self.attachments.take()
        self.chips.clear_chips()
        return items, outgoing

    def give_back(self, items: list[Attachment]) -> None:
        """Attachments of a message that was taken back return as chips."""
        for item in items:
            if item.image is not None:
                self._add_chip(self.attachments.add_image(item.image))
            elif item.video is not None:
                self._add_chip(self.attachments.add_video(item.video))
            else:
                self._add_chip(self.attachments.add_text(item.text, item.source))

    def _add_chip(self, attachment: Attachment) -> None:
        self.chips.add_chip(attachment)
        if attachment.image is not None:
            self.post_message(self.ImageAttached(attachment.image.image))

    def _send(self, question: str, extra: dict[str, Any] | None = None) -> None:
        self.post_message(self.SendRequested(question, extra))

    # --- images --------------------------------------------------------------------------------------------

    def attach_image_files(self, paths: list[Path]) -> None:
        """Read and check image files off the UI thread; each becomes a chip."""
        self._image_loads += 1
        self._load_images(paths)

    @work(thread=True, group="attach", exit_on_error=False)
    def _load_images(self, paths: list[Path]) -> None:
        from ...images import load_image_file

        for path in paths:
            image = self._read_for_chip(load_image_file, path)
            if image is not None:
                self.post_message(ImageLoaded(image))
        self.post_message(ImagesDone())

    def _read_for_chip(self, read: "Callable[[Path], Any]", path: Path) -> Any:
        """`read(path)` on the worker thread; a file that cannot be attached is a notice (None), never a crash."""
        try:
            return read(path)
        except AssistantError as error:
            self.app.call_from_thread(self.notify, str(error), severity="error", markup=False)
        except Exception as error:  # noqa: BLE001
            log.exception("reading %s failed", path)
            self.app.call_from_thread(
                self.notify, f"cannot attach {path}: {type(error).__name__}: {error}", severity="error", markup=False
            )
        return None

    @guarded
    def on_image_loaded(self, event: ImageLoaded) -> None:
        event.stop()
        if self.is_attached:
            self._add_chip(self.attachments.add_image(event.image))

    @guarded
    def on_images_done(self, event: ImagesDone) -> None:
        event.stop()
        self._image_loads = max(0, self._image_loads - 1)
        if self._image_loads == 0 and self._held_question is not None and self.is_attached:
            question, self._held_question = self._held_question, None
            self._send(question)

    # --- videos --------------------------------------------------------------------------------------------

    load_video: "Callable[[Path], Any] | None" = None
    """Samples a video file's frames and stores them (the app sets it to its Assistant's `load_video`)."""

    def attach_video_files(self, paths: list[Path]) -> None:
        """Sample and store video files' frames off the UI thread (the model loads first: its video processor says
        how); each becomes a chip. A question sent meanwhile waits for it, as for images."""
        self._image_loads += 1
        self._load_videos(paths)

    @work(thread=True, group="attach", exit_on_error=False)
    def _load_videos(self, paths: list[Path]) -> None:
        for path in paths:
            part = self._read_for_chip(self._sample_video, path)
            if part is not None:
                self.app.call_from_thread(self._add_video_chip, part)
        self.post_message(ImagesDone())

    def _sample_video(self, path: Path) -> Any:
        if self.load_video is None:
            raise AssistantError("videos cannot be attached before the profile is open; try again")
        return self.load_video(path)

    @guarded
    def _add_video_chip(self, part: Any) -> None:
        if not self.is_attached:
            return
        if any(item.kind == "video" for item in self.attachments.items):
            self.notify("one video a question: remove the other video's chip first", severity="warning", markup=False)
            return
        self._add_chip(self.attachments.add_video(part))

    @guarded
    def attach_pil_image(self, image: "Image", source: str) -> None:
        """An image from a plugin (screenshot, PDF page) becomes a chip."""
        from ...images import image_from_pil

        self._add_chip(self.attachments.add_image(image_from_pil(image, source)))

    @guarded
    def attach_text(self, text: str, source: str) -> None:
        """Text from a plugin (a PDF's text layer) goes before the next question."""
        if text.strip():
            self._add_chip(self.attachments.add_text(text, source))

    @guarded
    def attach_document(self, source: str, choose: Callable[[str], Any]) -> None:
        """A document from a plugin (/pdf FILE): its chip waits for the question, which chooses its pages."""
        self._add_chip(self.attachments.add_document(source, choose))

    # --- documents: the question chooses the pages -----------------------------------------------------------

    def choose_document_pages(self, question: str, fit: Fit | None) -> None:
        """Turn the document chips into the pages that best match `question` (off the UI thread), then send it.

        `fit` counts with the model's own processor (None before the model is loaded)."""
        if self._choosing_pages:
            self.notify("still choosing the pages for the last question; a moment", severity="warning")
            if not self.prompt.text:
                self.prompt.set_prompt(question)
            return
        self._choosing_pages = True
        others = [item.image.image for item in self.attachments.items if item.image is not None]
        self._choose_pages(question, self.attachments.documents, others, fit)

    @work(thread=True, group="attach", exit_on_error=False)
    def _choose_pages(self, question: str, documents: list[Attachment], others: list[Any], fit: Fit | None) -> None:
        chosen: list[Any] = []
        try:
            for item in documents:
                assert item.choose is not None
                context = item.choose(question)
                if fit is not None:  # before the model is loaded the engine trims history only
                    context = fit(context, question, others)
                chosen.append(context)
        except AssistantError as error:
            self.app.call_from_thread(self._pages_not_chosen, question, str(error))
            return
        except Exception as error:  # noqa: BLE001 - a plugin's bug: reported, the question kept
            log.exception("choosing document pages failed")
            self.app.call_from_thread(self._pages_not_chosen, question, f"choosing pages failed: {type(error).__name__}: {error}")
            return
        self.app.call_from_thread(self._pages_chosen, question, documents, chosen)

    def _pages_not_chosen(self, question: str, message: str) -> None:
        self._choosing_pages = False
        self.notify(message, severity="error", markup=False)
        if self.is_attached and not self.prompt.text:
            self.prompt.set_prompt(question)  # the question comes back; the document chip stays

    @guarded
    def _pages_chosen(self, question: str, documents: list[Attachment], chosen: list[Any]) -> None:
        self._choosing_pages = False
        if not self.is_attached:
            return
        notes = []
        for item, context in zip(documents, chosen):
            self.attachments.remove(item)
            self.chips.remove_chip(item)
            for image, source in context.images:
                self.attach_pil_image(image, source)
            if context.text:
                self.attach_text(context.text, f"{context.name} text")
            notes.append(context.footer)
        self._send(question, {"notes": notes})

    # --- paste, and taking chips away ----------------------------------------------------------------------

    def on_prompt_area_paths_pasted(self, event: PromptArea.PathsPasted) -> None:
        event.stop()
        self.attach_image_files(list(event.paths))

    def on_prompt_area_paste_requested(self, event: PromptArea.PasteRequested) -> None:
        """Ctrl+V: the clipboard is read off the UI thread (a question sent meanwhile waits for the chip)."""
        event.stop()
        self._image_loads += 1
        self._paste_clipboard(self.app.clipboard)

    @work(thread=True, group="attach", exit_on_error=False)
    def _paste_clipboard(self, local_text: str) -> None:
        from ...images import load_image_bytes
        from ..clipboard import read_clipboard

        call = self.app.call_from_thread
        try:
            content = read_clipboard()
            if content.image is not None:
                self.post_message(ImageLoaded(load_image_bytes(content.image, "clipboard", f"the clipboard's {content.image_type}")))
            elif content.text:
                call(self._paste_text, content.text)
            else:
                call(self.notify, "the clipboard is empty: nothing to paste", severity="warning")
        except AssistantError as error:
            if local_text:  # no system clipboard here: paste what was copied inside the app, and say why
                call(self._paste_text, local_text)
                call(self.notify, f"{error} (pasted the text copied in this app)", severity="warning", markup=False,
                     timeout=10)
            else:
                call(self.notify, str(error), severity="error", markup=False, timeout=10)
        except Exception as error:  # noqa: BLE001 - a bug: logged, shown, the app stays up
            log.exception("pasting from the clipboard failed")
            call(self.notify, f"pasting failed: {type(error).__name__}: {error}", severity="error", markup=False)
        finally:
            self.post_message(ImagesDone())

    def _paste_text(self, text: str) -> None:
        """Pasted text goes in at the cursor; text that names image files attaches them, as a terminal paste does."""
        from ..completion import image_paths_in_paste

        paths = image_paths_in_paste(text)
        if paths:
            self.attach_image_files(paths)
        else:
            self.prompt.insert(text)

    def on_chip_remove_requested(self, event: Chip.RemoveRequested) -> None:
        event.stop()
        self.attachments.remove(event.chip.attachment)
        self.chips.remove_chip(event.chip.attachment)
        self.prompt.focus()

    def on_prompt_area_remove_last_attachment(self, event: PromptArea.RemoveLastAttachment) -> None:
        event.stop()
        if self.attachments.items:
            last = self.attachments.items[-1]
            self.attachments.remove(last)
            self.chips.remove_chip(last)
