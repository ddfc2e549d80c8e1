"""The app's attachments: image files read off the UI thread, images and text from plugins, chips removed."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from textual import work

from ..errors import AssistantError
from .attachments import Attachment
from .guard import guarded
from .messages import ImageLoaded, ImagesDone
from .widgets.prompt import Chip, PromptArea

if TYPE_CHECKING:
    from PIL.Image import Image

    from .app import AssistantApp

    _App = AssistantApp
else:
    _App = object

log = logging.getLogger(__name__)


class AttachingMixin(_App):
    """Part of AssistantApp: everything that puts a chip above the prompt or takes one away."""

    def _add_chip(self, attachment: Attachment) -> None:
        self.chips.add_chip(attachment)

    def attach_image_files(self, paths: list[Path]) -> None:
        """Read and check image files off the UI thread; each becomes a chip."""
        self._image_loads += 1
        self._load_images(paths)

    @work(thread=True, group="attach", exit_on_error=False)
    def _load_images(self, paths: list[Path]) -> None:
        from ..images import load_image_file

        for path in paths:
            try:
                image = load_image_file(path)
            except AssistantError as error:
                self.call_from_thread(self.notify, str(error), severity="error", markup=False)
                continue
            except Exception as error:  # noqa: BLE001
                log.exception("reading %s failed", path)
                self.call_from_thread(
                    self.notify, f"cannot attach {path}: {type(error).__name__}: {error}", severity="error", markup=False
                )
                continue
            self.post_message(ImageLoaded(image))
        self.post_message(ImagesDone())

    @guarded
    def on_image_loaded(self, event: ImageLoaded) -> None:
        if self.ui_alive:
            self._add_chip(self.attachments.add_image(event.image))

    @guarded
    async def on_images_done(self, event: ImagesDone) -> None:
        self._image_loads = max(0, self._image_loads - 1)
        if self._image_loads == 0 and self._held_question is not None and self.ui_alive:
            question, self._held_question = self._held_question, None
            if not await self.send(question) and not self.prompt.text:
                self.prompt.set_prompt(question)

    @guarded
    def attach_pil_image(self, image: "Image", source: str) -> None:
        """An image from a plugin (screenshot, PDF page) becomes a chip."""
        from ..images import image_from_pil

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

    _choosing_pages = False

    def choose_document_pages(self, question: str) -> None:
        """Turn the document chips into the pages that best match `question` (off the UI thread), then send it."""
        if self._choosing_pages:
            self.notify("still choosing the pages for the last question; a moment", severity="warning")
            if not self.prompt.text:
                self.prompt.set_prompt(question)
            return
        self._choosing_pages = True
        others = [item.image.image for item in self.attachments.items if item.image is not None]
        ready = self.assistant is not None and self.load_state == "ready"
        self._choose_pages(question, self.attachments.documents, others, ready)

    @work(thread=True, group="attach", exit_on_error=False)
    def _choose_pages(self, question: str, documents: list[Attachment], others: list[Any], ready: bool) -> None:
        from ..documents import fit_to_model

        chosen: list[Any] = []
        try:
            for item in documents:
                assert item.choose is not None
                context = item.choose(question)
                if ready:  # counted with the model's own processor; before it is loaded the engine trims history only
                    context = fit_to_model(self.assistant, context, question, others)
                chosen.append(context)
        except AssistantError as error:
            self.call_from_thread(self._pages_not_chosen, question, str(error))
            return
        except Exception as error:  # noqa: BLE001 - a plugin's bug: reported, the question kept
            log.exception("choosing document pages failed")
            self.call_from_thread(self._pages_not_chosen, question, f"choosing pages failed: {type(error).__name__}: {error}")
            return
        self.call_from_thread(self._pages_chosen, question, documents, chosen)

    def _pages_not_chosen(self, question: str, message: str) -> None:
        self._choosing_pages = False
        self.notify(message, severity="error", markup=False)
        if self.ui_alive and not self.prompt.text:
            self.prompt.set_prompt(question)  # the question comes back; the document chip stays

    @guarded
    async def _pages_chosen(self, question: str, documents: list[Attachment], chosen: list[Any]) -> None:
        self._choosing_pages = False
        if not self.ui_alive:
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
        if not await self.send(question, {"notes": notes}) and not self.prompt.text:
            self.prompt.set_prompt(question)

    def on_prompt_area_paths_pasted(self, event: PromptArea.PathsPasted) -> None:
        self.attach_image_files(list(event.paths))

    def on_prompt_area_paste_requested(self, event: PromptArea.PasteRequested) -> None:
        """Ctrl+V: the clipboard is read off the UI thread (a question sent meanwhile waits for the chip)."""
        self._image_loads += 1
        self._paste_clipboard(self.clipboard)

    @work(thread=True, group="attach", exit_on_error=False)
    def _paste_clipboard(self, local_text: str) -> None:
        from ..images import load_image_bytes
        from .clipboard import read_clipboard

        try:
            content = read_clipboard()
            if content.image is not None:
                self.post_message(ImageLoaded(load_image_bytes(content.image, "clipboard", f"the clipboard's {content.image_type}")))
            elif content.text:
                self.call_from_thread(self._paste_text, content.text)
            else:
                self.call_from_thread(self.notify, "the clipboard is empty: nothing to paste", severity="warning")
        except AssistantError as error:
            if local_text:  # no system clipboard here: paste what was copied inside the app, and say why
                self.call_from_thread(self._paste_text, local_text)
                self.call_from_thread(self.notify, f"{error} (pasted the text copied in this app)", severity="warning",
                                      markup=False, timeout=10)
            else:
                self.call_from_thread(self.notify, str(error), severity="error", markup=False, timeout=10)
        except Exception as error:  # noqa: BLE001 - a bug: logged, shown, the app stays up
            log.exception("pasting from the clipboard failed")
            self.call_from_thread(self.notify, f"pasting failed: {type(error).__name__}: {error}", severity="error",
                                  markup=False)
        finally:
            self.post_message(ImagesDone())

    def _paste_text(self, text: str) -> None:
        """Pasted text goes in at the cursor; text that names image files attaches them, as a terminal paste does."""
        from .completion import image_paths_in_paste

        paths = image_paths_in_paste(text)
        if paths:
            self.attach_image_files(paths)
        else:
            self.prompt.insert(text)

    def on_chip_remove_requested(self, event: Chip.RemoveRequested) -> None:
        self.attachments.remove(event.chip.attachment)
        self.chips.remove_chip(event.chip.attachment)
        self.prompt.focus()

    def on_prompt_area_remove_last_attachment(self, event: PromptArea.RemoveLastAttachment) -> None:
        if self.attachments.items:
            last = self.attachments.items[-1]
            self.attachments.remove(last)
            self.chips.remove_chip(last)

