"""Tokenisation for training: the prompt exactly as at inference, labels only on the learned assistant replies.

The chat is rendered with the engine's own `render_chat` (tools and tool calls as at inference). Each learned
reply is a character span of that text: from the end of the prompt the model would get before answering
(rendered with `add_generation_prompt=True`) to the end of its turn marker (`<end_of_utterance>`, `<|im_end|>`),
so the model also learns to stop. Spans become token labels through the tokenizer's offsets; the processor then
expands image placeholders into many image tokens, and a sequence alignment carries the labels across.
Everything else (system, user turns, image tokens, padding, replies not selected for learning) is IGNORE.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from assistant.engine.inputs import conversation_image_parts, image_kwargs, offered_tools, render_chat

from .dataset import Example

if TYPE_CHECKING:
    from PIL.Image import Image

    from assistant.conversation import ImagePart, Message
    from assistant.engine.loading import LoadedModel

IGNORE = -100
"""Label of tokens that are not learned (PyTorch's cross-entropy ignore_index)."""


@dataclass
class Rendered:
    """An example as text, with the character spans of the replies to learn."""

    text: str
    spans: list[tuple[int, int]]
    image_parts: list["ImagePart"] = field(default_factory=list)
    skipped_turns: int = 0
    """Learned replies whose prompt the template renders differently once the reply follows (left out)."""


def _render(
    processor: Any, messages: Sequence["Message"], system_prompt: str, generation_prompt: bool,
    tools: Sequence[dict] | None = None,
) -> str:
    """Through the engine's own `render_chat`: the tools block and the native or fallback tool-call format are
    exactly those of inference."""
    return render_chat(processor, messages, system_prompt, tools, add_generation_prompt=generation_prompt)


def render_example(processor: Any, example: Example, system_prompt: str = "") -> Rendered:
    """The text the model trains on and the spans of the learned replies (end-of-turn marker included).

    An agent chat is rendered with the tool declarations it was answered with (recorded in its replies), so
    every learned reply follows exactly the prompt the model had at inference.
    """
    messages = example.messages[: example.targets[-1] + 1]
    tools = offered_tools(example.messages)
    full = _render(processor, messages, system_prompt, False, tools)
    spans: list[tuple[int, int]] = []
    skipped = 0
    for index in example.targets:
        before = _render(processor, messages[:index], system_prompt, True, tools)
        through = _render(processor, messages[: index + 1], system_prompt, False, tools)
        end = len(through.rstrip())  # the turn marker is learned, the newline the template adds after it is not
        if not (full.startswith(before) and full.startswith(through) and end > len(before)):
            skipped += 1
            continue
        spans.append((len(before), end))
    return Rendered(full, spans, conversation_image_parts(messages), skipped)


def span_labels(tokenizer: Any, text: str, spans: Sequence[tuple[int, int]]) -> tuple[list[int], list[bool]]:
    """Token ids of `text` (no image expansion) and, per token, whether it starts inside a learned span.

    A token that starts before a span and runs into it belongs to the prompt: at inference it is prompt too.
    """
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    learned = [any(start <= offset[0] < end for start, end in spans) for offset in encoded["offset_mapping"]]
    return ids, learned


def align_labels(plain_ids: Sequence[int], learned: Sequence[bool], row_ids: Sequence[int]) -> list[int]:
    """Labels for `row_ids` (the processor's tokens, image placeholders expanded): the learned tokens of
    `plain_ids` carried over through the longest matching blocks; everything else IGNORE."""
    labels = [IGNORE] * len(row_ids)
    matcher = difflib.SequenceMatcher(None, list(plain_ids), list(row_ids), autojunk=False)
    carried = 0
    for block in matcher.get_matching_blocks():
        for offset in range(block.size):
            if learned[block.a + offset]:
                labels[block.b + offset] = row_ids[block.b + offset]
                carried += 1
    expected = sum(1 for flag in learned if flag)
    if carried != expected:
        raise RuntimeError(
            f"label alignment lost {expected - carried} of {expected} learned tokens: the processor changed "
            "reply tokens, not only image placeholders"
        )
    return labels


class Encoder:
    """Turns examples into model inputs with labels, using the loaded model's processor and image settings."""

    def __init__(
        self, loaded: "LoadedModel", open_image: Callable[["ImagePart"], "Image"], system_prompt: str = ""
    ) -> None:
        self.loaded = loaded
        self.open_image = open_image
        self.system_prompt = system_prompt
        self._rendered: dict[int, Rendered] = {}

    @property
    def processor(self) -> Any:
        return self.loaded.processor

    def rendered(self, example: Example) -> Rendered:
        key = id(example)
        if key not in self._rendered:
            self._rendered[key] = render_example(self.processor, example, self.system_prompt)
        return self._rendered[key]

    def image_token_ids(self) -> set[int]:
        ids = set()
        for owner in (self.processor, getattr(self.processor, "tokenizer", None)):
            for attribute in ("image_token_id", "video_token_id"):
                value = getattr(owner, attribute, None)
                if isinstance(value, int):
                    ids.add(value)
        return ids

    def encode(self, examples: Sequence[Example]) -> Any:
        """A padded batch (BatchFeature with `labels`) on the model's device."""
        import torch

        rendered = [self.rendered(example) for example in examples]
        images = [[self.open_image(part) for part in item.image_parts] for item in rendered]
        call: dict[str, Any] = {"text": [item.text for item in rendered], "return_tensors": "pt", "padding": True}
        if any(images):
            call["images"] = images
            call.update(image_kwargs(self.loaded))
        batch = self.processor(**call)
        input_ids = batch["input_ids"]
        attention = batch.get("attention_mask")
        if attention is None:
            attention = torch.ones_like(input_ids)
        labels = torch.full_like(input_ids, IGNORE)
        tokenizer = self.processor.tokenizer
        for row, item in enumerate(rendered):
            plain_ids, learned = span_labels(tokenizer, item.text, item.spans)
            positions = attention[row].nonzero(as_tuple=True)[0]
            row_ids = input_ids[row, positions].tolist()
            row_labels = align_labels(plain_ids, learned, row_ids)
            labels[row, positions] = torch.tensor(row_labels, dtype=labels.dtype)
        for token_id in self.image_token_ids():
            labels[input_ids == token_id] = IGNORE
        batch["labels"] = labels
        return batch

    def count(self, example: Example) -> tuple[int, int]:
        """(tokens, learned tokens) of one example as the model will see it."""
        batch = self.encode([example])
        return int(batch["input_ids"].shape[-1]), int((batch["labels"] != IGNORE).sum())
