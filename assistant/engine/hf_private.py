"""Every use of transformers' private or undocumented API, in one place, with a check that it is still there.

Why: the fused decode step (engine/decoding.py) and the conversation KV cache (engine/cache.py) lean on parts of
transformers that carry no stability promise: `GenerationMixin._prefill`, the `custom_generate` callable's calling
convention, `DynamicCache.layers[i].keys/.values`, and Qwen2-VL's `rope_deltas` / `get_rope_index`. Reaching them
only through this module means a transformers release that changes one breaks here, where
`tests/engine/test_hf_private.py` names what changed, instead of as wrong numbers in a reply. `problems()` is also
asked before the fast step is used: when something moved, the engine falls back to transformers' own loop.
"""

from __future__ import annotations

import inspect
from typing import Any

CUSTOM_GENERATE = "custom_generate"
"""generate()'s keyword for a decoding loop callable, called as (model, input_ids, logits_processor=,
stopping_criteria=, generation_config=, **model_kwargs)."""


# --- the generate loop ---------------------------------------------------------------------------------------------

def prefill(model: Any, input_ids: Any, generation_config: Any, model_kwargs: dict[str, Any]) -> Any:
    """transformers' own prefill (images, Qwen's 3D positions, cache continuation): outputs with logits and
    past_key_values. `GenerationMixin._prefill` (private)."""
    return model._prefill(input_ids, generation_config, model_kwargs)


def decoder_only_output(sequences: Any, past_key_values: Any) -> Any:
    """What generate returns with return_dict_in_generate for a decoder-only model."""
    from transformers.generation.utils import GenerateDecoderOnlyOutput

    return GenerateDecoderOnlyOutput(sequences=sequences, past_key_values=past_key_values)


# --- the KV cache's storage ----------------------------------------------------------------------------------------

def cache_tensors(cache: Any) -> list[tuple[Any, Any]]:
    """(keys, values) of each layer of a DynamicCache, shaped (batch, kv_heads, positions, head_dim)."""
    return [(layer.keys, layer.values) for layer in cache.layers]


def set_cache_tensors(cache: Any, tensors: list[tuple[Any, Any]]) -> None:
    """Make each layer of a DynamicCache hold these (keys, values) (views of our buffers, no copy)."""
    for layer, (keys, values) in zip(cache.layers, tensors):
        layer.keys = keys
        layer.values = values


# --- Qwen2-VL's 3D rotary positions --------------------------------------------------------------------------------

def has_rope_deltas(model: Any) -> bool:
    """True for models that keep Qwen2-VL's rope_deltas on their inner model."""
    return hasattr(getattr(model, "model", None), "rope_deltas")


def rope_deltas(model: Any) -> Any:
    """The offsets of text positions after the last prefill's images (None when not computed, or not Qwen2-VL)."""
    return getattr(getattr(model, "model", None), "rope_deltas", None)


def set_rope_deltas(model: Any, deltas: Any) -> None:
    model.model.rope_deltas = deltas


def rope_index(model: Any, tensors: Any, grids: Any) -> tuple[Any, Any]:
    """Qwen2-VL's 3D positions and rope_deltas of a whole prompt (`get_rope_index`); raises AttributeError,
    TypeError or ValueError when the model does not have it in this form."""
    return model.model.get_rope_index(
        tensors["input_ids"],
        image_grid_thw=grids,
        attention_mask=tensors.get("attention_mask"),
        mm_token_type_ids=tensors.get("mm_token_type_ids"),
    )


# --- the check -----------------------------------------------------------------------------------------------------

def problems() -> list[str]:
    """What of the above this transformers no longer provides, one line each ([] when all is in place)."""
    import transformers
    from transformers import DynamicCache, GenerationMixin

    found: list[str] = []
    version = f"transformers {transformers.__version__}"
    prefill_method = getattr(GenerationMixin, "_prefill", None)
    if prefill_method is None:
        found.append(f"{version}: GenerationMixin._prefill is gone")
    else:
        names = list(inspect.signature(prefill_method).parameters)[:4]
        if names != ["self", "input_ids", "generation_config", "model_kwargs"]:
            found.append(f"{version}: GenerationMixin._prefill takes {names}, not (input_ids, generation_config, model_kwargs)")
    if CUSTOM_GENERATE not in inspect.signature(GenerationMixin.generate).parameters:
        found.append(f"{version}: generate() has no {CUSTOM_GENERATE} parameter")
    try:
        from transformers.generation.utils import GenerateDecoderOnlyOutput  # noqa: F401
    except ImportError:
        found.append(f"{version}: transformers.generation.utils.GenerateDecoderOnlyOutput is gone")
    found.extend(_cache_problems(version, DynamicCache))
    found.extend(_qwen_problems(version))
    return found


def _cache_problems(version: str, cache_class: Any) -> list[str]:
    import torch

    try:
        cache = cache_class()
        cache.update(torch.zeros(1, 2, 3, 4), torch.ones(1, 2, 3, 4), 0)
        (keys, values), = cache_tensors(cache)
    except (AttributeError, TypeError, ValueError) as error:
        return [f"{version}: DynamicCache no longer keeps layers with .keys/.values ({type(error).__name__}: {error})"]
    if tuple(keys.shape) != (1, 2, 3, 4) or not bool(values.eq(1).all()):
        return [f"{version}: DynamicCache layer keys/values are not (batch, heads, positions, head_dim)"]
    set_cache_tensors(cache, [(keys[:, :, :2], values[:, :, :2])])
    if cache.get_seq_length() != 2:
        return [f"{version}: a DynamicCache does not follow keys/values set on its layers"]
    return []


def _qwen_problems(version: str) -> list[str]:
    try:
        from transformers.models.qwen2_vl import modeling_qwen2_vl
    except ImportError:
        return [f"{version}: transformers.models.qwen2_vl is gone"]
    model_class = modeling_qwen2_vl.Qwen2VLModel
    if "rope_deltas" not in inspect.getsource(model_class.__init__):
        return [f"{version}: Qwen2VLModel no longer keeps rope_deltas"]
    rope = getattr(model_class, "get_rope_index", None)
    if rope is None:
        return [f"{version}: Qwen2VLModel.get_rope_index is gone"]
    parameters = inspect.signature(rope).parameters
    missing = [name for name in ("input_ids", "image_grid_thw", "attention_mask", "mm_token_type_ids") if name not in parameters]
    if missing:
        return [f"{version}: Qwen2VLModel.get_rope_index has no {', '.join(missing)}"]
    return []
