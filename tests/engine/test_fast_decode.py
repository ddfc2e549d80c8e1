"""The fused decode step (engine.decoding) gives transformers' own output, and really runs.

Both paths run on the real tiny models of both families: the same conversations (follow-up with cache reuse,
a new image, regenerate, edit), the same sampled text under one seed, the same logits step by step.
"""

from __future__ import annotations

import pytest

from assistant import Assistant
from assistant.engine.decoding import KVBuffers, build_fast_decoder, text_decoder, unsupported_reason
from tests.engine.test_kv_reuse import script
from tests.helpers import make_image

TINY = ["tiny-smolvlm", "tiny-qwen2vl"]


def _bot(profile: str, fast: bool, dtype: str = "float32") -> Assistant:
    import torch

    bot = Assistant.from_profile(profile)
    engine = bot.engine
    engine.loaded.model.to(getattr(torch, dtype))
    if not fast:
        engine.decoder = None
    return bot


def _fast_steps(chat) -> list[int]:
    return [message.meta.extra.get("fast_decode_steps", 0) for message in chat.messages if message.role == "assistant"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("profile", TINY)
def test_conversation_identical_to_transformers_forward(profile, dtype, tmp_path):
    plain, fast = _bot(profile, False, dtype), _bot(profile, True, dtype)
    texts_plain, _ = script(plain, tmp_path)
    assert _stored_fast_steps(plain) == 0
    texts_fast, reused = script(fast, tmp_path)
    assert _stored_fast_steps(fast) > 0  # the two bots share this test's store
    assert texts_fast == texts_plain
    assert any(reused), "the script should continue from the conversation cache"
    assert fast.engine.decoder is not None and str(fast.engine.decoder.dtype) == f"torch.{dtype}"


def _stored_fast_steps(bot: Assistant) -> int:
    """Tokens the fused step computed, over every saved reply of every chat."""
    return sum(
        message.meta.extra.get("fast_decode_steps", 0)
        for summary in bot.store.list_conversations()
        for message in bot.store.get_conversation(summary.id).messages
        if message.meta is not None
    )


@pytest.mark.parametrize("profile", TINY)
def test_sampling_repetition_penalty_and_min_tokens_match(profile, tmp_path):
    import torch

    image = make_image(tmp_path / "a.png", (260, 180), "green")
    options = dict(max_new_tokens=14, temperature=0.9, top_p=0.8, repetition_penalty=1.3, min_new_tokens=10)
    texts = []
    for fast in (True, False):
        bot = _bot(profile, fast)
        for key, value in options.items():
            if key != "max_new_tokens":
                setattr(bot.profile.generation, key, value)
        chat = bot.chat()
        torch.manual_seed(1234)
        first = chat.ask("Describe this.", images=[image], max_new_tokens=14)
        second = chat.ask("Go on.", max_new_tokens=14)
        texts.append((first.text, second.text, first.completion_tokens, second.completion_tokens))
        assert (sum(_fast_steps(chat)) > 0) == fast
    assert texts[0] == texts[1]
    assert texts[0][2] >= 10 and texts[0][3] >= 10  # min_new_tokens kept EOS away


@pytest.mark.parametrize("profile", TINY)
def test_step_logits_match_transformers_forward(profile):
    """Token by token, past the buffer's first growth, the logits equal the model's own forward."""
    import torch
    from transformers import DynamicCache

    bot = Assistant.from_profile(profile)
    model = bot.engine.loaded.model
    decoder = build_fast_decoder(model, "cpu")
    assert decoder is not None
    ids = torch.tensor([[1, 5, 9, 42, 7, 3, 11, 12]])
    with torch.inference_mode():
        reference = DynamicCache(config=model.config)
        ours = DynamicCache(config=model.config)
        model(input_ids=ids, past_key_values=reference, use_cache=True)
        model(input_ids=ids, past_key_values=ours, use_cache=True)
        buffers = KVBuffers(ours, spare=3)  # grows twice within the steps below
        capacities = {buffers.capacity}
        token = torch.tensor([[17]])
        for _ in range(8):
            expected = model(input_ids=token, past_key_values=reference, use_cache=True).logits[:, -1]
            position = buffers.length + decoder.rope_offset()
            got = decoder.step(token, position, buffers)
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
            token = expected.argmax(-1, keepdim=True)
            capacities.add(buffers.capacity)
        assert sorted(capacities) == [11, 14, 17]
        assert ours.get_seq_length() == reference.get_seq_length()
        for mine, theirs in zip(ours.layers, reference.layers):
            torch.testing.assert_close(mine.keys, theirs.keys, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(mine.values, theirs.values, rtol=1e-5, atol=1e-5)


def test_bfloat16_uses_matrix_vector_products_and_stays_close(tmp_path):
    import torch

    bot = _bot("tiny-smolvlm", True, "bfloat16")
    model = bot.engine.loaded.model
    decoder = build_fast_decoder(model, "cpu")
    assert decoder.matrix_vector
    ids = torch.tensor([[1, 5, 9, 42]])
    from transformers import DynamicCache

    with torch.inference_mode():
        reference, ours = DynamicCache(config=model.config), DynamicCache(config=model.config)
        model(input_ids=ids, past_key_values=reference, use_cache=True)
        model(input_ids=ids, past_key_values=ours, use_cache=True)
        buffers = KVBuffers(ours)
        token = torch.tensor([[17]])
        expected = model(input_ids=token, past_key_values=reference, use_cache=True).logits[:, -1].float()
        got = decoder.step(token, buffers.length, buffers).float()
    assert (got - expected).abs().max() <= 0.05 * expected.abs().max()
    reply = bot.chat().ask("Describe this.", images=[make_image(tmp_path / "b.png")], max_new_tokens=6)
    assert reply.completion_tokens == 6


def test_fused_weights_are_the_modules_weights_and_unchanged():
    import torch

    bot = Assistant.from_profile("tiny-qwen2vl")  # q/k/v biases are fused too
    model = bot.engine.loaded.model
    decoder = bot.engine.decoder
    assert decoder is not None
    attention = text_decoder(model).layers[0].self_attn
    fused = decoder.layers[0]
    assert attention.q_proj.weight.data_ptr() == fused.qkv.data_ptr()
    assert attention.k_proj.weight.untyped_storage().data_ptr() == fused.qkv.untyped_storage().data_ptr()
    assert attention.v_proj.bias.untyped_storage().data_ptr() == fused.qkv_bias.untyped_storage().data_ptr()
    rows = attention.q_proj.out_features
    assert torch.equal(fused.qkv[rows : rows + attention.k_proj.out_features], attention.k_proj.weight)


def test_off_under_an_adapter_on_request_and_off_cpu(tmp_path):
    bot = Assistant.from_profile("tiny-smolvlm")
    engine = bot.engine
    engine.loaded.adapter = "someone"  # what activate_adapter sets: projections now include the LoRA delta
    assert engine._fast_decoder() is None
    engine.loaded.adapter = None
    assert engine._fast_decoder() is engine.decoder is not None
    assert "CPU" in unsupported_reason(engine.loaded.model, "cuda")

    from assistant.paths import user_paths

    profiles = user_paths().profiles_dir
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / "tiny-plain.toml").write_text(
        '[model]\nlocal_build = "tiny-smolvlm"\nrandom_weights = true\n\n[generation]\nfast_decode = false\n'
    )
    plain = Assistant.from_profile("tiny-plain")
    assert plain.engine.decoder is None
    chat = plain.chat()
    chat.ask("Hello?", max_new_tokens=4)
    assert sum(_fast_steps(chat)) == 0


def test_built_on_first_use_also_after_an_adapter_was_injected():
    """Loading does not fuse (start-up does not wait for it); the first reply does, on the base weights under
    any LoRA wrappers injected since (an adapter loaded before the first reply, then switched off)."""
    from peft import LoraConfig
    from peft.functional import inject_adapter_in_model

    from assistant.engine import lora

    bot = Assistant.from_profile("tiny-smolvlm")
    engine = bot.engine
    assert engine._decoder is None and engine._decoder_pending
    model = engine.loaded.model
    inject_adapter_in_model(LoraConfig(r=2, target_modules=["q_proj", "v_proj", "gate_proj"]), model, adapter_name="x")
    lora.disable(model)
    chat = bot.chat()
    chat.ask("Hello?", max_new_tokens=4)
    assert sum(_fast_steps(chat)) > 0
    decoder = engine.decoder
    wrapped = text_decoder(model).layers[0].self_attn.q_proj
    assert hasattr(wrapped, "base_layer") and wrapped.base_layer.weight.data_ptr() == decoder.layers[0].qkv.data_ptr()


def test_freed_prefill_memory_is_trimmed_before_decoding_and_the_reply_is_unchanged(monkeypatch, tmp_path):
    """The loop hands the encoder's and prefill's freed heap back before its first step (peak RSS, issue 19)."""
    from assistant.engine import decoding, memory

    image = make_image(tmp_path / "shot.png", (320, 200), "green")
    plain = _bot("tiny-smolvlm", False)
    expected = plain.chat().ask("What is in this picture?", images=[image], max_new_tokens=8).text
    fast = _bot("tiny-smolvlm", True)
    events: list[str] = []
    step = decoding.FastDecoder.step

    def trim() -> bool:
        events.append("trim")
        return memory.trim_freed_memory()

    def counted_step(self, *args, **kwargs):
        events.append("step")
        return step(self, *args, **kwargs)

    monkeypatch.setattr(decoding, "trim_freed_memory", trim)
    monkeypatch.setattr(decoding.FastDecoder, "step", counted_step)
    chat = fast.chat()
    assert chat.ask("What is in this picture?", images=[image], max_new_tokens=8).text == expected
    assert events[0] == "trim" and events.count("trim") == 1 and events.count("step") == _fast_steps(chat)[-1] > 0
