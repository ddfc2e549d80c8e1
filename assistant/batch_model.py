"""Answering batch items with the profile's model through the ModelBackend seam, and reading their images.

Each item is a one-turn conversation (its image, then its question) handed to `backend.stream`; with
`--batch-size N` and a backend that offers `answer_batch` (the transformers backend), a group of N goes through one
`generate` call instead. Nothing is stored as a chat unless `--save` asks for it (`save_as_chat`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from .batch import Answer, BatchItem, Prepared
from .conversation import ImagePart, Message, ReplyMeta, TextPart
from .errors import AssistantError
from .hooktypes import GenerationRequest, PageRequest

if TYPE_CHECKING:
    from .api import Assistant, GenerationOptions

log = logging.getLogger(__name__)


def image_key(prepared: Prepared) -> str:
    """The content hash that names the item's image for the engine (its KV cache matches images by it).

    An image file's own hash; a PDF page's hash is that of its rendered pixels (the file's hash is shared by
    every page)."""
    if prepared.item.page is None:
        return prepared.sha256
    image = prepared.image
    return hashlib.sha256(f"{image.width}x{image.height}".encode() + image.tobytes()).hexdigest()


class ImageReader:
    """Decodes image files (checked like attachments) and renders PDF pages (through the `render_page` hook)."""

    def __init__(self, plugins: Any) -> None:
        self.plugins = plugins

    def page_count(self, path: Any) -> int:
        found = self.plugins.call_first("page_text", request=PageRequest(path=path, page=1))
        if found is None:
            raise AssistantError(f"cannot read {path.name}: no plugin reads PDFs (is the built-in pdf plugin disabled?)")
        return int(found.page_count)

    def __call__(self, item: BatchItem, data: bytes | None) -> Any:
        from .images import load_image_bytes

        if item.page is None:
            return load_image_bytes(data or b"", source=item.path.name, label=item.input).image
        rendered = self.plugins.call_first("render_page", request=PageRequest(path=item.path, page=item.page))
        if rendered is None:
            raise AssistantError(f"cannot render page {item.page} of {item.input}: no plugin reads PDFs")
        return rendered.image.convert("RGB")


class ModelAnswerer:
    """Answers groups of prepared items (the `answer_many` of a BatchRun); `cancel()` (Ctrl+C) stops the current one."""

    def __init__(self, assistant: "Assistant", options: "GenerationOptions", ground: bool = False) -> None:
        self.assistant = assistant
        self.options = options
        self.ground = ground
        self.stop = threading.Event()
        self._current: Any = None
        self.batched = callable(getattr(assistant.backend, "answer_batch", None))
        """The backend answers a group in one generate call (else one after another)."""

    def cancel(self) -> None:
        self.stop.set()
        current = self._current
        if current is not None:
            current.cancel()

    def request(self, prepared: Prepared) -> GenerationRequest:
        image = prepared.image
        part = ImagePart(sha256=image_key(prepared), width=image.width, height=image.height, source=prepared.item.input)
        message = Message(role="user", parts=[part, TextPart(prepared.item.question)])
        profile = self.assistant.profile
        return GenerationRequest(
            messages=[message],
            open_image=lambda _part: image,
            settings=self.options.settings(profile),
            max_new_tokens=self.options.max_new_tokens,
            system_prompt=self.options.system_prompt(profile),
            started_at=time.perf_counter(),
        )

    def __call__(self, group: list[Prepared]) -> list[Answer]:
        if len(group) > 1 and self.batched:
            return self._batched(group)
        return [self._one(prepared) for prepared in group]

    def _one(self, prepared: Prepared) -> Answer:
        if self.stop.is_set():
            return Answer(stopped=True)
        started = time.perf_counter()
        request = self.request(prepared)
        try:
            events = self.assistant.backend.stream(request)
            self._current = events
            if self.stop.is_set():
                events.cancel()
            text = "".join(events)
        except AssistantError as error:
            return Answer(error=str(error), seconds=time.perf_counter() - started)
        except Exception as error:  # noqa: BLE001 - one input's failure is its error line; the run goes on
            log.exception("batch: generation failed for %s", prepared.item.input)
            return Answer(error=f"generation failed: {type(error).__name__}: {error}".splitlines()[0],
                          seconds=time.perf_counter() - started)
        finally:
            self._current = None
        stats = events.stats
        if stats.stopped:
            return Answer(stopped=True)
        answer = Answer(text=text, prompt_tokens=stats.prompt_tokens, completion_tokens=stats.completion_tokens,
                        seconds=time.perf_counter() - started)
        if self.ground:
            answer.grounding = self._ground(prepared, request, stats.raw_text or text, events.input_sizes)
        return answer

    def _batched(self, group: list[Prepared]) -> list[Answer]:
        if self.stop.is_set():
            return [Answer(stopped=True) for _ in group]
        requests = [self.request(prepared) for prepared in group]
        try:
            replies = self.assistant.backend.answer_batch(requests, self.stop)
        except AssistantError as error:
            log.info("batch: a group of %d could not run together (%s); answering one by one", len(group), error)
            return [self._one(prepared) for prepared in group]
        except Exception:  # noqa: BLE001 - the group is answered one by one, each failure its own error line
            log.exception("batch: batched generation failed; answering one by one")
            return [self._one(prepared) for prepared in group]
        answers: list[Answer] = []
        for prepared, request, reply in zip(group, requests, replies):
            stats = reply.stats
            if stats.stopped:
                answers.append(Answer(stopped=True))
                continue
            answer = Answer(text=reply.text, prompt_tokens=stats.prompt_tokens,
                            completion_tokens=stats.completion_tokens, seconds=stats.total_s)
            if self.ground:
                answer.grounding = self._ground(prepared, request, stats.raw_text or reply.text, reply.input_sizes)
            answers.append(answer)
        return answers

    def _ground(
        self, prepared: Prepared, request: GenerationRequest, text: str, input_sizes: dict[str, tuple[int, int]]
    ) -> dict[str, Any] | None:
        """Boxes/points in the answer, in pixels of the original image (or rendered page), in the profile's format."""
        from .geometry import rounded_shape_dict
        from .grounding import grounding_formats, parse_with_fallback

        image = prepared.image
        key = request.messages[0].parts[0].sha256  # type: ignore[union-attr]
        settings = self.assistant.profile.grounding
        try:
            grounding = parse_with_fallback(
                grounding_formats(self.assistant.plugins), settings.format, settings.coordinates, text,
                (image.width, image.height), input_sizes.get(key),
            )
        except AssistantError as error:
            return {"error": str(error), "shapes": []}
        if grounding is None:
            return None
        result: dict[str, Any] = {
            "format": grounding.format,
            "image_size": [image.width, image.height],
            "shapes": [rounded_shape_dict(shape) for shape in grounding.shapes],
        }
        if grounding.raw.get("error"):
            result["error"] = str(grounding.raw["error"])
        return result


