"""The model side of training: loading (fp32 on CPU, bf16 autocast on GPUs that have it, QLoRA 4-bit on CUDA),
LoRA target modules restricted to the language model, the masked loss, and out-of-memory messages."""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from assistant.errors import AssistantError

from .collate import IGNORE, Encoder
from .dataset import Example

if TYPE_CHECKING:
    from assistant.engine.loading import LoadedModel
    from assistant.profiles import Profile

_NOT_QUANTISED = [
    rf"(?:.*\.)?{name}" for name in ("vision_model", "visual", "vision_tower", "connector", "multi_modal_projector")
] + ["lm_head"]
"""Modules kept out of 4-bit quantisation: the vision side and the output head (transformers matches these
patterns from the start of a module's full name, up to a name boundary)."""


def require_cuda_for_4bit() -> None:
    import torch

    if not torch.cuda.is_available():
        raise AssistantError(
            "--4bit needs a CUDA GPU (bitsandbytes 4-bit quantisation) and none is visible; train without --4bit "
            "(fp32 on this CPU) or on a machine with an NVIDIA GPU"
        )


def load_for_training(profile: "Profile", four_bit: bool, progress: Callable[[str], None] | None = None) -> "LoadedModel":
    """The profile's model ready for LoRA training: fp32 on CPU/MPS and on GPUs without bf16, bf16 otherwise."""
    if profile.model.backend != "transformers":
        from assistant.errors import AssistantError

        raise AssistantError(
            f"training and evaluating adapters need the transformers backend; profile {profile.name} uses "
            f"{profile.model.backend} ({profile.model.base_url or 'a plugin'}): pick a local profile with --profile"
        )
    import torch

    from assistant.engine.loading import load_model

    def relay(message: str, fraction: float | None) -> None:
        if progress is not None:
            progress(message)

    if four_bit:
        require_cuda_for_4bit()
        return load_4bit(profile, relay)
    loaded = load_model(profile, relay)
    if loaded.dtype not in (torch.float32, torch.bfloat16) or (loaded.device != "cuda" and loaded.dtype != torch.float32):
        loaded.model.to(torch.float32)  # fp16 without a loss scaler diverges; CPUs and MPS train in fp32
        loaded.dtype = torch.float32
    return loaded


def load_4bit(
    profile: "Profile", relay: Callable[[str, float | None], None] | None = None, device: str = "cuda"
) -> "LoadedModel":
    """QLoRA loading: NF4 weights with double quantisation, the vision side and lm_head left unquantised.

    `device` is "cuda" for training (checked by the caller); the tests use bitsandbytes' CPU backend.
    """
    import torch

    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise AssistantError("--4bit needs the bitsandbytes package: pip install bitsandbytes") from None
    from transformers import BitsAndBytesConfig

    from assistant.engine.loading import load_model

    on_cuda = device == "cuda"
    compute = torch.bfloat16 if not on_cuda or torch.cuda.is_bf16_supported() else torch.float16
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
        llm_int8_skip_modules=_NOT_QUANTISED,
    )
    return load_model(
        profile,
        relay,
        device=device,
        dtype=compute,
        model_kwargs={"quantization_config": quantization, "device_map": {"": 0 if on_cuda else device}},
    )


def _decoder_prefix(model: Any) -> str:
    get_decoder = getattr(model, "get_decoder", None)
    decoder = get_decoder() if callable(get_decoder) else None
    if decoder is not None:
        for name, module in model.named_modules():
            if module is decoder and name:
                return name
    return ""


CONNECTOR_PARTS = ("connector", "projector", "merger")
"""Name parts of the vision-language connector's layers (Idefics3/SmolVLM, LLaVA-style, Qwen2-VL's merger)."""


