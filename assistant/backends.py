"""Choosing and loading the model backend a profile names (`[model] backend`), through `register_backends`.

The built-in `transformers` backend runs the model in this process; the built-in `openai` backend talks to an
OpenAI-compatible server (vLLM, SGLang, ollama, llama.cpp's server, `assistant serve`); plugins add others.
Everything above this (API, CLI, TUI, agent, server) sees only the `ModelBackend` protocol of hooktypes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from .errors import AssistantError

if TYPE_CHECKING:
    from .hooktypes import Backend, ModelBackend
    from .plugins import PluginManager
    from .profiles import Profile


def available_backends(plugins: "PluginManager") -> dict[str, "Backend"]:
    """Every registered backend by name (clashes already resolved by the plugin manager's policy)."""
    return {backend.name: backend for backend in plugins.collect("register_backends")}


def load_backend(
    profile: "Profile", plugins: "PluginManager", progress: "Callable[[str, float | None], None] | None" = None
) -> "ModelBackend":
    """Load the profile's backend; an unknown name is one line listing the available ones."""
    from .guard import guard_call

    name = profile.model.backend or "transformers"
    backends = available_backends(plugins)
    backend = backends.get(name)
    if backend is None:
        known = ", ".join(sorted(backends)) or "none (is the built-in backend plugin disabled?)"
        raise AssistantError(
            f"profile {profile.name or profile.source} asks for backend {name!r}, which no plugin provides; "
            f"available: {known} (set [model] backend in the profile)"
        )
    owner = plugins.owner(backend.plugin) if backend.plugin else None
    if owner is None:
        return backend.load(profile, progress)
    return guard_call(owner, f"backend {name} load", backend.load, profile, progress, validate=_check_backend)


def _check_backend(value: Any) -> str | None:
    for attribute in ("stream", "set_adapter", "close"):
        if not callable(getattr(value, attribute, None)):
            return f"returned {type(value).__name__}, which has no {attribute}() (see the ModelBackend protocol)"
    if not hasattr(value, "capabilities") or not hasattr(value, "info"):
        return f"returned {type(value).__name__} without capabilities/info (see the ModelBackend protocol)"
    return None


def unsupported(feature: str, backend: "ModelBackend") -> AssistantError:
    """The one line for a feature this backend lacks, e.g. adapters on a remote server."""
    return AssistantError(
        f"{feature} need the transformers backend; this profile uses {backend.name}"
        + (f" (remote: {backend.capabilities.remote})" if backend.capabilities.remote else "")
    )
