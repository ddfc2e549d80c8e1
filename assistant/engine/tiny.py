"""Offline, randomly initialised vision-language models of real transformers architectures, built into a directory."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import AssistantError

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

TINY_KINDS = ("tiny-smolvlm", "tiny-qwen2vl", "bench-smolvlm-256m", "tiny-smolvlm2")
SMOLVLM2_KINDS = ("tiny-smolvlm2",)
"""Built as transformers' `smolvlm` model type (SmolVLM2: SmolVLMProcessor with its video processor)."""

# Bump when anything a build writes changes: ensure_local_model rebuilds directories whose recorded version differs.
BUILD_VERSION = 1
BUILD_INFO_FILE = "build_info.json"

# The chat template of HuggingFaceTB/SmolVLM-256M-Instruct (chat_template.json), verbatim.
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

# The SmolVLM2 chat template (transformers' SmolVLMProcessor DEFAULT_CHAT_TEMPLATE, "the correct chat template to
# be used for videos"), verbatim: SmolVLM's plus `<video>`, which the processor expands into timed frames.
SMOLVLM2_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}{% endif %}"
    "{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
# SmolVLM2's `video_sampling` (preprocessor_config.json of SmolVLM2-256M-Video-Instruct): 1 frame a second, at most
# 64 frames; frames are resized to the vision encoder's input size.
SMOLVLM2_VIDEO_FPS = 1
SMOLVLM2_VIDEO_MAX_FRAMES = 64

# How Qwen2-VL renders one message's content (a string, or text/image/video parts), as in its real template.
_QWEN_CONTENT = (
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
)

# The Qwen2-VL-Instruct chat template, extended with Qwen2.5's tool format (a tools system block, assistant
# `tool_calls` as <tool_call> JSON, `tool` messages as <tool_response> in a user turn). Without tools and tool
# messages it renders exactly what the real Qwen2-VL template renders. A newline right after a block tag goes in an
# expression ({{ '\\n' }}): transformers renders templates with trim_blocks, which drops it otherwise.
QWEN2VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% if tools %}<|im_start|>system\n"
    "{% if messages[0]['role'] == 'system' %}"
    "{% if messages[0]['content'] is string %}{{ messages[0]['content'] }}"
    "{% else %}{% for content in messages[0]['content'] %}{% if 'text' in content %}{{ content['text'] }}"
    "{% endif %}{% endfor %}{% endif %}"
    "{% else %}You are a helpful assistant.{% endif %}"
    "{{ '\\n\\n' }}# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
    "{% for tool in tools %}{{ '\\n' }}{{ tool | tojson }}{% endfor %}"
    "{{ '\\n' }}</tools>\n\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}'
    "\n</tool_call><|im_end|>\n{% endif %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' and not tools %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "{% if loop.first and message['role'] == 'system' and tools %}"
    "{% elif message['role'] == 'tool' %}"
    "{% if loop.first or messages[loop.index0 - 1]['role'] != 'tool' %}<|im_start|>user{% endif %}"
    "{{ '\\n' }}<tool_response>\n" + _QWEN_CONTENT + "{{ '\\n' }}</tool_response>"
    "{% if loop.last or messages[loop.index0 + 1]['role'] != 'tool' %}<|im_end|>\n{% endif %}"
    "{% elif message['role'] == 'assistant' and message['tool_calls'] %}"
    "<|im_start|>assistant{% if message['content'] %}{{ '\\n' }}" + _QWEN_CONTENT + "{% endif %}"
    "{% for tool_call in message['tool_calls'] %}"
    "{% if tool_call['function'] is defined %}{% set tool_call = tool_call['function'] %}{% endif %}"
    "{{ '\\n<tool_call>\\n{\"name\": \"' + tool_call['name'] + '\", \"arguments\": ' }}"
    "{% if tool_call['arguments'] is string %}{{ tool_call['arguments'] }}"
    "{% else %}{{ tool_call['arguments'] | tojson }}{% endif %}"
    "{{ '}\\n</tool_call>' }}{% endfor %}<|im_end|>\n"
    "{% else %}<|im_start|>{{ message['role'] }}\n" + _QWEN_CONTENT + "<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Added tokens of SmolVLM (Idefics3) in their real order, after the base BPE vocabulary.