def save_as_chat(assistant: "Assistant", prepared: Prepared, answer: Answer) -> int:
    """Store one answered item as a chat (image + question, then the answer) so it can be rated, corrected and
    trained on like any other; returns the chat's id."""
    from pathlib import Path

    from .images import image_from_pil, load_image_bytes

    store = assistant.store
    item = prepared.item
    source = Path(item.input).name + (f" p.{item.page}" if item.page is not None else "")
    if item.page is None:
        loaded = load_image_bytes(item.path.read_bytes(), source=source, label=item.input)
    else:
        loaded = image_from_pil(prepared.image, source)
    part = store.put_image(loaded)
    profile = assistant.profile
    conversation = store.create_conversation(title=f"{item.question[:60]} — {source}", profile=profile.name, tags=["batch"])
    assert conversation.id is not None
    store.add_message(conversation.id, Message(role="user", parts=[part, TextPart(item.question)]))
    meta = ReplyMeta(profile=profile.name, model=profile.model_label, adapter=assistant.adapter,
                     prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens,
                     extra={"batch": True})
    if answer.grounding and answer.grounding.get("shapes"):
        meta.extra["grounding"] = {**answer.grounding, "image": part.sha256}
    store.add_message(conversation.id, Message(role="assistant", parts=[TextPart(answer.text)], meta=meta))
    return conversation.id
