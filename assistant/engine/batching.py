"""Real batched generation: several one-turn prompts (each with its images) through one `generate` call.

The prompts are left-padded into one tensor (attention mask marks the padding), the processor encodes every
image of the group in one go, and greedy answers are the same tokens as one by one (tests compare them). Used by
`assistant batch --batch-size N`; a chat's turn still goes through `Engine.stream` (KV reuse, fused decode).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import AssistantError
from ..hooktypes import GenerationRequest, GenerationStats
from .generation import sampling_kwargs
from .inputs import conversation_image_parts, grid_sizes, image_kwargs, render_chat
from .memory import trim_freed_memory

if TYPE_CHECKING:
    from .loading import LoadedModel


@dataclass
class BatchedReply:
    """One answer of a batched call: its text, stats (prompt/completion tokens, total seconds of the whole call)
    and the sizes the model saw its images at (for grounding)."""

    text: str
    stats: GenerationStats
    input_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)


class _Stop:
    """A StoppingCriteria that ends every row of the batch when `event` is set (Ctrl+C)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def _eos_ids(loaded: "LoadedModel") -> set[int]:
    eos = getattr(getattr(loaded.model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = loaded.tokenizer.eos_token_id
    if eos is None:
        return set()
    return {int(token) for token in (eos if isinstance(eos, (list, tuple)) else [eos])}


def generate_batch(
    loaded: "LoadedModel", requests: Sequence[GenerationRequest], stop: threading.Event | None = None
) -> list[BatchedReply]:
    """Answer every request (each a one-turn conversation) with one `generate` call; run on the engine thread.

    All requests share the first one's settings and max_new_tokens. A stopped call (`stop` set) returns replies
    whose `stats.stopped` is True.
    """
    import torch
    from transformers import StoppingCriteriaList

    started = time.perf_counter()
    first = requests[0]
    processor = loaded.processor
    tokenizer = loaded.tokenizer
    prompts = [render_chat(processor, request.messages, request.system_prompt) for request in requests]
    parts = [conversation_image_parts(request.messages) for request in requests]
    images = [[request.open_image(part) for part in found] for request, found in zip(requests, parts)]
    call: dict[str, Any] = {"text": prompts, "return_tensors": "pt", "padding": True}
    if any(images):
        call["images"] = images
        call.update(image_kwargs(loaded))
    saved_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues every row from its last real token
    try:
        tensors = processor(**call)
    finally:
        tokenizer.padding_side = saved_side
    tensors = tensors.to(loaded.device)
    needed = int(tensors["input_ids"].shape[-1]) + int(first.max_new_tokens or first.settings.max_new_tokens)
    if loaded.context_limit and needed > loaded.context_limit:
        raise AssistantError(
            f"this group needs {needed} tokens of context but the limit is {loaded.context_limit}; "
            "use a smaller --batch-size, fewer --max-tokens or a quick image profile"
        )
    kwargs = sampling_kwargs(first.settings, first.max_new_tokens)
    if first.settings.seed >= 0 and kwargs.get("do_sample"):
        torch.manual_seed(first.settings.seed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    event = stop or threading.Event()
    try:
        with torch.inference_mode():
            sequences = loaded.model.generate(
                **tensors, **kwargs, pad_token_id=pad, stopping_criteria=StoppingCriteriaList([_Stop(event)])
            )
    finally:
        trim_freed_memory()
    seconds = time.perf_counter() - started
    width = int(tensors["input_ids"].shape[-1])
    prompt_lengths = tensors["attention_mask"].sum(dim=-1).tolist()
    sizes = grid_sizes(loaded, tensors.get("image_grid_thw"))
    eos = _eos_ids(loaded)
    limit = int(kwargs["max_new_tokens"])
    replies: list[BatchedReply] = []
    for row, found in enumerate(parts):
        generated = sequences[row, width:].tolist()
        end = next((index + 1 for index, token in enumerate(generated) if token in eos), None)
        ids = generated[:end] if end is not None else generated  # no end of text: the row ran to the limit
        stats = GenerationStats(
            prompt_tokens=int(prompt_lengths[row]),
            completion_tokens=len(ids),
            total_s=seconds,
            stopped=event.is_set(),
            raw_text=tokenizer.decode(ids, skip_special_tokens=False),
            output_ids=ids,
        )
        stats.finish_reason = "stopped" if stats.stopped else "eos" if end is not None else "length" if len(ids) >= limit else "eos"
        keys = [part.sha256 for part in found]
        own = sizes[: len(keys)]
        sizes = sizes[len(keys) :]
        replies.append(
            BatchedReply(
                text=tokenizer.decode(ids, skip_special_tokens=True), stats=stats, input_sizes=dict(zip(keys, own))
            )
        )
    return replies
