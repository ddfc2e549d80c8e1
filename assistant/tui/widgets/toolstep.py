"""One step of the agent in the chat log: the tool call as a collapsible title, its decision, result and images."""

from __future__ import annotations

import json
from typing import Any, Sequence

from textual.content import Content
from textual.widgets import Collapsible, Static

from ...conversation import ToolCallPart, ToolResultPart
from .thumbnail import Thumbnail

def call_label(call: ToolCallPart) -> str:
    arguments = json.dumps(call.arguments, ensure_ascii=True, sort_keys=True, default=str)
    if len(arguments) > 80:
        arguments = arguments[:77] + "..."
    return f"{call.name or '(malformed call)'} {arguments}"


class ToolStep(Collapsible):
    """`tool screenshot {} · approved · 1 image`, expanded while it runs, collapsed once its result is in.

    Everything shown is plain text (never markup): arguments and results come from the model and the tools.
    """

    def __init__(self, call: ToolCallPart, renderer: str = "auto", status: str = "requested") -> None:
        self.call = call
        self.renderer = renderer
        self.status = status
        self.result: ToolResultPart | None = None
        self._detail = Static("", classes="toolstep-detail", markup=False)
        super().__init__(self._detail, title=self._label_text(), collapsed=False, classes="toolstep")

    def _label_text(self) -> Content:
        return Content(f"tool {call_label(self.call)} · {self.status}")

    def set_status(self, status: str) -> None:
        """The decision or state shown in the title (needs confirmation, approved, denied, running...)."""
        self.status = status
        self.title = self._label_text()  # type: ignore[assignment]

    async def set_result(self, result: ToolResultPart, images: Sequence[tuple[Any, str]] = ()) -> None:
        """Show the result text and thumbnails ((PIL image or path, caption) pairs) and fold the step."""
        self.result = result
        count = f" · {len(images)} image{'s' if len(images) != 1 else ''}" if images else ""
        self.set_status(("error" if result.is_error else "done") + count)
        self._detail.update(Content(result.text or "(no text)"))
        self.set_class(result.is_error, "toolstep-error")
        contents = self.query_one(Collapsible.Contents)
        if images:
            await contents.mount_all(
                Thumbnail(image, caption, renderer=self.renderer, classes="toolstep-image") for image, caption in images
            )
        self.collapsed = not result.is_error
