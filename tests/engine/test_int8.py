"""int8 weight-only decoding (engine/int8.py) stays close to the float step it replaces, on both tiny models.

Closeness is measured the way the issue asks: logits step by step within a tolerance, and the greedy tokens
compared one by one with the float path (the agreement rate is printed; run with -s to see it).
"""

from __future__ import annotations

import pytest

from assistant import Assistant
from assistant.engine.decoding import KVBuffers, build_fast_decoder
from assistant.engine.int8 import Int8Matrix, quantize, quantize_decoder

TINY = ["tiny-smolvlm", "tiny-qwen2vl"]
STEPS = 24


def test_rows_are_int8_with_one_scale_each_and_round_to_the_nearest_step():
    import torch

    torch.manual_seed(0)
    weight = torch.randn(48, 80) * torch.linspace(0.01, 3.0, 48)[:, None]  # rows of very different sizes
    matrix = quantize(weight)
    assert matrix.weight.dtype == torch.int8 and matrix.weight.shape == weight.shape
    assert matrix.scales.shape == (48,) and matrix.data_ptr() == weight.data_ptr()
    step = weight.abs().amax(dim=1) / 127  # each row's step, in fp32
    assert torch.equal(matrix.weight, torch.round(weight / step[:, None]).to(torch.int8))  # the nearest step
    restored = matrix.weight.float() * step[:, None]
    assert ((restored - weight).abs() <= step[:, None] / 2 + 1e-7).all()
    assert torch.equal(matrix.scales, step.to(torch.bfloat16))  # kept in the kernel's dtype
    assert int(matrix.weight.abs().max()) == 127


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_quantizing_in_row_chunks_gives_the_same_matrix_as_all_rows_at_once(dtype):
    """Chunking bounds the fp32 temporaries (peak memory); it must not change a single value."""
    import torch

    torch.manual_seed(1)
    weight = (torch.randn(37, 24) * torch.linspace(0.01, 2.0, 37)[:, None]).to(getattr(torch, dtype))
    whole = quantize(weight, rows_per_chunk=37)
    for chunk in (1, 5, 16, 36):
        part = quantize(weight, rows_per_chunk=chunk)
        assert torch.equal(part.weight, whole.weight) and torch.equal(part.scales, whole.scales)
    assert whole.scales.dtype == torch.bfloat16  # the kernel's dtype, whatever the weights'


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("profile", TINY)
def test_step_logits_within_tolerance_and_greedy_tokens_agree(profile, dtype):
    import torch
    from transformers import DynamicCache

    bot = Assistant.from_profile(profile)
    model = bot.engine.loaded.model.to(getattr(torch, dtype))
    exact = build_fast_decoder(model, "cpu")
    quantized = quantize_decoder(exact)
    assert all(isinstance(layer.qkv, Int8Matrix) for layer in quantized.layers) and isinstance(quantized.head, Int8Matrix)
    ids = torch.tensor([[1, 5, 9, 42, 7, 3, 11, 12]])
    agree, worst = 0, 0.0
    with torch.inference_mode():
        caches = DynamicCache(config=model.config), DynamicCache(config=model.config)
        for cache in caches:
            model(input_ids=ids, past_key_values=cache, use_cache=True)
        float_buffers, int8_buffers = KVBuffers(caches[0]), KVBuffers(caches[1])
        token = torch.tensor([[17]])
        for _ in range(STEPS):  # teacher-forced with the float path's tokens, so every step is compared
            expected = exact.step(token, float_buffers.length + exact.rope_offset(), float_buffers).float()
            got = quantized.step(token, int8_buffers.length + quantized.rope_offset(), int8_buffers).float()
            worst = max(worst, float((got - expected).abs().max() / expected.abs().max()))
            agree += int(got.argmax() == expected.argmax())
            token = expected.argmax(-1, keepdim=True)
    print(f"\nint8 vs {dtype} on {profile}: greedy agreement {agree}/{STEPS}, worst logit error {worst:.2%} of max")
    assert worst <= 0.05
    assert agree >= STEPS * 3 // 4


def test_int8_profile_decodes_through_the_quantized_step(tmp_path):
    from assistant.paths import user_paths

    profiles = user_paths().profiles_dir
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / "tiny-int8.toml").write_text(
        '[model]\nlocal_build = "tiny-smolvlm"\ndtype = "int8"\ndevice = "cpu"\nrandom_weights = true\n'
    )
    quantized, plain = Assistant.from_profile("tiny-int8"), Assistant.from_profile("tiny-smolvlm")
    assert quantized.engine.info.dtype.startswith("int8/")
    first = quantized.chat().ask("Hello, who are you?", max_new_tokens=12)
    reference = plain.chat().ask("Hello, who are you?", max_new_tokens=12)
    assert isinstance(quantized.engine.decoder.layers[0].gate_up, Int8Matrix)
    steps = [m.meta.extra.get("fast_decode_steps", 0) for m in quantized.store.get_conversation(first.conversation_id).messages if m.meta]
    assert sum(steps) > 0
    tokenizer = plain.engine.loaded.tokenizer
    ours, theirs = tokenizer.encode(first.text), tokenizer.encode(reference.text)
    same = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
    print(f"\nint8 profile: the first {same} of {len(theirs)} greedy tokens as float32's")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_kernel_runs_in_bf16_and_answers_in_the_models_dtype(dtype, monkeypatch):
    """torch's int8 kernel is vectorised for bf16 activations only: with fp32 ones it was 5x slower than bf16
    (an fp32 model decoded slower with int8 than without). The product is bf16 inside, the model's dtype outside."""
    import torch

    from assistant.engine import int8

    seen = []
    kernel = torch._weight_int8pack_mm

    def recording(x, weight, scales):
        seen.append((x.dtype, scales.dtype))
        return kernel(x, weight, scales)

    monkeypatch.setattr(torch, "_weight_int8pack_mm", recording)
    torch.manual_seed(2)
    weight = (torch.randn(64, 32) * 0.1).to(getattr(torch, dtype))
    x = torch.randn(1, 1, 32).to(getattr(torch, dtype))
    bias = torch.randn(64).to(getattr(torch, dtype))
    out = int8.matmul(x, quantize(weight), bias)
    assert seen == [(torch.bfloat16, torch.bfloat16)]
    assert out.dtype == getattr(torch, dtype) and out.shape == (1, 1, 64)
    expected = torch.nn.functional.linear(x.float(), weight.float(), bias.float())
    assert float((out.float() - expected).abs().max()) <= 0.02 * float(expected.abs().max())
