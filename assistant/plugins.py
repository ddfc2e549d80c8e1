"""The plugin manager: built-in plugins, third-party ones from entry points, blocking, failure isolation.

A third-party plugin that fails to import, fails to register, or raises inside a hook is recorded in
`failures` (shown by `assistant plugins list`) and never takes the assistant down. Built-in plugins are
trusted code: their bugs surface as bugs.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable, Iterable

import pluggy

from . import hookspecs

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "assistant"

DEFAULT_PLUGINS: tuple[str, ...] = (
    "assistant_plugins.screenshot",
    "assistant_plugins.pdf",
    "assistant_plugins.grounding.plugin",
    "assistant_plugins.finetune.plugin",
    "assistant_plugins.tools",
)


@dataclass
class PluginFailure:
    name: str
    stage: str
    """import, register or a hook name."""
    error: str


@dataclass
class PluginInfo:
    name: str
    builtin: bool
    hooks: list[str]
    status: str = "ok"
    error: str = ""


@dataclass
class PluginManager:
    """pluggy's manager plus what the assistant needs: which plugins are built in and which failed."""

    pm: pluggy.PluginManager
    builtin: set[str] = field(default_factory=set)
    failures: list[PluginFailure] = field(default_factory=list)
    blocked: set[str] = field(default_factory=set)

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        """Register a plugin object/module (used by tests and embedding scripts)."""
        registered = self.pm.register(plugin, name=name)
        self.pm.check_pending()
        return registered

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)

    def collect(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call a `register_*` hook and return what the plugins registered.

        Each plugin runs in isolation: a third-party implementation that raises is recorded as a failure and
        skipped, the others still register.
        """
        items: list[Any] = []
        caller = getattr(self.pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            plugin_name = self.pm.get_name(impl.plugin) or repr(impl.plugin)
            registered: list[Any] = []
            try:
                args = {"register": registered.append, **kwargs}
                impl.function(**{name: args[name] for name in impl.argnames})
            except Exception as error:  # noqa: BLE001 - isolation is the point
                if plugin_name in self.builtin:
                    raise
                self._fail(plugin_name, hook_name, error)
                continue
            items.extend(registered)
        return items

    def call_first(self, hook_name: str, **kwargs: Any) -> Any:
        """Call a first-result hook; a third-party implementation that raises a non-AssistantError is skipped."""
        from .errors import AssistantError

        caller = getattr(self.pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            plugin_name = self.pm.get_name(impl.plugin) or repr(impl.plugin)
            try:
                result = impl.function(**{name: kwargs[name] for name in impl.argnames})
            except AssistantError:
                raise
            except Exception as error:  # noqa: BLE001
                if plugin_name in self.builtin:
                    raise
                self._fail(plugin_name, hook_name, error)
                continue
            if result is not None:
                return result
        return None

    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call an observer hook on every plugin; failures are recorded, never raised (built-ins included)."""
        caller = getattr(self.pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            plugin_name = self.pm.get_name(impl.plugin) or repr(impl.plugin)
            try:
                impl.function(**{name: kwargs[name] for name in impl.argnames})
            except Exception as error:  # noqa: BLE001
                self._fail(plugin_name, hook_name, error)

    def _fail(self, name: str, stage: str, error: BaseException) -> None:
        message = f"{type(error).__name__}: {error}"
        log.warning("plugin %s failed in %s: %s", name, stage, message, exc_info=error)
        self.failures.append(PluginFailure(name=name, stage=stage, error=message))

    def plugins(self) -> list[PluginInfo]:
        infos = []
        for name, plugin in sorted(self.pm.list_name_plugin()):
            hooks = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])
            infos.append(PluginInfo(name=name, builtin=name in self.builtin, hooks=hooks))
        failed = {}
        for failure in self.failures:
            failed.setdefault(failure.name, failure)
        for info in infos:
            if info.name in failed:
                info.status, info.error = "failed", f"{failed[info.name].stage}: {failed[info.name].error}"
        known = {info.name for info in infos}
        for name, failure in failed.items():
            if name not in known:
                infos.append(PluginInfo(name, False, [], "failed", f"{failure.stage}: {failure.error}"))
        for name in sorted(self.blocked):
            infos.append(PluginInfo(name, name in DEFAULT_PLUGINS, [], "disabled"))
        return infos


def blocked_from_env() -> set[str]:
    raw = os.environ.get("ASSISTANT_DISABLE_PLUGINS", "")
    return {item.strip() for item in raw.split(",") if item.strip()}


def _short_name(module_name: str) -> str:
    """`assistant_plugins.grounding.plugin` -> `grounding`: the name users type to disable a built-in."""
    parts = module_name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "assistant_plugins" else module_name


def create_plugin_manager(
    disable: Iterable[str] = (),
    load_entry_points: bool = True,
    builtins: Iterable[str] = DEFAULT_PLUGINS,
) -> PluginManager:
    """A plugin manager with the built-ins and the installed third-party plugins, minus the blocked ones."""
    pm = pluggy.PluginManager("assistant")
    pm.add_hookspecs(hookspecs)
    manager = PluginManager(pm=pm)
    blocked = set(disable) | blocked_from_env()
    for module_name in builtins:
        short = _short_name(module_name)
        if short in blocked or module_name in blocked:
            manager.blocked.add(short)
            continue
        module = importlib.import_module(module_name)
        pm.register(module, name=short)
        manager.builtin.add(short)
    if load_entry_points:
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            if entry_point.name in blocked:
                manager.blocked.add(entry_point.name)
                continue
            try:
                plugin = entry_point.load()
                pm.register(plugin, name=entry_point.name)
            except Exception as error:  # noqa: BLE001 - a broken plugin must not take the app down
                manager._fail(entry_point.name, "import", error)
    while True:
        try:
            pm.check_pending()
            break
        except pluggy.PluginValidationError as error:
            # A third-party plugin with a misspelt hook: unregister it loudly, keep the rest running.
            # check_pending names one offender at a time, so look again until none is left.
            offender = getattr(error, "plugin", None)
            name = pm.get_name(offender) if offender is not None else None
            if offender is None or name in manager.builtin:
                raise
            pm.unregister(offender)
            manager._fail(str(name), "register", error)
    return manager


_default: PluginManager | None = None
_default_lock = threading.Lock()


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, created on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = create_plugin_manager()
        return _default


def reset_plugin_manager(manager: PluginManager | None = None) -> None:
    """Replace (or drop) the process-wide manager; tests use it to start clean."""
    global _default
    with _default_lock:
        _default = manager


RegisterFn = Callable[[Any], None]
