"""Model profiles: TOML files that say which model to run and how, validated with precise messages.

Profiles come from the shipped `profiles/` folder (package `assistant_profiles`) and the user's profile dir
(`user_paths().profiles_dir`); a user profile with the same name overrides a shipped one.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from .errors import AssistantError
from .paths import user_paths

DEFAULT_PROFILE = "smolvlm-256m"


@dataclass
class ModelSettings:
    id: str = ""
    """Hub id (`HuggingFaceTB/SmolVLM-256M-Instruct`) or a local directory."""
    revision: str = "main"
    local_build: str = ""
    """Name of a model built locally (tiny-smolvlm, tiny-smolvlm2, tiny-qwen2vl, bench-smolvlm-256m) instead of `id`."""
    dtype: Literal["auto", "float32", "bfloat16", "float16", "int8"] = "auto"
    """int8: weights load as `auto`, decoding runs int8 weight-only on the CPU (engine/int8.py)."""
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"
    trust_remote_code: bool = False
    backend: str = "transformers"
    """Which registered backend runs the model: `transformers` (in this process), `openai` (a server), a plugin's."""
    random_weights: bool = False
    """True for models built locally with random weights: their replies are noise, only the speed is real."""
    base_url: str = ""
    """openai backend: the server's API root, e.g. http://127.0.0.1:8000/v1 (`id` is the served model's name)."""
    api_key_env: str = ""
    """openai backend: the NAME of an environment variable holding the API key (a key is never written here)."""
    timeout: float = 120.0
    """openai backend: seconds to wait for the server's next bytes."""
    max_retries: int = 2
    """openai backend: retries after 429/503 (with backoff) before giving up."""
    allow_insecure: bool = False
    """openai backend: allow plain http:// to a host that is not this machine (screens would cross in clear)."""


@dataclass
class ImageSettings:
    mode: Literal["detailed", "quick"] = "detailed"
    """detailed: the processor's own tiling; quick: one tile, no splitting (fewer tokens, faster, less detail)."""
    longest_edge: int = 0
    """Resize images so their longest edge is at most this (0: the processor's default)."""
    max_pixels: int = 0
    """Qwen-style pixel budget per image (0: the processor's default)."""


@dataclass
class GenerationSettings:
    max_new_tokens: int = 512
    min_new_tokens: int = 0
    """Generate at least this many tokens (the benchmark uses it for a fixed decode length)."""
    temperature: float = 0.0
    """0 means greedy decoding."""
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int = -1
    """Seed for sampled replies (temperature > 0), for replies that can be reproduced; -1: not fixed."""
    fast_decode: bool = True
    """Decode through the engine's fused one-token step (Llama/Qwen2 text models on the CPU; see
    engine/decoding.py); false: transformers' own forward for every token."""


@dataclass
class ChatSettings:
    system_prompt: str = ""
    context_limit: int = 0
    """Tokens of context the chat may use (0: the model's own maximum)."""


@dataclass
class GroundingSettings:
    format: str = "json1000"
    coordinates: Literal["norm1000", "norm1", "pixel"] = "norm1000"
    """Coordinate system of plain [x1, y1, x2, y2] lists for the generic fallback parser."""


@dataclass
class LoraSettings:
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05


@dataclass
class DocumentSettings:
    pdf_mode: Literal["image", "text", "both"] = "both"
    page_budget: int = 3
    """Most pages sent to the model for one question."""
    dpi: int = 144


@dataclass
class PluginSettings:
    disable: list[str] = field(default_factory=list)


@dataclass
class AgentSettings:
    max_calls: int = 24
    """Most tool calls in one agent run (one question); later calls are skipped and the run ends."""
    max_calls_per_reply: int = 8
    """Most tool calls run from one reply; the rest of that reply's calls are skipped."""


@dataclass
class Profile:
    name: str = ""
    description: str = ""
    model: ModelSettings = field(default_factory=ModelSettings)
    image: ImageSettings = field(default_factory=ImageSettings)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    chat: ChatSettings = field(default_factory=ChatSettings)
    grounding: GroundingSettings = field(default_factory=GroundingSettings)
    lora: LoraSettings = field(default_factory=LoraSettings)
    documents: DocumentSettings = field(default_factory=DocumentSettings)
    plugins: PluginSettings = field(default_factory=PluginSettings)
    agent: AgentSettings = field(default_factory=AgentSettings)
    source: str = ""
    """The file this profile was read from."""

    @property
    def model_label(self) -> str:
        return self.model.local_build or self.model.id

    def with_remote(self, base_url: str, model: str | None = None) -> "Profile":
        """A copy that sends its chats to an OpenAI-compatible server (`--base-url URL --model NAME`)."""
        served = model or (self.model.id if self.model.backend == "openai" else "")
        if not served:
            raise AssistantError("--base-url needs --model NAME: the model's name on that server (see its /v1/models)")
        remote = dataclasses.replace(self.model, backend="openai", base_url=base_url, id=served, local_build="")
        return dataclasses.replace(self, model=remote)

    def with_model(self, model: str) -> "Profile":
        """A copy that runs another model (hub id or local path) with the same settings."""
        copy = dataclasses.replace(self, model=dataclasses.replace(self.model, id=model, local_build=""))
        return copy


def looks_like_path(model: str) -> bool:
    """True for a `--model` value meant as a directory (`/x`, `./x`, `~/x`, `C:\\x`, `a/b/c`), not a hub id (`owner/name`)."""
    if model.startswith(("/", ".", "~", "\\")) or "\\" in model:
        return True
    if len(model) > 1 and model[1] == ":" and model[0].isalpha():
        return True
    return model.count("/") > 1


