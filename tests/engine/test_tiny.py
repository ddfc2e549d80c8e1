"""The offline models: built from nothing, loaded through the hub code path, generating, deterministic."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from assistant.engine import tiny
from assistant.errors import AssistantError

TINY = ("tiny-smolvlm", "tiny-qwen2vl")

# The chat template of Qwen/Qwen2-VL-7B-Instruct (chat_template.json), to check ours renders the same without tools.
REAL_QWEN2VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: "
    "{% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}"
    "{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

TWO_IMAGE_CHAT = [
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "A red square."}]},
    {"role": "user", "content": [{"type": "text", "text": "And this one?"}, {"type": "image"}]},
]


def _picture(width: int, height: int, seed: int = 0) -> Image.Image:
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (height, width, 3), generator=generator, dtype=torch.uint8)
    return Image.fromarray(pixels.numpy(), "RGB")


def _models(shared_cache: Path) -> Path:
    """Where the engine keeps built models (UserPaths.models_dir), so its tests reuse these builds."""
    return shared_cache / "models"


def _hashes(directory: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(directory.iterdir())}


@pytest.fixture(scope="module", params=TINY)
def loaded(request, shared_cache):
    """(kind, processor, model) loaded from the built directory exactly as a hub checkpoint would be."""
    directory = tiny.ensure_local_model(request.param, _models(shared_cache))
    processor = AutoProcessor.from_pretrained(directory, trust_remote_code=False)
    model = AutoModelForImageTextToText.from_pretrained(directory, trust_remote_code=False)
    return request.param, processor, model


def test_loads_as_the_real_classes_and_generates(loaded):
    kind, processor, model = loaded
    expected = {
        "tiny-smolvlm": ("Idefics3Processor", "Idefics3ForConditionalGeneration", "<end_of_utterance>"),
        "tiny-qwen2vl": ("Qwen2VLProcessor", "Qwen2VLForConditionalGeneration", "<|im_end|>"),
    }[kind]
    assert (type(processor).__name__, type(model).__name__) == expected[:2]
    end_of_turn = processor.tokenizer.convert_tokens_to_ids(expected[2])
    eos = model.generation_config.eos_token_id
    assert end_of_turn == (eos[0] if isinstance(eos, list) else eos)
    assert processor.tokenizer.eos_token == expected[2]

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in this image?"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=prompt, images=[_picture(300, 200)], return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=5, min_new_tokens=5, do_sample=False)

    assert output.shape == (1, inputs["input_ids"].shape[1] + 5)
    assert torch.equal(output[:, : inputs["input_ids"].shape[1]], inputs["input_ids"])
    # the reply is the model's own greedy continuation of this prompt (with its image), not just any string
    with torch.no_grad():
        logits = model(**inputs).logits
    assert int(output[0, inputs["input_ids"].shape[1]]) == int(logits[0, -1].argmax())


def test_two_images_in_two_turns_reach_the_model(loaded):
    kind, processor, model = loaded
    prompt = processor.apply_chat_template(TWO_IMAGE_CHAT, add_generation_prompt=True, tokenize=False)
    first, second = _picture(300, 200, seed=1), _picture(120, 90, seed=2)
    inputs = processor(text=prompt, images=[first, second], return_tensors="pt")
    if kind == "tiny-smolvlm":
        tiles = [processor.image_processor([image])["pixel_values"].shape[1] for image in (first, second)]
        assert inputs["pixel_values"].shape[:2] == (1, sum(tiles))
    else:
        assert inputs["image_grid_thw"].shape == (2, 3)
    output = model.generate(**inputs, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    assert output.shape == (1, inputs["input_ids"].shape[1] + 3)


def test_smolvlm_chat_template_has_the_real_shape(shared_cache):
    processor = AutoProcessor.from_pretrained(tiny.ensure_local_model("tiny-smolvlm", _models(shared_cache)))
    rendered = processor.apply_chat_template(TWO_IMAGE_CHAT, add_generation_prompt=True, tokenize=False)
    assert rendered == (
        "<|im_start|>User:<image>What is this?<end_of_utterance>\n"
        "Assistant: A red square.<end_of_utterance>\n"
        "User: And this one?<image><end_of_utterance>\n"
        "Assistant:"
    )


def test_qwen_chat_template_with_a_system_message(shared_cache):
    processor = AutoProcessor.from_pretrained(tiny.ensure_local_model("tiny-qwen2vl", _models(shared_cache)))
    system = {"role": "system", "content": [{"type": "text", "text": "Be brief."}]}
    rendered = processor.apply_chat_template([system, *TWO_IMAGE_CHAT], add_generation_prompt=True, tokenize=False)
    assert rendered == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is this?<|im_end|>\n"
        "<|im_start|>assistant\nA red square.<|im_end|>\n"
        "<|im_start|>user\nAnd this one?<|vision_start|><|image_pad|><|vision_end|><|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    without_system = processor.apply_chat_template(TWO_IMAGE_CHAT, add_generation_prompt=True, tokenize=False)
    assert without_system.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")


@pytest.mark.parametrize(
    "conversation",
    [
        TWO_IMAGE_CHAT,
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What happens?"}]}],
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}, {"role": "user", "content": "x"}],
    ],
)
@pytest.mark.parametrize("add_vision_id", [False, True])
def test_qwen_template_without_tools_renders_like_the_real_one(shared_cache, conversation, add_vision_id):
    processor = AutoProcessor.from_pretrained(tiny.ensure_local_model("tiny-qwen2vl", _models(shared_cache)))
    options = {"add_generation_prompt": True, "tokenize": False, "add_vision_id": add_vision_id}
    ours = processor.apply_chat_template(conversation, **options)
    real = processor.apply_chat_template(conversation, chat_template=REAL_QWEN2VL_TEMPLATE, **options)
    assert ours == real


def test_qwen_template_renders_tools_in_the_qwen_format(shared_cache):
    processor = AutoProcessor.from_pretrained(tiny.ensure_local_model("tiny-qwen2vl", _models(shared_cache)))
    tools = [{"type": "function", "function": {"name": "click", "parameters": {"type": "object"}}}]
    conversation = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Press OK."}]},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "click", "arguments": {"x": 3, "y": 4}}}]},
        {"role": "tool", "content": "clicked"},
        {"role": "tool", "content": [{"type": "image"}, {"type": "text", "text": "new screen"}]},
    ]
    rendered = processor.apply_chat_template(conversation, tools=tools, add_generation_prompt=True, tokenize=False)
    assert rendered == (
        "<|im_start|>system\nYou are a helpful assistant.\n\n# Tools\n\n"
        "You may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        '{"type": "function", "function": {"name": "click", "parameters": {"type": "object"}}}\n</tools>\n\n'
        "For each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Press OK.<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>\n{"name": "click", "arguments": {"x": 3, "y": 4}}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n<tool_response>\nclicked\n</tool_response>\n"
        "<tool_response>\n<|vision_start|><|image_pad|><|vision_end|>new screen\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_qwen_tool_call_tags_survive_skipping_special_tokens(shared_cache):
    processor = AutoProcessor.from_pretrained(tiny.ensure_local_model("tiny-qwen2vl", _models(shared_cache)))
    text = '<tool_call>\n{"name": "click"}\n</tool_call><|im_end|>'
    ids = processor.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert processor.tokenizer.decode(ids) == text
    assert processor.tokenizer.decode(ids, skip_special_tokens=True) == '<tool_call>\n{"name": "click"}\n</tool_call>'


def test_smolvlm_splits_a_large_image_into_tiles_and_a_global_image(shared_cache):
    processor = AutoProcessor.from_pretrained(tiny.ensure_local_model("tiny-smolvlm", _models(shared_cache)))
    size = tiny.TINY_SMOLVLM.image_size
    features = processor.image_processor([_picture(1000, 700)], return_row_col_info=True, return_tensors="pt")
    rows, cols = features["rows"][0][0], features["cols"][0][0]
    # 1000x700 -> longest edge 4 tiles -> 128x90 -> rounded up to tiles: 4 columns, 3 rows (the real one: 2048x1536)
    assert (rows, cols) == (3, 4)
    assert features["pixel_values"].shape == (1, rows * cols + 1, 3, size, size)

    inputs = processor(text="User:<image>Describe.", images=[_picture(1000, 700)], return_tensors="pt")
    tokens = processor.tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
    assert tokens.count("<image>") == (rows * cols + 1) * processor.image_seq_len
    assert tokens.count("<global-img>") == 1
    assert "<row_3_col_4>" in tokens and "<row_4_col_1>" not in tokens


@pytest.mark.parametrize("kind", TINY)
def test_same_seed_gives_identical_files_and_another_seed_other_weights(kind, tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        tiny.build_local_model(kind, tmp_path / name, seed=seed)
    first, again, other = (_hashes(tmp_path / name) for name in "abc")
    assert first == again
    assert first["model.safetensors"] != other["model.safetensors"]
    assert json.loads((tmp_path / "c" / "build_info.json").read_text())["seed"] == 1


def test_ensure_builds_once_and_rebuilds_an_outdated_build(tmp_path, monkeypatch):
    directory = tiny.ensure_local_model("tiny-qwen2vl", tmp_path)
    assert directory == tmp_path / "tiny-qwen2vl"
    info = tiny.read_build_info(directory)
    assert info is not None
    assert (info["kind"], info["build_version"], info["random_weights"]) == ("tiny-qwen2vl", tiny.BUILD_VERSION, True)
    assert info["parameters"] > 0
    assert [path.name for path in tmp_path.iterdir()] == ["tiny-qwen2vl"]  # no staging directory left behind

    def refuse(*args, **kwargs):
        raise AssertionError("a current build must not be rebuilt")

    real_build = tiny.build_local_model
    monkeypatch.setattr(tiny, "build_local_model", refuse)
    assert tiny.ensure_local_model("tiny-qwen2vl", tmp_path) == directory

    (directory / "build_info.json").write_text(json.dumps({**info, "build_version": -1}))
    (directory / "leftover.txt").write_text("from the old build")
    monkeypatch.setattr(tiny, "build_local_model", real_build)
    assert tiny.ensure_local_model("tiny-qwen2vl", tmp_path) == directory
    assert tiny.read_build_info(directory)["build_version"] == tiny.BUILD_VERSION
    assert not (directory / "leftover.txt").exists()
    assert [path.name for path in tmp_path.iterdir()] == ["tiny-qwen2vl"]


def test_a_failed_build_leaves_nothing_behind(tmp_path, monkeypatch):
    def explode(kind, out_dir, seed=0):
        (Path(out_dir) / "half-written").write_text("x")
        raise RuntimeError("disk full")

    monkeypatch.setattr(tiny, "build_local_model", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        tiny.ensure_local_model("tiny-smolvlm", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_unknown_kind_is_a_user_error(tmp_path):
    with pytest.raises(AssistantError, match="tiny-smolvlm, tiny-qwen2vl, bench-smolvlm-256m"):
        tiny.ensure_local_model("tiny-llava", tmp_path)
    with pytest.raises(AssistantError):
        tiny.build_local_model("tiny-llava", tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


def test_bench_model_has_the_exact_smolvlm_256m_architecture():
    """Checked on the meta device: the real checkpoint has 256,484,928 parameters in 471 tensors."""
    from transformers import Idefics3ForConditionalGeneration

    tokenizer = tiny.build_tokenizer("bench-smolvlm-256m")
    config = tiny.build_config("bench-smolvlm-256m", tokenizer)
    text, vision = config.text_config, config.vision_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads) == (
        576, 30, 9, 3)
    assert (text.intermediate_size, text.vocab_size, text.max_position_embeddings) == (1536, 49280, 8192)
    assert text.rope_parameters["rope_theta"] == 100000
    assert (vision.hidden_size, vision.num_hidden_layers, vision.num_attention_heads) == (768, 12, 12)
    assert (vision.intermediate_size, vision.image_size, vision.patch_size, config.scale_factor) == (3072, 512, 16, 4)
    with torch.device("meta"):
        model = Idefics3ForConditionalGeneration(config)
    assert sum(p.numel() for p in model.parameters()) == 256_484_928
    assert len(model.state_dict()) == 471

    # The real tokenizer's ids for every token the processor and template use.
    assert len(tokenizer) == 49280
    real_ids = {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2, "<global-img>": 49152,
                "<row_1_col_1>": 49153, "<row_6_col_6>": 49188, "<fake_token_around_image>": 49189,
                "<image>": 49190, "<end_of_utterance>": 49279}
    assert {token: tokenizer.convert_tokens_to_ids(token) for token in real_ids} == real_ids
    assert config.image_token_id == 49190


def test_bench_processor_tiles_like_smolvlm_256m():
    """The real processor turns a 100x80 image into a 4x4 grid plus a global image: 17 tiles, 1088 image tokens."""
    processor = tiny.build_processor("bench-smolvlm-256m")
    assert processor.image_seq_len == 64
    inputs = processor(text="User:<image>What is in this image?", images=[_picture(100, 80)], return_tensors="pt")
    assert inputs["pixel_values"].shape == (1, 17, 3, 512, 512)
    tokens = processor.tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
    assert (tokens.count("<image>"), tokens.count("<fake_token_around_image>"), tokens.count("<global-img>")) == (
        1088, 18, 1)