def lora_targets(
    model: Any, names: Sequence[str], include_vision: bool = False, include_connector: bool = False
) -> tuple[str, list[str]]:
    """(peft `target_modules` regex, the module names it selects).

    By default only linear layers of the language model whose last name part is in `names` (the profile's
    [lora] target_modules): the vision tower, the connector and lm_head stay frozen. `include_connector` adds the
    linear layers of the vision-language connector (cheap: no backward pass through the vision tower), and
    `include_vision` adds every
    linear layer of the vision tower and the connector.
    """
    import torch

    prefix = _decoder_prefix(model)
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    linear = {name: module for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}

    def in_text(name: str) -> bool:
        if prefix:
            return name.startswith(prefix + ".")
        return not any(part in name for part in ("vision", "visual", "connector", "projector"))

    wanted = set(names)
    text = [name for name in linear if in_text(name) and name.rsplit(".", 1)[-1] in wanted]
    if not text:
        leaves = sorted({name.rsplit(".", 1)[-1] for name in linear if in_text(name)})
        raise AssistantError(
            f"the profile's [lora] target_modules ({', '.join(names)}) match no layer of the language model; "
            f"its linear layers are named {', '.join(leaves) or 'nothing'}: set target_modules in the profile"
        )
    leaves = sorted({name.rsplit(".", 1)[-1] for name in text})
    pattern = rf"{re.escape(prefix)}\.(?:.*\.)?(?:{'|'.join(re.escape(leaf) for leaf in leaves)})" if prefix else ""
    matched = {name for name, _ in model.named_modules() if pattern and re.fullmatch(pattern, name)}
    if matched != set(text):  # the short form would catch other modules: name every layer instead
        pattern = "|".join(re.escape(name) for name in text)
    selected = list(text)
    if include_vision or include_connector:
        vision = [name for name, module in linear.items() if not in_text(name) and module is not output
                  and (include_vision or any(part in name for part in CONNECTOR_PARTS))]
        if vision:
            pattern = f"(?:{pattern})|(?:{'|'.join(re.escape(name) for name in vision)})"
            selected += vision
    return pattern, selected


def autocast(loaded: "LoadedModel") -> Any:
    """bf16/fp16 autocast on CUDA for half-precision bases (LoRA weights stay fp32); nothing on CPU."""
    import torch

    if loaded.device == "cuda" and loaded.dtype in (torch.bfloat16, torch.float16):
        return torch.autocast("cuda", dtype=loaded.dtype)
    return contextlib.nullcontext()


def batch_loss(model: Any, batch: Any, loaded: "LoadedModel") -> tuple[Any, int]:
    """(summed cross-entropy over the learned tokens, how many there were) for one encoded batch.

    Summing (not averaging) lets gradient accumulation divide by the tokens of the whole optimizer step, so
    `--batch-size 4` and `--batch-size 1 --grad-accum 4` train the same thing.
    """
    import torch

    inputs = dict(batch)
    labels = inputs.pop("labels")
    with autocast(loaded):
        output = model(**inputs, use_cache=False)
    logits = output.logits[:, :-1, :].float()
    targets = labels[:, 1:].to(logits.device)
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE, reduction="sum"
    )
    return loss, int((targets != IGNORE).sum())


def mean_loss(model: Any, encoder: Encoder, examples: Sequence[Example], batch_size: int) -> float | None:
    """Mean cross-entropy per learned token over `examples` (None when there are none); model mode kept."""
    import torch

    if not examples:
        return None
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    try:
        with torch.no_grad():
            for start in range(0, len(examples), batch_size):
                batch = encoder.encode(examples[start : start + batch_size]).to(encoder.loaded.device)
                loss, count = batch_loss(model, batch, encoder.loaded)
                total += float(loss)
                tokens += count
    finally:
        model.train(was_training)
    return total / tokens if tokens else None


def is_out_of_memory(error: BaseException) -> bool:
    import torch

    if isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error)
    return isinstance(error, (RuntimeError, MemoryError)) and (
        "out of memory" in text or "can't allocate memory" in text or isinstance(error, MemoryError)
    )


def out_of_memory_error(batch_size: int, four_bit: bool, resumable: bool) -> AssistantError:
    advice = []
    if not four_bit:
        advice.append("--4bit (CUDA GPUs)")
    if batch_size > 1:
        advice.append(f"a smaller --batch-size than {batch_size} with a larger --grad-accum")
    advice.append("--grad-checkpointing")
    advice.append("lower image resolution (a quick image profile, or [image] longest_edge / max_pixels)")
    tail = "; then continue with --resume" if resumable else ""
    return AssistantError("out of memory while training; try " + ", ".join(advice) + tail)


@contextlib.contextmanager
def translate_out_of_memory(batch_size: int, four_bit: bool, resumable: bool) -> Iterator[None]:
    try:
        yield
    except (RuntimeError, MemoryError) as error:
        if is_out_of_memory(error):
            raise out_of_memory_error(batch_size, four_bit, resumable) from None
        raise
