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

from .memory import trim_freed_memory

QUANTIZE_SETTING = "int8"
"""The profile's `[model] dtype` value that turns this on (weights load in `auto`'s dtype)."""


@dataclass
class Int8Matrix:
    """A weight matrix as int8 rows and per-row scales; `data_ptr` is the float source's (FastDecoder.matches)."""

    weight: Any
    """int8, (out_features, in_features), contiguous."""
    scales: Any
    """(out_features,), bf16: the dtype the kernel runs in (see KERNEL_DTYPE)."""
    source_ptr: int

    def data_ptr(self) -> int:
        return self.source_ptr

    @property
    def nbytes(self) -> int:
        return self.weight.numel() + self.scales.numel() * self.scales.element_size()


KERNEL_DTYPE = "bfloat16"
"""The activations' dtype inside the int8 kernel, whatever the model's. torch's `_weight_int8pack_mm` is
vectorised for bf16 activations only: over SmolVLM-256M's 121 matrices, one thread, fp32 activations took
122-133 ms a token against 24-29 ms in bf16 (AVX2 kernels forced with ATEN_CPU_CAPABILITY=avx2: 160 against 37),
so an fp32 model (`dtype = "auto"` on a CPU without native bf16) decoded slower with int8 than without it. The
activations are rounded to bf16 for the product and the result returned in the model's dtype; the error that adds
is well below the int8 weights' own (tests/engine/test_int8.py)."""

ROWS_PER_CHUNK = 2048
"""Rows quantized at a time: the fp32 temporaries of a whole LM head (49280 x 576) were ~450 MB of peak memory."""


def quantize(weight: Any, rows_per_chunk: int = ROWS_PER_CHUNK) -> Int8Matrix:
    """Symmetric per-row int8: row / (absmax / 127), rounded (scales computed in fp32).

    Rows are independent, so they are quantized `rows_per_chunk` at a time: the same result, a few MB of
    temporaries instead of several fp32 copies of the whole matrix.
    """
    import torch

    count = weight.shape[0]
    rows = torch.empty(weight.shape, dtype=torch.int8)
    scales = torch.empty(count, dtype=torch.float32)
    with torch.no_grad():
        for start in range(0, count, max(1, rows_per_chunk)):
            source = weight[start : start + rows_per_chunk].detach().to(torch.float32)
            part = source.abs().amax(dim=1).clamp(min=1e-12) / 127.0
            rows[start : start + rows_per_chunk] = torch.round(source / part[:, None]).clamp(-127, 127).to(torch.int8)
            scales[start : start + rows_per_chunk] = part
    return Int8Matrix(weight=rows, scales=scales.to(_kernel_dtype()), source_ptr=weight.data_ptr())


def matmul(x: Any, matrix: Int8Matrix, bias: Any = None) -> Any:
    """x (1, 1, in) times the int8 matrix: (1, 1, out)."""
    import torch

    out = torch._weight_int8pack_mm(x.reshape(1, -1).to(matrix.scales.dtype), matrix.weight, matrix.scales).to(x.dtype)
    if bias is not None:
        out = out + bias
    return out.view(1, 1, -1)


def _kernel_dtype() -> Any:
    import torch

    return getattr(torch, KERNEL_DTYPE)


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
    quantized = dataclasses.replace(decoder, layers=layers, head=quantize(decoder.head))
    trim_freed_memory()  # the chunks' temporaries: not resident while the reply decodes
    return quantized


def supported() -> bool:
    """True when this torch has the int8 weight-only kernel."""
    import torch

    return hasattr(torch, "_weight_int8pack_mm")
