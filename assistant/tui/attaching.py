"""The app's attachments: image files read off the UI thread, images and text from plugins, chips removed."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

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

    def on_prompt_area_paths_pasted(self, event: PromptArea.PathsPasted) -> None:
        self.attach_image_files(list(event.paths))

    def on_chip_remove_requested(self, event: Chip.RemoveRequested) -> None:
        self.attachments.remove(event.chip.attachment)
        self.chips.remove_chip(event.chip.attachment)
        self.prompt.focus()

    def on_prompt_area_remove_last_attachment(self, event: PromptArea.RemoveLastAttachment) -> None:
        if self.attachments.items:
            last = self.attachments.items[-1]
            self.attachments.remove(last)
            self.chips.remove_chip(last)

