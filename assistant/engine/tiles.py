"""Encode an image's 512 px tiles a few at a time, so the vision encoder's activations stay small.

SmolVLM/Idefics3 sends every tile of every image through its SigLIP encoder in one batch. A 1920×1080
screenshot is 13 tiles; measured with `bench-smolvlm-256m-bf16`, the encoder's activations for all 13 at
once add ~400 MB to the process's peak memory. Tiles are independent (attention never crosses tiles), so
encoding them in groups gives the same features for a fraction of the peak (docs/performance.md).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

TILES_PER_GROUP = 4


def encode_tiles_in_groups(model: Any, group: int = TILES_PER_GROUP) -> bool:
    """Make the model's Idefics3-style vision encoder run `group` tiles at a time; False when it has none."""
    vision = getattr(getattr(model, "model", None), "vision_model", None)
    if vision is None or type(vision).__name__ not in {"Idefics3VisionTransformer", "SmolVLMVisionTransformer"}:
        return False
    if getattr(vision, "_tile_group", None) is not None:
        vision._tile_group = group
        return True
    whole_batch = vision.forward

    def forward(pixel_values: Any, patch_attention_mask: Any = None, **kwargs: Any) -> Any:
        size = vision._tile_group
        if pixel_values.shape[0] <= size or kwargs.get("output_hidden_states") or kwargs.get("output_attentions"):
            return whole_batch(pixel_values=pixel_values, patch_attention_mask=patch_attention_mask, **kwargs)
        import torch
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        states = []
        for start in range(0, pixel_values.shape[0], size):
            mask = None if patch_attention_mask is None else patch_attention_mask[start : start + size]
            part = whole_batch(pixel_values=pixel_values[start : start + size], patch_attention_mask=mask, **kwargs)
            states.append(part.last_hidden_state)
        return BaseModelOutputWithPooling(last_hidden_state=torch.cat(states, dim=0))

    vision._tile_group = group
    vision.forward = forward
    return True
