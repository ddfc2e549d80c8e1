"""A lean one-token decode step for Llama- and Qwen2-style text decoders, run inside transformers' `generate`.

Why: on a 2-core CPU the matrix products of SmolVLM-256M's text model take ~22 ms a token (memory bandwidth),
and transformers' per-token work around them (module dispatch, masks, rotary tables, a growing KV concatenation,
separate q/k/v and gate/up products) adds as much again. generate() keeps everything it is good at, the prefill
(images, Qwen's 3D positions, cache continuation), the logits processors, sampling, the stopping criteria and
the streamer, and hands the decoding loop to us through its public `custom_generate` hook. Each step here runs:

- q/k/v and gate/up as one matrix product each. The fused matrices become the storage of the original
  modules' weights (views), so transformers' own forward, LoRA adapters and training see the same numbers and
  no memory is duplicated;
- keys and values written into a preallocated buffer (the conversation's DynamicCache holds views of it, so
  the next turn continues from it as before) instead of a concatenation that copies the whole cache per token;
- grouped-query attention with the query heads of a group as rows, so keys are never repeated;
- bf16 products as matrix-vector products (measured 16 ms against 23 ms for `linear` on this machine's CPU).

fp32 steps reproduce transformers' arithmetic; tests compare both paths token by token on the tiny models.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from . import hf_private
from .memory import trim_freed_memory
from .threads import decode_threads

log = logging.getLogger(__name__)

SUPPORTED_TEXT_MODELS = {"llama", "qwen2", "qwen2_vl_text", "qwen2_5_vl_text"}
"""Text decoders with the layout this step implements (RMSNorm, RoPE, GQA attention, SiLU-gated MLP)."""

_SPARE_POSITIONS = 256
"""The KV buffer grows in steps of this many tokens beyond what the cache already holds."""


@dataclass
class LayerWeights:
    qkv: Any
    qkv_bias: Any
    out: Any
    out_bias: Any
    gate_up: Any
    down: Any
    norm_in: Any
    norm_post: Any


@dataclass
class FastDecoder:
    """The fused weights and shapes of one text decoder; `step` runs one token through it."""

    layers: list[LayerWeights]
    embed: Any
    final_norm: Any
    head: Any
    head_bias: Any
    inv_freq: Any
    rope_scaling: float
    attention_scale: float
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    eps: float
    dtype: Any
    matrix_vector: bool
    """bf16: products as torch.mv (faster than linear for one row on CPUs); fp32: linear (transformers' own)."""
    rope_delta_owner: Any = None
    """The model, when it keeps Qwen2-VL's `rope_deltas` (text positions after its 3D image positions)."""

    def _linear(self, x: Any, weight: Any, bias: Any = None) -> Any:
        import torch
        import torch.nn.functional as F

        if hasattr(weight, "scales"):  # an int8 matrix (engine/int8.py, `dtype = "int8"`)
            from .int8 import matmul

            return matmul(x, weight, bias)
        if not self.matrix_vector:
            return F.linear(x, weight, bias)
        flat = x.reshape(-1)
        out = torch.mv(weight, flat) if bias is None else torch.addmv(bias, weight, flat)
        return out.view(1, 1, -1)

    @property
    def quantized(self) -> bool:
        """True when the matrices are int8 (engine/int8.py)."""
        return hasattr(self.layers[0].qkv, "scales") if self.layers else False

    def _norm(self, x: Any, weight: Any) -> Any:
        """transformers' RMSNorm, operation for operation (fp32 statistics, then the weight in the model dtype)."""
        import torch

        hidden = x.to(torch.float32)
        hidden = hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + self.eps)
        return weight * hidden.to(x.dtype)

    def matches(self, model: Any) -> bool:
        """True while the model's weights are still the fused tensors (`model.to(...)` replaces them)."""
        decoder = text_decoder(model)
        if decoder is None or not decoder.layers:
            return False
        first = decoder.layers[0].self_attn.q_proj
        weight = getattr(first, "base_layer", first).weight  # a LoRA wrapper keeps the base layer
        head = getattr(model.lm_head, "base_layer", model.lm_head).weight
        return (
            weight.dtype == self.dtype
            and weight.data_ptr() == self.layers[0].qkv.data_ptr()
            and head.data_ptr() == self.head.data_ptr()
        )

    def rope_offset(self) -> int:
        """How far text positions run ahead of the KV length (Qwen2-VL after images; 0 elsewhere)."""
        deltas = hf_private.rope_deltas(self.rope_delta_owner) if self.rope_delta_owner is not None else None
        return int(deltas.reshape(-1)[0]) if deltas is not None else 0

    def step(self, token: Any, position: int, cache: "KVBuffers") -> Any:
        """Logits (1, vocab) for `token` (shape (1, 1)) at rotary `position`; its keys/values go into `cache`."""
        import torch
        import torch.nn.functional as F

        heads, kv_heads, dim = self.heads, self.kv_heads, self.head_dim
        q_size, kv_size = heads * dim, kv_heads * dim
        freqs = float(position) * self.inv_freq
        angles = torch.cat([freqs, freqs])
        cos = (angles.cos() * self.rope_scaling).to(self.dtype)
        sin = (angles.sin() * self.rope_scaling).to(self.dtype)
        half = dim // 2
        slot = cache.length
        x = F.embedding(token, self.embed)
        for index, layer in enumerate(self.layers):
            qkv = self._linear(self._norm(x, layer.norm_in), layer.qkv, layer.qkv_bias)
            qk = qkv[..., : q_size + kv_size].view(1, heads + kv_heads, dim)
            qk = qk * cos + torch.cat([-qk[..., half:], qk[..., :half]], dim=-1) * sin
            keys, values = cache.write(index, slot, qk[:, heads:].view(1, kv_heads, 1, dim),
                                       qkv[..., q_size + kv_size :].view(1, kv_heads, 1, dim))
            query = qk[:, :heads].reshape(1, kv_heads, heads // kv_heads, dim)
            attended = F.scaled_dot_product_attention(query, keys, values, scale=self.attention_scale)
            x = x + self._linear(attended.reshape(1, 1, q_size), layer.out, layer.out_bias)
            gate_up = self._linear(self._norm(x, layer.norm_post), layer.gate_up)
            x = x + self._linear(F.silu(gate_up[..., : self.intermediate]) * gate_up[..., self.intermediate :], layer.down)
        cache.advance()
        x = self._norm(x, self.final_norm)
        return self._linear(x, self.head, self.head_bias).view(1, -1)


class KVBuffers:
    """Preallocated keys/values for a DynamicCache; the cache's layers always hold views of the filled part."""

    def __init__(self, cache: Any, spare: int = _SPARE_POSITIONS) -> None:
        import torch

        self.cache = cache
        self.spare = spare
        self.length = int(cache.get_seq_length())
        self.keys: list[Any] = []
        self.values: list[Any] = []
        for old_keys, old_values in hf_private.cache_tensors(cache):
            shape = list(old_keys.shape)
            shape[2] = self.length + spare
            keys = torch.empty(shape, dtype=old_keys.dtype, device=old_keys.device)
            values = torch.empty(shape, dtype=old_values.dtype, device=old_values.device)
            keys[:, :, : self.length] = old_keys
            values[:, :, : self.length] = old_values
            self.keys.append(keys)
            self.values.append(values)
        self._publish()

    @property
    def capacity(self) -> int:
        return int(self.keys[0].shape[2])

    def write(self, index: int, slot: int, key: Any, value: Any) -> tuple[Any, Any]:
        """Store one position's key/value in layer `index`; returns the layer's keys/values up to it."""
        self.keys[index][:, :, slot : slot + 1] = key
        self.values[index][:, :, slot : slot + 1] = value
        return self.keys[index][:, :, : slot + 1], self.values[index][:, :, : slot + 1]

    def advance(self) -> None:
        self.length += 1
        if self.length == self.capacity:
            self._grow()
        self._publish()

    def _grow(self) -> None:
        import torch

        for store in (self.keys, self.values):
            for index, tensor in enumerate(store):
                extra = torch.empty_like(tensor[:, :, : self.spare])
                store[index] = torch.cat([tensor, extra], dim=2)

    def _publish(self) -> None:
        hf_private.set_cache_tensors(
            self.cache, [(keys[:, :, : self.length], values[:, :, : self.length]) for keys, values in zip(self.keys, self.values)]
        )


def text_decoder(model: Any) -> Any:
    """The text decoder inside a vision-language model (Idefics3/SmolVLM: text_model; Qwen2-VL: language_model)."""
    inner = getattr(model, "model", None)
    for name in ("text_model", "language_model"):
        decoder = getattr(inner, name, None)
        if decoder is not None and hasattr(decoder, "layers"):
            return decoder
    return None


@lru_cache(maxsize=1)
def _private_api_problems() -> tuple[str, ...]:
    return tuple(hf_private.problems())


def unsupported_reason(model: Any, device: str) -> str:
    """Why the fast step cannot run this model ('' when it can)."""
    import torch

    if device != "cpu":
        return f"the fast decode step is measured and tested on the CPU only (this model runs on {device})"
    moved = _private_api_problems()
    if moved:
        return "; ".join(moved)  # transformers changed what the step relies on: its own loop instead
    decoder = text_decoder(model)
    if decoder is None:
        return "no text decoder with layers found"
    config = decoder.config
    if config.model_type not in SUPPORTED_TEXT_MODELS:
        return f"text model type {config.model_type!r} is not one of {sorted(SUPPORTED_TEXT_MODELS)}"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"activation {config.hidden_act!r} (the step implements silu)"
    if "sliding_attention" in (getattr(config, "layer_types", None) or []):
        return "sliding-window attention layers"
    rotary = getattr(decoder, "rotary_emb", None)
    if rotary is None or getattr(rotary, "rope_type", "default") != "default":
        return f"rotary type {getattr(rotary, 'rope_type', None)!r} (the step implements the default one)"
    head = getattr(model, "lm_head", None)
    modules = [_base(head)] + [
        _base(module)
        for layer in decoder.layers
        for module in (
            layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj, layer.self_attn.o_proj,
            layer.mlp.gate_proj, layer.mlp.up_proj, layer.mlp.down_proj,
        )
    ]
    if any(type(module) is not torch.nn.Linear for module in modules):
        return "some projections are not plain Linear layers (quantized or already wrapped)"
    attention = decoder.layers[0].self_attn
    if any(hasattr(attention, name) for name in ("q_norm", "k_norm")):
        return "query/key norms"
    if _base(decoder.layers[0].mlp.gate_proj).bias is not None:
        return "MLP biases"
    return ""


def _base(module: Any) -> Any:
    """The plain layer under a LoRA wrapper (the engine builds this step lazily, possibly after an adapter was
    injected; the step itself only runs while no adapter is active, on the base weights)."""
    return getattr(module, "base_layer", module)


def build_fast_decoder(model: Any, device: str) -> FastDecoder | None:
    """Fuse the decoder's projections in place and return the step, or None (with the reason logged)."""
    import torch

    reason = unsupported_reason(model, device)
    if reason:
        log.info("fast decode step off: %s", reason)
        return None
    decoder = text_decoder(model)
    config = decoder.config
    layers = []
    with torch.no_grad():  # not inference_mode: the fused tensors must stay usable for training
        for layer in decoder.layers:
            attention, mlp = layer.self_attn, layer.mlp
            q, k, v, o = (_base(m) for m in (attention.q_proj, attention.k_proj, attention.v_proj, attention.o_proj))
            qkv = _fuse([q, k, v])
            gate_up = _fuse([_base(mlp.gate_proj), _base(mlp.up_proj)])
            biases = [q.bias, k.bias, v.bias]
            qkv_bias = torch.cat(biases) if all(bias is not None for bias in biases) else None
            if qkv_bias is not None:
                _rebind([q, k, v], qkv_bias, "bias")
            layers.append(
                LayerWeights(
                    qkv=qkv,
                    qkv_bias=qkv_bias,
                    out=o.weight,
                    out_bias=o.bias,
                    gate_up=gate_up,
                    down=_base(mlp.down_proj).weight,
                    norm_in=layer.input_layernorm.weight,
                    norm_post=layer.post_attention_layernorm.weight,
                )
            )
    attention = decoder.layers[0].self_attn
    heads = int(config.num_attention_heads)
    head_dim = int(_base(attention.q_proj).out_features // heads)
    dtype = _base(attention.q_proj).weight.dtype
    return FastDecoder(
        layers=layers,
        embed=decoder.embed_tokens.weight,
        final_norm=decoder.norm.weight,
        head=_base(model.lm_head).weight,
        head_bias=_base(model.lm_head).bias,
        inv_freq=decoder.rotary_emb.inv_freq.to(torch.float32),
        rope_scaling=float(getattr(decoder.rotary_emb, "attention_scaling", 1.0)),
        attention_scale=float(getattr(attention, "scaling", head_dim**-0.5)),
        heads=heads,
        kv_heads=int(config.num_key_value_heads),
        head_dim=head_dim,
        intermediate=int(_base(decoder.layers[0].mlp.gate_proj).out_features),
        eps=float(decoder.layers[0].input_layernorm.variance_epsilon),
        dtype=dtype,
        matrix_vector=dtype == torch.bfloat16,
        rope_delta_owner=model if hf_private.has_rope_deltas(model) else None,
    )


def _fuse(modules: list[Any]) -> Any:
    """One contiguous matrix holding the modules' weights, which become views of it (no second copy)."""
    import torch

    from .memory import release_file_pages

    old = [module.weight for module in modules]
    fused = torch.cat(old).contiguous()
    _rebind(modules, fused, "weight")
    release_file_pages(old)  # mapped bf16 weights: their pages, just read, would stay resident beside the copy
    return fused


def _rebind(modules: list[Any], fused: Any, name: str) -> None:
    import torch

    start = 0
    for module in modules:
        old = getattr(module, name)
        rows = old.shape[0]
        setattr(module, name, torch.nn.Parameter(fused[start : start + rows], requires_grad=old.requires_grad))
        start += rows


class FastDecodeLoop:
    """generate()'s decoding loop (passed as `custom_generate`): transformers' prefill, then our steps.

    Mirrors transformers' greedy/sampling loop: the same logits processors, token choice, stopping criteria
    and streamer calls, batch size one.
    """

    def __init__(self, decoder: FastDecoder, streamer: Any = None) -> None:
        self.decoder = decoder
        self.streamer = streamer
        self.steps = 0
        """Tokens computed by the fast step in the last call (tests check it ran)."""

    def __call__(
        self,
        model: Any,
        input_ids: Any,
        logits_processor: Any,
        stopping_criteria: Any,
        generation_config: Any,
        **model_kwargs: Any,
    ) -> Any:
        import torch

        if input_ids.shape[0] != 1:
            raise ValueError("the fast decode loop generates for one sequence at a time")
        self.steps = 0
        outputs = hf_private.prefill(model, input_ids, generation_config, model_kwargs)
        cache = outputs.past_key_values
        logits = outputs.logits[:, -1].to(copy=True, dtype=torch.float32)
        del outputs
        trim_freed_memory()  # the encoder's and prefill's freed activations: not resident while the reply decodes
        buffers: KVBuffers | None = None
        with decode_threads(self.decoder.quantized):  # engine/threads.py: int8 on 2 cores uses one
            while True:
                scores = logits_processor(input_ids, logits)
                if generation_config.do_sample:
                    token = torch.multinomial(torch.nn.functional.softmax(scores, dim=-1), num_samples=1).squeeze(1)
                else:
                    token = torch.argmax(scores, dim=-1)
                input_ids = torch.cat([input_ids, token[:, None]], dim=-1)
                if self.streamer is not None:
                    self.streamer.put(token.cpu())
                if bool(stopping_criteria(input_ids, scores).all()):
                    break
                if buffers is None:
                    buffers = KVBuffers(cache)
                position = buffers.length + self.decoder.rope_offset()
                logits = self.decoder.step(token[:, None], position, buffers).to(dtype=torch.float32)
                self.steps += 1
        if self.streamer is not None:
            self.streamer.end()
        if generation_config.return_dict_in_generate:
            return hf_private.decoder_only_output(input_ids, cache)
        return input_ids
