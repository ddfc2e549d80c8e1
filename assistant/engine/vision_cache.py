"""Encoded image features cached by content, so the same screenshot or page is never encoded twice.

The vision encoder is most of the first answer about a new image (SmolVLM-256M, bf16, 2-core CPU: ~3.5 s of
a 4.5 s TTFT for a 1920x1080 screenshot). The conversation KV cache (engine/cache.py) only helps follow-ups in
the same chat; this cache helps a new chat about the same screen, a regenerate after `/clear`, a batch
re-run and the agent re-reading a page.

What is cached: the features the model's `get_image_features` returns (after the connector: SmolVLM 64 x 576
values a 512 px tile, ~74 KB in bf16), per unit the encoder treats independently: an Idefics3/SmolVLM tile
or a Qwen2-VL image. The key is a BLAKE2b digest of the unit's pixels exactly as the encoder receives them
(plus its attention mask or patch grid), so it covers the image's content *and* every processor setting that
changes what the encoder sees (size, quick mode, rescale, normalisation); plus the model's identity: the
vision weights' dtype and storage, and the active adapter. Tiles are independent (attention never crosses
them), so a prompt whose images are partly cached encodes only the missing ones.

Bounded in bytes (LRU). Bypassed while gradients are on (training) and for batches of several prompts.
`ASSISTANT_VISION_CACHE_MB` sets the bound (default 64; 0 turns the cache off). Behind it, opt-in, the same
features on disk for later processes (engine/vision_disk.py, `ASSISTANT_VISION_DISK_MB`).
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Hashable

from ..envsettings import megabytes_setting
from .vision_disk import DiskFeatures, disk_name

log = logging.getLogger(__name__)

DEFAULT_MB = 64


def default_max_bytes() -> int:
    """The bound from ASSISTANT_VISION_CACHE_MB (MB, 0 = off), else DEFAULT_MB."""
    return int(megabytes_setting("ASSISTANT_VISION_CACHE_MB", DEFAULT_MB) * 1024 * 1024)


@dataclass
class VisionCache:
    """Feature tensors by key, least recently used dropped first once `max_bytes` is exceeded."""

    max_bytes: int = field(default_factory=default_max_bytes)
    scope: Hashable = None
    """What else the features depend on, set by the engine before each reply (the active adapter's name)."""
    hits: int = 0
    misses: int = 0
    disk: DiskFeatures | None = None
    """The on-disk tier (None: off, the default)."""
    disk_identity: str | None = None
    """The model's identity across processes (vision_disk.model_identity), set by the engine with `disk`."""
    device: str = "cpu"
    """Where features read from disk go (the model's device)."""
    disk_hits: int = 0
    _entries: "OrderedDict[tuple, Any]" = field(default_factory=OrderedDict)
    _bytes: int = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def get(self, key: tuple) -> Any:
        """The features for `key` ((model state, kind, pixel digest)): from memory, else from disk."""
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
            return value
        name = self._disk_name(key)
        if name is None:
            return None
        value = self.disk.get(name)
        if value is not None:
            value = value.to(self.device)
            self.disk_hits += 1
            self._remember(key, value)
        return value

    def put(self, key: tuple, value: Any) -> None:
        self._remember(key, value)
        name = self._disk_name(key)
        if name is not None:
            self.disk.put(name, value)

    def _disk_name(self, key: tuple) -> str | None:
        if self.disk is None or self.disk_identity is None or not self.enabled:
            return None
        (dtype, _storage, adapter), kind, pixels = key
        if adapter is not None:  # an adapter may be retrained under the same name: memory only
            return None
        return disk_name(f"{self.disk_identity}|{dtype}", kind, pixels)

    def _remember(self, key: tuple, value: Any) -> None:
        size = value.numel() * value.element_size()
        if not self.enabled or size > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.numel() * old.element_size()
        self._entries[key] = value
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= dropped.numel() * dropped.element_size()


def digest(*tensors: Any) -> bytes:
    """BLAKE2b-128 of the tensors' shapes, dtypes and bytes (a 3 MB fp32 tile hashes in a few ms)."""
    hasher = hashlib.blake2b(digest_size=16)
    for tensor in tensors:
        if tensor is None:
            hasher.update(b"-")
            continue
        flat = tensor.detach().to("cpu").contiguous()
        hasher.update(f"{tuple(flat.shape)}{flat.dtype};".encode())
        hasher.update(memoryview(flat.view(-1).view(_uint8()).numpy()))
    return hasher.digest()


def _uint8() -> Any:
    import torch

    return torch.uint8


def install_vision_cache(model: Any, cache: VisionCache) -> bool:
    """Route the model's `get_image_features` through `cache`; False for families it does not know."""
    inner = getattr(model, "model", None)
    original = getattr(inner, "get_image_features", None)
    if original is None:
        return False
    if getattr(inner, "_vision_cache", None) is not None:
        inner._vision_cache = cache
        return True
    vision = getattr(inner, "vision_model", None) or getattr(inner, "visual", None)
    name = type(vision).__name__
    if name in {"Idefics3VisionTransformer", "SmolVLMVisionTransformer"}:
        wrapper = _tiled(inner, original)
    elif name.startswith("Qwen2VisionTransformer") or name.startswith("Qwen2_5_VisionTransformer"):
        wrapper = _per_image(inner, original)
    else:
        return False
    inner._vision_cache = cache
    inner.get_image_features = wrapper
    return True


def _model_key(inner: Any, cache: VisionCache) -> tuple:
    """The model state the features depend on: vision weights (dtype and storage: `model.to` changes both)
    and the engine's scope (adapter)."""
    first = next(inner.parameters())
    return (str(first.dtype), first.data_ptr(), cache.scope)


def _bypass(cache: VisionCache | None, kwargs: dict[str, Any]) -> bool:
    import torch

    return (
        cache is None
        or not cache.enabled
        or torch.is_grad_enabled()
        or bool(kwargs.get("output_hidden_states") or kwargs.get("output_attentions"))
    )


def _tiled(inner: Any, original: Any) -> Any:
    """Idefics3/SmolVLM: pixel_values (batch, tiles, 3, H, W), all-zero padding tiles; features per tile."""

    def get_image_features(pixel_values: Any, pixel_attention_mask: Any = None, **kwargs: Any) -> Any:
        cache: VisionCache | None = inner._vision_cache
        if _bypass(cache, kwargs) or pixel_values.shape[0] != 1:
            return original(pixel_values, pixel_attention_mask, **kwargs)
        import torch
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        tiles = pixel_values[0]
        masks = pixel_attention_mask[0] if pixel_attention_mask is not None else None
        real = (tiles != 0).flatten(1).any(dim=1).nonzero().flatten().tolist()  # padding tiles are all zeros
        model_key = _model_key(inner, cache)
        keys = [(model_key, "tile", digest(tiles[i], None if masks is None else masks[i])) for i in real]
        found = {j: cache.get(key) for j, key in enumerate(keys)}
        missing = [j for j, value in found.items() if value is None]
        cache.hits += len(keys) - len(missing)
        cache.misses += len(missing)
        if missing:
            index = torch.tensor([real[j] for j in missing], device=pixel_values.device)
            part_mask = None if pixel_attention_mask is None else pixel_attention_mask[:, index]
            output = original(pixel_values[:, index], part_mask, **kwargs)
            features = _pooled(output)[0]
            per_tile = features.reshape(len(missing), -1, features.shape[-1])
            for j, value in zip(missing, per_tile):
                found[j] = value.clone()
                cache.put(keys[j], found[j])
        if not keys:
            return original(pixel_values, pixel_attention_mask, **kwargs)
        joined = torch.cat([found[j] for j in range(len(keys))]).reshape(-1, found[0].shape[-1])
        return BaseModelOutputWithPooling(pooler_output=[joined])

    return get_image_features


def _per_image(inner: Any, original: Any) -> Any:
    """Qwen2-VL: pixel_values are every image's patches in a row, `image_grid_thw` one row per image."""

    def get_image_features(pixel_values: Any, image_grid_thw: Any = None, **kwargs: Any) -> Any:
        cache: VisionCache | None = inner._vision_cache
        if _bypass(cache, kwargs) or image_grid_thw is None:
            return original(pixel_values, image_grid_thw, **kwargs)
        import torch
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        sizes = image_grid_thw.prod(-1).tolist()
        chunks = pixel_values.split(sizes)
        model_key = _model_key(inner, cache)
        keys = [(model_key, "image", digest(chunk, grid)) for chunk, grid in zip(chunks, image_grid_thw)]
        found = {j: cache.get(key) for j, key in enumerate(keys)}
        missing = [j for j, value in found.items() if value is None]
        cache.hits += len(keys) - len(missing)
        cache.misses += len(missing)
        if missing:
            output = original(
                torch.cat([chunks[j] for j in missing]), image_grid_thw[missing], **kwargs
            )
            for j, value in zip(missing, _pooled(output)):
                found[j] = value.clone()
                cache.put(keys[j], found[j])
        return BaseModelOutputWithPooling(pooler_output=tuple(found[j] for j in range(len(keys))))

    return get_image_features


def _pooled(output: Any) -> Any:
    """The per-image (or per-prompt) features of a get_image_features result, dict- or tuple-style."""
    pooled = getattr(output, "pooler_output", None)
    if pooled is None and isinstance(output, tuple):
        pooled = output[1] if len(output) > 1 else output[0]
    return pooled
