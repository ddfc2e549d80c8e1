"""Conversation KV-cache reuse: a follow-up question only pays for its new tokens.

The engine keeps the KV cache of the last reply it generated, with the token ids it covers, the images
(by content hash) those tokens encode and the adapter that produced it. The next prompt reuses the longest
common token prefix when every cached image is still in place, in the same order; the cache is cropped to
that prefix (regenerate, edit) and dropped entirely on an adapter switch or when earlier images change
(e.g. older turns dropped on context overflow). Images already in the cache are never re-encoded: only
the pixel tiles of images after the prefix go to the vision encoder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import hf_private


@dataclass
class CachedTurn:
    token_ids: list[int]
    """Every token of the last prompt + reply; the cache holds all but (possibly) the last one."""
    cache: Any
    image_keys: list[str]
    adapter: str | None
    rope_deltas: Any = None
    """Qwen2-VL keeps the 3D-rotary offsets of the last prefill on the model; restored before reuse."""


@dataclass
class ReusePlan:
    """How to call generate: reuse `prefix` cached tokens and only these pixel inputs."""

    prefix: int
    model_inputs: dict[str, Any]
    past_key_values: Any = None
    reason: str = ""


@dataclass
class ConversationCache:
    """Decides what of the previous turn's KV cache the next prompt may reuse."""

    enabled: bool = True
    turn: CachedTurn | None = None
    stats: dict[str, int] = field(default_factory=lambda: {"reused_tokens": 0, "computed_tokens": 0})

    def clear(self) -> None:
        self.turn = None

    def plan(self, loaded: Any, tensors: Any, image_keys: list[str], adapter: str | None) -> ReusePlan:
        model_inputs = dict(tensors)
        full = tensors["input_ids"][0].tolist()
        turn, self.turn = self.turn, None  # a plan consumes the cache: it is mutated by the next generate
        if not self.enabled or turn is None:
            return self._fresh(model_inputs, full, "no cached turn")
        if turn.adapter != adapter:
            return self._fresh(model_inputs, full, "adapter changed")
        if image_keys[: len(turn.image_keys)] != turn.image_keys:
            return self._fresh(model_inputs, full, "earlier images changed")
        cached = turn.cache.get_seq_length()
        prefix = _common_prefix(turn.token_ids, full, limit=min(cached, len(full) - 1))
        new_ids = tensors["input_ids"][:, prefix:]
        if turn.rope_deltas is not None:  # before the family step: new Qwen images recompute them
            hf_private.set_rope_deltas(loaded.model, turn.rope_deltas)
        family_inputs = _new_pixel_inputs(loaded, tensors, prefix, new_ids)
        if family_inputs is None:
            return self._fresh(model_inputs, full, "new images need a full prefill for this model family")
        prefix, pixel_inputs = family_inputs
        if prefix <= 0:
            return self._fresh(model_inputs, full, "nothing in common")
        if prefix < cached:
            turn.cache.crop(prefix - cached)
        for key in ("pixel_values", "pixel_attention_mask", "image_grid_thw", *_VIDEO_INPUTS):
            model_inputs.pop(key, None)
        model_inputs.update(pixel_inputs)
        self.stats["reused_tokens"] += prefix
        self.stats["computed_tokens"] += len(full) - prefix
        return ReusePlan(prefix=prefix, model_inputs=model_inputs, past_key_values=turn.cache, reason="reused")

    def remember(
        self, loaded: Any, token_ids: list[int], cache: Any, image_keys: list[str], adapter: str | None
    ) -> None:
        if self.enabled and cache is not None:
            deltas = hf_private.rope_deltas(loaded.model)
            self.turn = CachedTurn(token_ids, cache, list(image_keys), adapter, rope_deltas=deltas)

    def _fresh(self, model_inputs: dict[str, Any], full: list[int], reason: str) -> ReusePlan:
        self.stats["computed_tokens"] += len(full)
        return ReusePlan(prefix=0, model_inputs=model_inputs, reason=reason)


def _common_prefix(old: list[int], new: list[int], limit: int) -> int:
    length = 0
    for a, b in zip(old, new):
        if a != b or length >= limit:
            break
        length += 1
    return min(length, limit)