def check_model_source(model: str) -> None:
    """Refuse a path-like model value that is not a directory, before anything is saved or loaded."""
    if not model or not looks_like_path(model):
        return
    path = Path(model).expanduser()
    if path.is_dir():
        return
    what = "it is a file, not a directory" if path.exists() else "check the path"
    raise AssistantError(
        f"no such model directory: {model}; {what} (a model directory holds config.json and safetensors "
        "weights), or give a hub id such as HuggingFaceTB/SmolVLM-256M-Instruct"
    )


# --- locating profiles ------------------------------------------------------------------------

def shipped_profiles_dir() -> Path:
    import assistant_profiles

    return Path(assistant_profiles.__file__).parent


def profile_dirs() -> list[Path]:
    """Search order: the user's profile dir first, then the shipped profiles."""
    return [user_paths().profiles_dir, shipped_profiles_dir()]


def available_profiles() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for directory in reversed(profile_dirs()):
        if directory.is_dir():
            for path in sorted(directory.glob("*.toml")):
                found[path.stem] = path
    return dict(sorted(found.items()))


def load_profile(name_or_path: str | Path | None = None) -> Profile:
    """Load a profile by name (user dir, then shipped) or from a .toml path."""
    name = str(name_or_path or DEFAULT_PROFILE)
    candidate = Path(name).expanduser()
    if name.endswith(".toml") or candidate.is_file():
        if not candidate.is_file():
            raise AssistantError(f"profile file not found: {candidate}; check the path")
        return profile_from_file(candidate)
    profiles = available_profiles()
    if name not in profiles:
        known = ", ".join(profiles) or "none"
        raise AssistantError(
            f"unknown profile {name!r}; known profiles: {known} (`assistant profiles list` shows them)"
        )
    return profile_from_file(profiles[name])


def profile_from_file(path: Path) -> Profile:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise AssistantError(f"profile {path} is not valid TOML ({error}); fix the file") from None
    except OSError as error:
        raise AssistantError(f"cannot read profile {path} ({error.strerror})") from None
    data.setdefault("name", path.stem)
    profile = _build(Profile, data, path, "")
    profile.source = str(path)
    if not profile.model.id and not profile.model.local_build:
        raise AssistantError(f"profile {path}: [model] needs `id` (hub id or local path) or `local_build`")
    return profile


# --- validation -------------------------------------------------------------------------------

def _build(cls: type, data: Any, path: Path, prefix: str) -> Any:
    where = f"[{prefix}]" if prefix else "the top level"
    if not isinstance(data, dict):
        raise AssistantError(f"profile {path}: {prefix or 'profile'} must be a table")
    hints = typing.get_type_hints(cls)
    allowed = {f.name for f in dataclasses.fields(cls) if f.name != "source"}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in allowed:
            raise AssistantError(
                f"profile {path}: unknown key {key!r} in {where}; allowed keys: {', '.join(sorted(allowed))}"
            )
        dotted = f"{prefix}.{key}" if prefix else key
        expected = hints[key]
        if dataclasses.is_dataclass(expected):
            values[key] = _build(expected, value, path, dotted)
        else:
            values[key] = _check_value(expected, value, path, dotted)
    return cls(**values)


def _check_value(expected: Any, value: Any, path: Path, key: str) -> Any:
    origin = get_origin(expected)
    if origin is Literal:
        choices = get_args(expected)
        if value not in choices:
            allowed = ", ".join(repr(c) for c in choices)
            raise AssistantError(f"profile {path}: {key} = {value!r} is not allowed; use one of {allowed}")
        return value
    if origin in (list, typing.List):
        (item_type,) = get_args(expected)
        if not isinstance(value, list) or not all(isinstance(v, item_type) for v in value):
            raise AssistantError(f"profile {path}: {key} must be a list of {item_type.__name__}")
        return list(value)
    if origin in (types.UnionType, typing.Union):
        raise AssistantError(f"profile {path}: {key}: unsupported type")
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if expected is int and isinstance(value, bool) or not isinstance(value, expected):
        raise AssistantError(
            f"profile {path}: {key} = {value!r} must be {expected.__name__}"
        )
    if expected is float and not math.isfinite(value):
        raise AssistantError(f"profile {path}: {key} = {value!r} must be a finite number")
    if expected in (int, float) and value < 0 and key != "generation.seed":
        raise AssistantError(f"profile {path}: {key} = {value!r} must not be negative")
    low, high, why = _RANGES.get(key, (None, None, ""))
    if (low is not None and value <= low) or (high is not None and value > high):
        raise AssistantError(f"profile {path}: {key} = {value!r} {why}")
    return value


_RANGES: dict[str, tuple[float | None, float | None, str]] = {
    # key: (exclusive minimum, inclusive maximum, what to say)
    "generation.temperature": (None, 100.0, "is out of range; use 0 (greedy) up to about 2 (100 at most)"),
    "generation.top_p": (0.0, 1.0, "is out of range; use a value above 0 and at most 1 (1 keeps every token)"),
    "generation.repetition_penalty": (0.0, None, "must be above 0 (1.0 means no penalty)"),
    "generation.max_new_tokens": (0, None, "must be at least 1"),
}


def describe(profile: Profile) -> dict[str, Any]:
    """The profile as plain data (for `assistant profiles show`)."""
    return dataclasses.asdict(profile)
