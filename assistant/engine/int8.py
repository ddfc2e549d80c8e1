"""int8 weight-only decoding on the CPU (`dtype = "int8"` in a profile, `assistant bench --quantize int8`).

A decoded token reads every matrix of the text model once: on a 2-core CPU that read is the token's time
(docs/performance.md). Here the fused decode step's matrices (q/k/v, o, gate/up, down and the LM head) are
kept as int8 with one scale per output row (symmetric, absmax / 127), half the bytes of bf16, and multiplied
through torch's int8 weight-only kernel (`torch._weight_int8pack_mm`: dequantises in registers, activations
stay bf16/fp32). Only decoding is quantized: the prefill, the vision encoder and LoRA adapters keep the
model's own weights (the int8 copy is extra memory: ~135 MB for SmolVLM-256M).

Closeness to the float step is measured by tests on the tiny models (logits per step, greedy agreement).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

QUANTIZE_SETTING = "int8"
"""The profile's `[model] dtype` value that turns this on (weights load in `auto`'s dtype)."""


@dataclass
class Int8Matrix:
    """A weight matrix as int8 rows and per-row scales; `data_ptr` is the float source's (FastDecoder.matches)."""

    weight: Any
    """int8, (out_features, in_features), contiguous."""
    scales: Any
    """(out_features,), in the activations' dtype."""
    source_ptr: int

    def data_ptr(self) -> int:
        return self.source_ptr

    @property
    def nbytes(self) -> int:
        return self.weight.numel() + self.scales.numel() * self.scales.element_size()


def quantize(weight: Any) -> Int8Matrix:
    """Symmetric per-row int8: row / (absmax / 127), rounded (scales computed in fp32)."""
    import torch

    with torch.no_grad():
        source = weight.detach().to(torch.float32)
        scales = source.abs().amax(dim=1).clamp(min=1e-12) / 127.0
        rows = torch.round(source / scales[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
    return Int8Matrix(weight=rows, scales=scales.to(weight.dtype), source_ptr=weight.data_ptr())


def matmul(x: Any, matrix: Int8Matrix, bias: Any = None) -> Any:
    """x (1, 1, in) times the int8 matrix: (1, 1, out)."""
    import torch

    out = torch._weight_int8pack_mm(x.reshape(1, -1), matrix.weight, matrix.scales)
    if bias is not None:
        out = out + bias
    return out.view(1, 1, -1)


def quantize_decoder(decoder: Any) -> Any:
    """A copy of a FastDecoder whose matrices are Int8Matrix (norms, embeddings, biases stay as they are)."""
    layers = [
        dataclasses.replace(
            layer,
            qkv=quantize(layer.qkv),
            out=quantize(layer.out),
            gate_up=quantize(layer.gate_up),
            down=quantize(layer.down),
        )
        for layer in decoder.layers
    ]
    return dataclasses.replace(decoder, layers=layers, head=quantize(decoder.head))


def supported() -> bool:
    """True when this torch has the int8 weight-only kernel."""
    import torch

    return hasattr(torch, "_weight_int8pack_mm")
