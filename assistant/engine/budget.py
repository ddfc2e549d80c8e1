"""Counting a question's prompt tokens before it is sent, so that a document's pages can be fitted to the context.

The count is the model's own: the same chat template and processor that `Engine.prepare` uses, on the
engine thread, for a one-message conversation (older turns are the engine's to drop when the context fills).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..conversation import ImagePart, Message, TextPart
from . import executor
from .inputs import build_inputs

if TYPE_CHECKING:
    from PIL.Image import Image


def question_measure(
    assistant: Any, question: str, other_images: Sequence["Image"] = (), system_prompt: str | None = None
) -> tuple[Callable[[list["Image"], str], int], int] | None:
    """(measure, context limit) for `question` asked with `other_images` and a document's parts.

    `measure(images, context_text)` is the prompt length in tokens of the user message that `Chat.stream`
    would store: the other images, then `images`, then `context_text` before the question. Loads the model.
    None for a backend without the in-process engine (a server counts its own tokens).
    """
    backend = assistant.load()
    engine = getattr(backend, "engine", backend)  # the transformers backend wraps the Engine
    loaded = getattr(engine, "loaded", None)
    if loaded is None or not getattr(loaded, "processor", None):
        return None
    system = assistant.profile.chat.system_prompt if system_prompt is None else system_prompt
    fixed = list(other_images)

    def measure(images: list["Image"], context_text: str) -> int:
        pictures = fixed + list(images)
        parts: list[Any] = [
            ImagePart(sha256=f"measure-{number}", width=image.width, height=image.height)
            for number, image in enumerate(pictures)
        ]
        body = f"{context_text.rstrip()}\n\n{question}" if context_text.strip() else question
        message = Message(role="user", parts=[*parts, TextPart(body)])
        lookup = {part.sha256: image for part, image in zip(parts, pictures)}
        # The parts are named by position, not content: nothing processed for one call may serve another.
        inputs = executor.run(build_inputs, loaded, [message], lambda part: lookup[part.sha256], system,
                              reuse_processed=False)
        return inputs.prompt_tokens

    return measure, int(loaded.context_limit)