_IDEFICS3_ADDED = (
    ["<global-img>"]
    + [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
    + ["<fake_token_around_image>", "<image>"]
    + [f"<|reserved_special_token_{i}|>" for i in range(88)]
    + ["<end_of_utterance>"]
)
# Base-vocabulary specials of SmolLM2 (ids 0, 1, 2).
_SMOLLM_BASE_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Added tokens of Qwen2-VL in their real order (Qwen2.5's tool and FIM tokens included); (token, special).
_QWEN_ADDED: list[tuple[str, bool]] = [
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
]


@dataclass(frozen=True)
class Idefics3Sizes:
    """Every size that defines an Idefics3 (SmolVLM) build."""

    base_vocab: int
    vision_hidden: int
    vision_layers: int
    vision_heads: int
    vision_intermediate: int
    image_size: int
    patch_size: int
    scale_factor: int
    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    text_intermediate: int
    longest_edge: int
    save_dtype: str  # "float32" or "bfloat16"

    @property
    def image_seq_len(self) -> int:
        return (self.image_size // self.patch_size) ** 2 // self.scale_factor**2

    @property
    def vocab_size(self) -> int:
        return self.base_vocab + len(_IDEFICS3_ADDED)


@dataclass(frozen=True)
class Qwen2VLSizes:
    """Every size that defines a Qwen2-VL build."""

    base_vocab: int
    vocab_size: int
    vision_embed: int
    vision_layers: int
    vision_heads: int
    vision_mlp_ratio: int
    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    text_intermediate: int
    mrope_section: tuple[int, int, int]
    min_pixels: int
    max_pixels: int
    save_dtype: str  # "float32" or "bfloat16"


TINY_SMOLVLM = Idefics3Sizes(
    base_vocab=512,
    vision_hidden=32,
    vision_layers=2,
    vision_heads=2,
    vision_intermediate=64,
    image_size=32,
    patch_size=8,
    scale_factor=2,
    text_hidden=64,
    text_layers=2,
    text_heads=4,
    text_kv_heads=2,
    text_intermediate=128,
    longest_edge=4 * 32,
    save_dtype="float32",
)

# HuggingFaceTB/SmolVLM-256M-Instruct: SigLIP-base/16 at 512px, SmolLM2-135M, pixel shuffle 4 (64 tokens a tile).
BENCH_SMOLVLM_256M = Idefics3Sizes(
    base_vocab=49152,
    vision_hidden=768,
    vision_layers=12,
    vision_heads=12,
    vision_intermediate=3072,
    image_size=512,
    patch_size=16,
    scale_factor=4,
    text_hidden=576,
    text_layers=30,
    text_heads=9,
    text_kv_heads=3,
    text_intermediate=1536,
    longest_edge=4 * 512,
    save_dtype="bfloat16",
)

TINY_QWEN2VL = Qwen2VLSizes(
    base_vocab=512,
    vocab_size=576,  # the embedding is larger than the tokenizer, as in the real model (151936 > 151665)
    vision_embed=32,
    vision_layers=2,
    vision_heads=2,
    vision_mlp_ratio=2,
    text_hidden=64,
    text_layers=2,
    text_heads=4,
    text_kv_heads=2,
    text_intermediate=128,
    mrope_section=(2, 3, 3),
    min_pixels=56 * 56,
    max_pixels=64 * 28 * 28,
    save_dtype="float32",
)


def ensure_local_model(kind: str, cache_dir: Path) -> Path:
    """Return `cache_dir/kind`, building it first when it is missing or its recorded build version differs.

    The build goes to a temporary directory beside it and is renamed into place, so a crash or a concurrent
    build never leaves a half-written model where a loader would find it.
    """
    _check_kind(kind)
    cache_dir = Path(cache_dir)
    target = cache_dir / kind
    if _is_current(target, kind):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{kind}-building-", dir=cache_dir))
    try:
        build_local_model(kind, staging)
        if target.exists():
            if _is_current(target, kind):  # another process finished first
                shutil.rmtree(staging, ignore_errors=True)
                return target
            stale = cache_dir / f".{kind}-stale-{uuid.uuid4().hex}"
            os.replace(target, stale)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(staging, target)
        except OSError:
            if not _is_current(target, kind):
                raise
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def build_local_model(kind: str, out_dir: Path, seed: int = 0) -> None:
    """Build `kind` with random weights (same seed, same bytes) into `out_dir`, loadable with from_pretrained."""
    sizes = _sizes(kind)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(kind)
    model = _random_model(build_config(kind, tokenizer), seed)
    parameters = sum(p.numel() for p in model.parameters())
    processor = build_processor(kind, tokenizer)
    _save(model, processor, _generation_config(sizes, tokenizer), out_dir, sizes.save_dtype)
    info = {
        "kind": kind,
        "build_version": BUILD_VERSION,
        "seed": seed,
        "random_weights": True,
        "parameters": parameters,
        "architecture": type(model).__name__,
    }
    (out_dir / BUILD_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def read_build_info(model_dir: Path) -> dict[str, Any] | None:
    """The build record of a built model directory, or None when there is none (or it is unreadable)."""
    try:
        info = json.loads((Path(model_dir) / BUILD_INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _check_kind(kind: str) -> None:
    if kind not in TINY_KINDS:
        raise AssistantError(f"Unknown local model kind {kind!r}: use one of {', '.join(TINY_KINDS)}.")


def _is_current(model_dir: Path, kind: str) -> bool:
    info = read_build_info(model_dir)
    return info is not None and info.get("kind") == kind and info.get("build_version") == BUILD_VERSION


# --- tokenizers -------------------------------------------------------------------------------------------------


def training_corpus() -> list[str]:
    """A few hundred deterministic English sentences (chat, screenshots, documents, boxes, tool calls)."""
    subjects = ["The cat", "A small dog", "The red car", "This window", "The user", "My screenshot",
                "The document", "A blue button", "The chart", "The assistant", "Every page", "The old map"]
    verbs = ["shows", "contains", "points at", "hides", "describes", "opens", "covers", "explains"]
    objects = ["a green tree", "the search field", "two people", "a long table of numbers", "the settings menu",
               "a photo of the sea", "the title of the report", "an error message", "the close icon",
               "a short poem"]
    places = ["on the left", "near the top", "in the corner", "at the bottom of the screen", "in the middle",
              "next to the logo"]
    sentences = [
        f"{s} {v} {o} {p}."
        for s, v, o, p in itertools.islice(itertools.product(subjects, verbs, objects, places), 0, None, 17)
    ]
    questions = ["What is in this image?", "Describe the picture in one sentence.", "Where is the OK button?",
                 "Can you read the text on this page?", "How many windows are open?", "Why does the app fail?",
                 "Summarise the document, please.", "Which file should I open next?"]
    sentences += questions
    for n in range(0, 1000, 37):
        sentences.append(f"The box is [{n}, {n // 2}, {n + 120}, {n + 64}] and the point is ({n % 97}, {n % 53}).")
        sentences.append(f'{{"name": "click", "arguments": {{"x": {n}, "y": {1000 - n}}}}}')
    sentences += [
        "Hello! How can I help you today?",
        "I can see a terminal with some green text.",
        "Sure, here is a short answer: yes.",
        "The quick brown fox jumps over the lazy dog.",
        "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 2048.",
        "Punctuation: , . ; : ! ? ' \" ( ) [ ] { } < > / \\ - _ + = * & % $ # @",
    ]
    return sentences


def _train_bpe(base_vocab: int, base_specials: list[str]) -> "Tokenizer":
    """A byte-level BPE trained on the built-in corpus, padded with filler tokens to exactly `base_vocab` entries."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=base_vocab,
        min_frequency=2,
        special_tokens=base_specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_corpus(), trainer=trainer)
    data = json.loads(tokenizer.to_str())
    # Trained specials live in the base vocab (ids 0..); drop them from added_tokens, they are re-added later.
    data["added_tokens"] = []
    vocab: dict[str, int] = data["model"]["vocab"]
    if len(vocab) > base_vocab:
        raise AssertionError(f"BPE training gave {len(vocab)} tokens, more than {base_vocab}")
    while len(vocab) < base_vocab:  # unreachable by merges, so they never appear in encodings
        vocab[f"<filler_{len(vocab)}>"] = len(vocab)
    return Tokenizer.from_str(json.dumps(data))


def _add_tokens(tokenizer: "Tokenizer", tokens: list[tuple[str, bool]]) -> None:
    """Register added tokens in order: a token already in the vocab keeps its id, a new one takes the next id.

    Special ones are dropped by `skip_special_tokens`; the others (e.g. `<tool_call>`) survive decoding.
    """
    from tokenizers import AddedToken

    for content, special in tokens:
        existing = tokenizer.token_to_id(content)
        expected = existing if existing is not None else tokenizer.get_vocab_size(with_added_tokens=True)
        added = AddedToken(content, special=special, normalized=False)
        if special:
            tokenizer.add_special_tokens([added])
        else:
            tokenizer.add_tokens([added])
        if tokenizer.token_to_id(content) != expected:
            raise AssertionError(f"{content} landed on id {tokenizer.token_to_id(content)}, not {expected}")


def _smolvlm_tokenizer(sizes: Idefics3Sizes, chat_template: str = SMOLVLM_CHAT_TEMPLATE) -> "PreTrainedTokenizerFast":
    from transformers import PreTrainedTokenizerFast

    tokenizer = _train_bpe(sizes.base_vocab, _SMOLLM_BASE_SPECIALS)
    _add_tokens(tokenizer, [(token, True) for token in _SMOLLM_BASE_SPECIALS])  # ids 0-2, now marked special
    _add_tokens(tokenizer, [(token, True) for token in _IDEFICS3_ADDED])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        model_max_length=8192,
        clean_up_tokenization_spaces=False,
        chat_template=chat_template,
    )


def _qwen_tokenizer(sizes: Qwen2VLSizes) -> "PreTrainedTokenizerFast":
    from transformers import PreTrainedTokenizerFast

    tokenizer = _train_bpe(sizes.base_vocab, [])
    _add_tokens(tokenizer, _QWEN_ADDED)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
        chat_template=QWEN2VL_CHAT_TEMPLATE,
    )


# --- configs, processors, models --------------------------------------------------------------------------------


def build_tokenizer(kind: str) -> "PreTrainedTokenizerFast":
    """The tokenizer of `kind`: a locally trained byte-level BPE with the real model's special tokens and template."""
    sizes = _sizes(kind)
    if kind in SMOLVLM2_KINDS:
        return _smolvlm_tokenizer(sizes, SMOLVLM2_CHAT_TEMPLATE)  # type: ignore[arg-type]
    if isinstance(sizes, Idefics3Sizes):
        return _smolvlm_tokenizer(sizes)
    return _qwen_tokenizer(sizes)


def build_config(kind: str, tokenizer: "PreTrainedTokenizerFast | None" = None) -> Any:
    """The model config of `kind` (no weights): Idefics3Config or Qwen2VLConfig, token ids taken from the tokenizer."""
    sizes = _sizes(kind)
    tokenizer = tokenizer if tokenizer is not None else build_tokenizer(kind)
    if isinstance(sizes, Idefics3Sizes):
        return _idefics3_config(sizes, tokenizer, smolvlm=kind in SMOLVLM2_KINDS)
    return _qwen2vl_config(sizes, tokenizer)


def _sizes(kind: str) -> "Idefics3Sizes | Qwen2VLSizes":
    _check_kind(kind)
    return {
        "tiny-smolvlm": TINY_SMOLVLM,
        "tiny-qwen2vl": TINY_QWEN2VL,
        "bench-smolvlm-256m": BENCH_SMOLVLM_256M,
        "tiny-smolvlm2": TINY_SMOLVLM,
    }[kind]


def _idefics3_config(sizes: Idefics3Sizes, tokenizer: "PreTrainedTokenizerFast", smolvlm: bool = False) -> Any:
    """Idefics3Config (SmolVLM), or with `smolvlm` the same sizes as SmolVLMConfig (SmolVLM2's `smolvlm` type)."""
    from transformers import Idefics3Config, SmolVLMConfig

    im_start, im_end = tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    text_config = {
        "model_type": "llama",
        "vocab_size": sizes.vocab_size,
        "hidden_size": sizes.text_hidden,
        "intermediate_size": sizes.text_intermediate,
        "num_hidden_layers": sizes.text_layers,
        "num_attention_heads": sizes.text_heads,
        "num_key_value_heads": sizes.text_kv_heads,
        "head_dim": sizes.text_hidden // sizes.text_heads,
        "max_position_embeddings": 8192,
        "rope_parameters": {"rope_type": "default", "rope_theta": 100000.0},
        "rms_norm_eps": 1e-5,
        "hidden_act": "silu",
        "attention_bias": False,
        "bos_token_id": im_start,
        "eos_token_id": im_end,
        "pad_token_id": im_end,
        "tie_word_embeddings": False,
    }
    vision_config = {
        "model_type": "smolvlm_vision" if smolvlm else "idefics3_vision",
        "hidden_size": sizes.vision_hidden,
        "intermediate_size": sizes.vision_intermediate,
        "num_hidden_layers": sizes.vision_layers,
        "num_attention_heads": sizes.vision_heads,
        "image_size": sizes.image_size,
        "patch_size": sizes.patch_size,
        "hidden_act": "gelu_pytorch_tanh",
        "layer_norm_eps": 1e-6,
    }
    config_class = SmolVLMConfig if smolvlm else Idefics3Config
    return config_class(
        text_config=text_config,
        vision_config=vision_config,
        scale_factor=sizes.scale_factor,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        tie_word_embeddings=False,  # SmolVLM-256M-Instruct ships a separate lm_head
        pad_token_id=im_end,
    )


def _qwen2vl_config(sizes: Qwen2VLSizes, tokenizer: "PreTrainedTokenizerFast") -> Any:
    from transformers import Qwen2VLConfig

    if len(tokenizer) > sizes.vocab_size:
        raise AssertionError(f"tokenizer has {len(tokenizer)} tokens, the model only {sizes.vocab_size}")
    if sum(sizes.mrope_section) * 2 != sizes.text_hidden // sizes.text_heads:
        raise AssertionError("mrope_section must sum to head_dim / 2")
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name, _ in _QWEN_ADDED}
    text_config = {
        "model_type": "qwen2_vl_text",
        "vocab_size": sizes.vocab_size,
        "hidden_size": sizes.text_hidden,
        "intermediate_size": sizes.text_intermediate,
        "num_hidden_layers": sizes.text_layers,
        "num_attention_heads": sizes.text_heads,
        "num_key_value_heads": sizes.text_kv_heads,
        "max_position_embeddings": 32768,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 1000000.0,
            "mrope_section": list(sizes.mrope_section),
        },
        "rms_norm_eps": 1e-6,
        "hidden_act": "silu",
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }
    vision_config = {
        "model_type": "qwen2_vl_vision",
        "depth": sizes.vision_layers,
        "embed_dim": sizes.vision_embed,
        "hidden_size": sizes.text_hidden,
        "num_heads": sizes.vision_heads,
        "mlp_ratio": sizes.vision_mlp_ratio,
        "hidden_act": "quick_gelu",
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    return Qwen2VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,  # as Qwen2-VL-7B; tied random embeddings just echo the last prompt token
    )


def build_processor(kind: str, tokenizer: "PreTrainedTokenizerFast | None" = None) -> Any:
    """The processor of `kind`: the family's real processor class, set up like the real model's at this scale."""
    sizes = _sizes(kind)
    tokenizer = tokenizer if tokenizer is not None else build_tokenizer(kind)
    if kind in SMOLVLM2_KINDS:
        return _smolvlm2_processor(sizes, tokenizer)  # type: ignore[arg-type]
    if isinstance(sizes, Idefics3Sizes):
        from transformers import Idefics3ImageProcessor, Idefics3Processor

        image_processor = Idefics3ImageProcessor(
            do_convert_rgb=True,
            do_resize=True,
            size={"longest_edge": sizes.longest_edge},
            resample=1,  # LANCZOS, as the real preprocessor_config.json
            do_image_splitting=True,
            max_image_size={"longest_edge": sizes.image_size},
            do_rescale=True,
            rescale_factor=1 / 255,
            do_normalize=True,
            image_mean=[0.5, 0.5, 0.5],
            image_std=[0.5, 0.5, 0.5],
            do_pad=True,
        )
        return Idefics3Processor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            image_seq_len=sizes.image_seq_len,
            chat_template=SMOLVLM_CHAT_TEMPLATE,
        )
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    pixels = {"shortest_edge": sizes.min_pixels, "longest_edge": sizes.max_pixels}
    patches = {"patch_size": 14, "temporal_patch_size": 2, "merge_size": 2}
    return Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=pixels, **patches),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(size=pixels, **patches),
        chat_template=QWEN2VL_CHAT_TEMPLATE,
    )


def _smolvlm2_processor(sizes: Idefics3Sizes, tokenizer: "PreTrainedTokenizerFast") -> Any:
    """SmolVLMProcessor with SmolVLM2's image and video processors (video frames squared to the encoder's size)."""
    from transformers import SmolVLMImageProcessor, SmolVLMProcessor, SmolVLMVideoProcessor

    common: dict[str, Any] = {
        "do_convert_rgb": True,
        "do_resize": True,
        "resample": 1,  # LANCZOS, as the real preprocessor_config.json
        "max_image_size": {"longest_edge": sizes.image_size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "do_pad": True,
    }
    image_processor = SmolVLMImageProcessor(
        size={"longest_edge": sizes.longest_edge}, do_image_splitting=True, **common
    )
    video_size = {"longest_edge": sizes.image_size}
    video_processor = SmolVLMVideoProcessor(
        size=video_size,
        video_sampling={"fps": SMOLVLM2_VIDEO_FPS, "max_frames": SMOLVLM2_VIDEO_MAX_FRAMES, "video_size": video_size},
        **common,
    )
    return SmolVLMProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        image_seq_len=sizes.image_seq_len,
        chat_template=SMOLVLM2_CHAT_TEMPLATE,
    )


def _generation_config(sizes: "Idefics3Sizes | Qwen2VLSizes", tokenizer: "PreTrainedTokenizerFast") -> Any:
    """Greedy by default; stops at the end-of-turn token the chat template writes after each reply."""
    from transformers import GenerationConfig

    if isinstance(sizes, Idefics3Sizes):
        bos, eos, pad = tokenizer.convert_tokens_to_ids(["<|im_start|>", "<end_of_utterance>", "<|im_end|>"])
        return GenerationConfig(bos_token_id=bos, eos_token_id=eos, pad_token_id=pad)
    im_end, endoftext = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    return GenerationConfig(bos_token_id=endoftext, eos_token_id=[im_end, endoftext], pad_token_id=endoftext)


def _random_model(config: Any, seed: int) -> Any:
    """Instantiate on CPU in float32 with the model's own initialisation, seeded so builds are reproducible."""
    import torch
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Qwen2VLForConditionalGeneration,
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
    )

    if isinstance(config, SmolVLMConfig):
        model_class = SmolVLMForConditionalGeneration
    elif isinstance(config, Idefics3Config):
        model_class = Idefics3ForConditionalGeneration
    else:
        model_class = Qwen2VLForConditionalGeneration
    torch.manual_seed(seed)
    with torch.device("cpu"):
        model = model_class(config)
    return model.eval()


def _save(model: Any, processor: Any, generation: Any, out_dir: Path, dtype_name: str) -> None:
    """Write the weights (one safetensors file, in `dtype_name`), the configs and the processor files."""
    import torch
    from transformers.utils import logging as hf_logging

    model.generation_config = generation
    dtype = getattr(torch, dtype_name)
    if dtype is not model.dtype:
        model = model.to(dtype)
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Writing model shards" bar in CLI output or test logs
    try:
        model.save_pretrained(out_dir)
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    processor.save_pretrained(out_dir)
