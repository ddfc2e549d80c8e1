"""Load a profile's model and processor through transformers' own `from_pretrained`, with actionable errors."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import AssistantError
from ..paths import user_paths
from ..profiles import Profile
from .memory import apply_mmap_threshold
from .tiles import encode_tiles_in_groups

log = logging.getLogger(__name__)

Progress = Callable[[str, float | None], None]
"""progress(message, fraction or None): called while loading (download, weights, ready)."""


@dataclass
class LoadedModel:
    model: Any
    processor: Any
    profile: Profile
    source: str
    """Where the weights came from: a hub id or a local directory."""
    device: str
    dtype: Any
    family: str
    """transformers model_type (idefics3, qwen2_vl, ...): chooses small per-family input details."""
    context_limit: int
    adapter: str | None = None

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer


def configure_torch_threads() -> None:
    """Honour ASSISTANT_THREADS (torch's own default, all cores, is right for most machines)."""
    import torch

    from ..envsettings import read_number

    count = read_number("ASSISTANT_THREADS", "a whole number of threads, 1 or more",
                        f"torch's default ({torch.get_num_threads()})", whole=True, minimum=1)
    if count is not None:
        torch.set_num_threads(int(count))


def resolve_device(setting: str) -> str:
    """`auto` = cuda > mps > cpu; an explicit device that is not present is an error the user can fix."""
    import torch

    if setting == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if setting == "cuda" and not torch.cuda.is_available():
        raise AssistantError("the profile asks for device 'cuda' but no CUDA GPU is visible; use device = \"auto\"")
    if setting == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise AssistantError("the profile asks for device 'mps' but Metal is not available; use device = \"auto\"")
    return setting


def cpu_has_native_bf16() -> bool:
    """True on CPUs with AVX512-BF16 or AMX, where bf16 matmuls run natively (not emulated)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_dtype(setting: str, device: str) -> Any:
    """`auto`: bf16 on GPUs and CPUs that run it natively, fp16 on MPS, fp32 on other CPUs.

    The SmolVLM and Qwen checkpoints are published in bf16, so bf16 loses nothing they had; on a CPU with
    AMX it encodes images about 3x faster than fp32 and halves the bytes each decoded token reads.
    """
    import torch

    if setting not in ("auto", "int8"):  # int8: the weights load as `auto`, the decode step quantizes (engine/int8.py)
        return getattr(torch, setting)
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


def model_source(profile: Profile, progress: Progress | None = None) -> str:
    """The directory or hub id to load: locally built models are built on first use."""
    if profile.model.local_build:
        from .tiny import ensure_local_model

        cache = user_paths().models_dir
        if progress:
            progress(f"building {profile.model.local_build} locally", None)
        return str(ensure_local_model(profile.model.local_build, cache))
    return profile.model.id


def missing_model_error(profile: Profile, source: str, error: BaseException) -> AssistantError:
    offline = os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True")
    why = "offline mode (HF_HUB_OFFLINE=1) is on" if offline else f"it could not be downloaded ({type(error).__name__})"
    return AssistantError(
        f"model {source} is not in the local cache and {why}; connect once to download it, "
        "try offline with `--profile tiny-smolvlm`, or use a local copy with `--model PATH`"
    )


def download_model(source: str, revision: str, progress: Progress | None) -> str:
    """Fetch a hub model (safetensors and configs only) with progress; a local dir is returned as is."""
    if Path(source).expanduser().is_dir():
        return str(Path(source).expanduser())
    from huggingface_hub import snapshot_download

    tqdm_class = None
    if progress is not None:
        tqdm_class = _progress_tqdm(progress)
    return snapshot_download(
        repo_id=source,
        revision=revision,
        allow_patterns=["*.json", "*.safetensors", "*.txt", "*.jinja", "*.model", "tokenizer*"],
        tqdm_class=tqdm_class,
    )


def _progress_tqdm(progress: Progress) -> Any:
    from tqdm.auto import tqdm

    class ProgressTqdm(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            result = super().update(n)
            if self.total:
                progress(f"downloading {self.desc or 'model'}", min(1.0, self.n / self.total))
            return result

    return ProgressTqdm


def load_model(
    profile: Profile,
    progress: Progress | None = None,
    *,
    device: str | None = None,
    dtype: Any = None,
    model_kwargs: dict[str, Any] | None = None,
) -> LoadedModel:
    """Load processor + model for a profile. Missing models give one actionable AssistantError.

    `device`/`dtype` override the profile's; `model_kwargs` go to `from_pretrained` (the fine-tune plugin passes
    a 4-bit `quantization_config` and a `device_map`, which then places the weights itself).
    """
    configure_torch_threads()
    apply_mmap_threshold()
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # progress goes through `progress`, not tqdm on stderr
    transformers_logging.set_verbosity_error()

    source = model_source(profile, progress)
    revision = profile.model.revision or "main"
    trust = bool(profile.model.trust_remote_code)
    try:
        local_dir = download_model(source, revision, progress)
    except AssistantError:
        raise
    except Exception as error:  # hub errors come in many classes; all mean "not available"
        raise missing_model_error(profile, source, error) from None
    if trust:
        from ..guard import announce
        from ..remotecode import consent_notice

        notice = consent_notice(source, revision, local_dir)
        if notice:
            log.warning("%s", notice)
            announce("assistant", f"trust_remote_code {source}", notice)
    device = device or resolve_device(profile.model.device)
    dtype = dtype if dtype is not None else resolve_dtype(profile.model.dtype, device)
    extra = dict(model_kwargs or {})
    if progress:
        quantised = " in 4-bit" if "quantization_config" in extra else ""
        progress(f"loading {profile.model_label}{quantised} on {device}", None)
    try:
        config = AutoConfig.from_pretrained(local_dir, trust_remote_code=trust)
        processor = AutoProcessor.from_pretrained(local_dir, trust_remote_code=trust)
        model = AutoModelForImageTextToText.from_pretrained(
            local_dir,
            dtype=dtype,
            attn_implementation=profile.model.attn_implementation,
            trust_remote_code=trust,
            use_safetensors=True,
            **extra,
        )
    except ValueError as error:
        if "trust_remote_code" in str(error):
            raise AssistantError(
                f"model {source} needs custom code from its repository; review it, then set "
                "trust_remote_code = true in the profile's [model] table"
            ) from None
        raise AssistantError(f"cannot load model {source}: {error}".splitlines()[0]) from None
    except OSError as error:
        raise AssistantError(
            f"cannot load model {source}: {str(error).splitlines()[0]}; it must hold safetensors weights "
            "and a processor config"
        ) from None
    except ImportError as error:  # a processor's optional package, e.g. SmolVLM2's num2words
        raise AssistantError(f"cannot load model {source}: {str(error).splitlines()[0]}") from None
    if "device_map" not in extra:
        model.to(device)
    model.eval()
    encode_tiles_in_groups(model)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    limit = profile.chat.context_limit or int(getattr(text_config, "max_position_embeddings", 0) or 8192)
    if progress:
        progress("ready", 1.0)
    return LoadedModel(
        model=model,
        processor=processor,
        profile=profile,
        source=source,
        device=device,
        dtype=dtype,
        family=str(getattr(config, "model_type", "")),
        context_limit=limit,
    )