def _new_pixel_inputs(loaded: Any, tensors: Any, prefix: int, new_ids: Any) -> tuple[int, dict[str, Any]] | None:
    """Pixel inputs for only the images after `prefix`, per family; None when this family cannot do it.

    Idefics3/SmolVLM encode every 512px tile on its own, `image_seq_len` tokens per tile in one contiguous
    run, so the tiles before the prefix are simply skipped (a prefix inside a run moves back to its start).
    Qwen2-VL's 3D rotary positions depend on every image grid: they are computed over the whole prompt,
    and only the new images' patches are encoded.
    """
    processor = loaded.processor
    image_token_id = _image_token_id(loaded)
    ids = tensors["input_ids"][0]
    if "video_grid_thw" in tensors and not _videos_cached(loaded, tensors, prefix, image_token_id):
        return None
    if "pixel_values" not in tensors or image_token_id is None:
        return prefix, {}
    is_image = (ids == image_token_id).tolist()
    if not any(is_image[prefix:]):
        return prefix, {}
    while prefix > 0 and is_image[prefix - 1] and is_image[prefix]:
        prefix -= 1  # never split an image's run of tokens
    if "image_grid_thw" in tensors:
        return _qwen_new_images(loaded, tensors, prefix, sum(is_image[:prefix]))
    seq_len = getattr(processor, "image_seq_len", None)
    if not seq_len or "pixel_attention_mask" not in tensors and tensors["pixel_values"].ndim != 5:
        return None
    tiles_before = sum(is_image[:prefix]) // int(seq_len)
    inputs = {"pixel_values": tensors["pixel_values"][:, tiles_before:]}
    if "pixel_attention_mask" in tensors:
        inputs["pixel_attention_mask"] = tensors["pixel_attention_mask"][:, tiles_before:]
    return prefix, inputs


_VIDEO_INPUTS = ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")
"""Qwen2-VL's video inputs: dropped when every video is inside the reused prefix (SmolVLM2's frames are images)."""


def _videos_cached(loaded: Any, tensors: Any, prefix: int, image_token_id: int | None) -> bool:
    """Qwen2-VL videos (engine/video_inputs.py): reuse only when every video token is in the prefix and no new
    image follows (their 3D positions would have to be computed with the video grids too)."""
    video_token_id = getattr(loaded.model.config, "video_token_id", None)
    if not isinstance(video_token_id, int):
        return False
    ids = tensors["input_ids"][0]
    if bool((ids[prefix:] == video_token_id).any()):
        return False
    return image_token_id is None or not bool((ids[prefix:] == image_token_id).any())


def _image_token_id(loaded: Any) -> int | None:
    config = loaded.model.config
    for name in ("image_token_id", "image_token_index"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


def _qwen_new_images(loaded: Any, tensors: Any, prefix: int, tokens_before: int) -> tuple[int, dict[str, Any]] | None:
    """Qwen2-VL: patches and grids of the images after the prefix, plus 3D positions for the whole prompt."""
    import torch

    grids = tensors["image_grid_thw"]
    merge = int(getattr(loaded.processor.image_processor, "merge_size", 2))
    counts = [int(grid.prod()) // (merge * merge) for grid in grids]
    seen, images_before = 0, 0
    while images_before < len(counts) and seen + counts[images_before] <= tokens_before:
        seen += counts[images_before]
        images_before += 1
    if seen != tokens_before:
        return None
    try:
        vision_positions, deltas = hf_private.rope_index(loaded.model, tensors, grids)
    except (AttributeError, TypeError, ValueError, StopIteration):
        return None
    length = tensors["input_ids"].shape[1]
    text_positions = torch.arange(length, device=vision_positions.device).view(1, 1, -1).expand(1, vision_positions.shape[1], -1)
    hf_private.set_rope_deltas(loaded.model, deltas)
    patches_before = sum(int(grid.prod()) for grid in grids[:images_before])
    return prefix, {
        "pixel_values": tensors["pixel_values"][patches_before:],
        "image_grid_thw": grids[images_before:],
        "position_ids": torch.cat([text_positions, vision_positions], dim=0),
    }
