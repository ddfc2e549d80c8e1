"""Tiles encoded in groups give the features of the one-batch encoder (engine.tiles)."""

from __future__ import annotations

from assistant import Assistant
from assistant.engine.tiles import encode_tiles_in_groups
from tests.helpers import make_image


def test_grouped_tiles_give_the_same_features(tmp_path):
    import torch
    from PIL import Image

    bot = Assistant.from_profile("tiny-smolvlm")
    loaded = bot.engine.loaded
    bot.engine.vision_cache.max_bytes = 0  # encode every time (the vision cache would answer the second call)
    model, processor = loaded.model, loaded.processor
    image = Image.open(make_image(tmp_path / "wide.png", (1400, 700), "purple")).convert("RGB")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[prompt], images=[[image]], return_tensors="pt")
    tiles = inputs["pixel_values"].shape[1]
    assert tiles > 3, "the picture should split into several tiles"
    vision = model.model.vision_model
    calls = []
    vision.embeddings.register_forward_hook(lambda module, args, output: calls.append(output.shape[0]))

    def features():
        calls.clear()
        with torch.inference_mode():
            return model.model.get_image_features(inputs["pixel_values"], inputs["pixel_attention_mask"])

    assert encode_tiles_in_groups(model, group=2)
    grouped = features()
    assert calls == [2] * (tiles // 2) + [1] * (tiles % 2)
    encode_tiles_in_groups(model, group=1000)
    whole = features()
    assert calls == [tiles]
    torch.testing.assert_close(_per_image(grouped), _per_image(whole), rtol=1e-5, atol=1e-5)


def _per_image(output):
    """get_image_features' per-image features (a tuple of tensors in transformers 5)."""
    features = getattr(output, "pooler_output", output)
    return list(features) if isinstance(features, (list, tuple)) else [features]


def test_loading_groups_tiles_and_other_families_are_left_alone():
    smol = Assistant.from_profile("tiny-smolvlm").engine.loaded.model
    assert smol.model.vision_model._tile_group == 4
    qwen = Assistant.from_profile("tiny-qwen2vl").engine.loaded.model
    assert encode_tiles_in_groups(qwen) is False
