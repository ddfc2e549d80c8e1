"""The plugin manager: built-in plugins, third-party ones from entry points, blocking, failure isolation, clashes.

Every call into plugin code goes through `assistant.guard`: a third-party plugin that fails to import, fails to
register, raises inside a hook, or hands back something that breaks its contract (a registration, a parser, a
tool, a provider's result) is named, logged, recorded (shown by `assistant plugins list`) and skipped; it never
takes the assistant down. Built-in plugins are trusted code: their bugs surface as bugs.

Name clashes follow one policy for commands, slash commands, tools, grounding formats, trainers and backends:
the built-in wins unless the plugin's registration says `override=True`; between two third-party plugins the
one registered first wins. Every clash is kept in `clashes` and shown by `assistant plugins list`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import logging
import os
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable, Iterable, Iterator

import pluggy

from . import hookspecs
from .errors import AssistantError
from .guard import (
    ContractError,
    Owner,
    PluginError,
    all_of,
    announce,
    check_document_text,
    disable_hint,
    check_examples,
    check_page_text,
    check_rendered_page,
    check_screenshot,
    check_tool_result,
    check_train_result,
    describe_error,
    guard_call,
    guarded,
    names_like,
    one_line,
    optional,
    skipped,
)

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "assistant"

DEFAULT_PLUGINS: tuple[str, ...] = (
    "assistant_plugins.screenshot",
    "assistant_plugins.pdf",
    "assistant_plugins.grounding.plugin",
    "assistant_plugins.finetune.plugin",
    "assistant_plugins.tools",
    "assistant_plugins.actions.plugin",
    "assistant_plugins.transformers_backend",
    "assistant_plugins.openai_backend.plugin",
    "assistant_plugins.serve.plugin",
)

CORE = "assistant"
"""The owner name of what the core itself provides (its CLI commands, the TUI's own /commands)."""

FIRST_RESULT_CONTRACTS: dict[str, Callable[[Any], "str | None"]] = {
    "capture_screenshot": check_screenshot,
    "render_page": check_rendered_page,
    "page_text": check_page_text,
    "document_text": check_document_text,
}


@dataclass
class PluginFailure:
    name: str
    stage: str
    """import, register, a hook name, or a returned callable (`tool shout`, `grounding format boxes`)."""
    error: str
    """One line."""
    runtime: bool = False
    """A failure while being called (the plugin is loaded but failing), not while loading."""


@dataclass(frozen=True)
class Clash:
    """Two registrations with one name: which plugin's is used and which is dropped."""

    kind: str
    """command, slash command, tool, grounding format, trainer or backend."""
    name: str
    kept: str
    dropped: str
    override: bool = False
    """The kept one replaced a built-in because it declared override=True."""

    def describe(self) -> str:
        shown = f"/{self.name}" if self.kind == "slash command" else repr(self.name)
        if self.override:
            return f"{self.kind} {shown}: replaces the one of {self.dropped} (override=True)"
        return f"{self.kind} {shown}: {self.kept}'s is used, {self.dropped}'s is ignored (declare override=True to replace it)"


@dataclass
class PluginInfo:
    name: str
    builtin: bool
    hooks: list[str]
    status: str = "ok"
    error: str = ""
    disabled_by: str = ""
    """Where the plugin was disabled: the profile's [plugins] disable, or ASSISTANT_DISABLE_PLUGINS."""
    clashes: list[str] = field(default_factory=list)


# --- registrations ---------------------------------------------------------------------------------------------------

def _registration_kinds() -> dict[str, tuple[str, type]]:
    from .hooktypes import Backend, GroundingFormat, SlashCommand, Tool, Trainer

    return {
        "register_slash_commands": ("slash command", SlashCommand),
        "register_tools": ("tool", Tool),
        "register_grounding_formats": ("grounding format", GroundingFormat),
        "register_trainers": ("trainer", Trainer),
        "register_backends": ("backend", Backend),
    }


def _core_slash_names() -> set[str]:
    from .tui.commands import BUILTIN_COMMANDS

    return {info.name for info in BUILTIN_COMMANDS}


def _adopt(owner: Owner, kind: str, item: Any) -> Any:
    """The registration as the core uses it: its callables guarded, and the plugin that registered it recorded."""
    changes: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(item)}
    if "plugin" in names:
        changes["plugin"] = owner.name
    if not owner.builtin:
        if kind == "grounding format":
            changes["parse"] = _guarded_parse(owner, item)
        elif kind == "tool":
            changes["run"] = guarded(owner, f"tool {item.name}", item.run, validate=check_tool_result)
        elif kind == "trainer":
            changes["train"] = guarded(owner, f"trainer {item.name}", item.train, validate=check_train_result)
        elif kind == "slash command":
            changes["run"] = guarded(owner, f"/{item.name}", item.run)
    elif kind == "grounding format":
        changes["parse"] = _guarded_parse(owner, item)
    return dataclasses.replace(item, **changes) if changes else item


def _guarded_parse(owner: Owner, fmt: Any) -> Callable[..., Any]:
    """A parser that keeps the never-raises contract: a failure or an invalid result is an empty Grounding whose
    `raw["error"]` names the plugin (a built-in's invalid result raises ContractError: a bug)."""
    from .geometry import Grounding, check_grounding

    parse = fmt.parse
    stage = f"grounding format {fmt.name}"

    def guarded_parse(text: str, image_size: tuple[int, int], input_size: tuple[int, int] | None = None) -> Grounding:
        def validate(value: Any) -> str | None:
            return check_grounding(value, image_size)

        try:
            grounding = guard_call(owner, stage, parse, text, image_size, input_size, validate=validate)
        except PluginError as error:
            skipped(error)
            return Grounding(format=fmt.name, image_size=tuple(image_size), raw={"error": str(error), "plugin": owner.name})
        if tuple(grounding.image_size) == (0, 0):
            grounding.image_size = tuple(image_size)
        return grounding

    guarded_parse.__wrapped__ = parse  # type: ignore[attr-defined]
    return guarded_parse


# --- the manager -----------------------------------------------------------------------------------------------------

@dataclass
class PluginManager:
    """pluggy's manager plus what the assistant needs: which plugins are built in, failed, clashed, or are off."""

    pm: pluggy.PluginManager
    builtin: set[str] = field(default_factory=set)
    failures: list[PluginFailure] = field(default_factory=list)
    blocked: set[str] = field(default_factory=set)
    blocked_by: dict[str, str] = field(default_factory=dict)
    blocked_builtin: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    """Problems with the configuration (a misspelt name in a disable list), one line each."""
    clashes: list[Clash] = field(default_factory=list)
    disable: tuple[str, ...] = ()
    persist_failures: bool = True
    """Record run-time failures in the data dir (off while `plugins list` probes the registrations)."""

    @property
    def hook(self) -> Any:
        return self.pm.hook

    # --- registering -----------------------------------------------------------------------------------------------

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        """Register a plugin object/module (used by tests and embedding scripts); it counts as third-party.

        A misspelt hook raises pluggy.PluginValidationError with a "did you mean" hint; a wrapper hook raises
        AssistantError. Either way the plugin is not left registered.
        """
        registered = self.pm.register(plugin, name=name)
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as error:
            message = _validation_message(self.pm, plugin, error)
            self.pm.unregister(plugin)
            raise pluggy.PluginValidationError(plugin, f"plugin {registered}: {message}") from None
        problem = _wrapper_problem(self.pm, plugin)
        if problem:
            self.pm.unregister(plugin)
            raise AssistantError(f"plugin {registered}: {problem}")
        return registered

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)

    def owner(self, name: str) -> Owner:
        return Owner(name=name, builtin=name in self.builtin, on_failure=self._record)

    def plugin_name(self, impl: Any) -> str:
        return self.pm.get_name(impl.plugin) or repr(impl.plugin)

    # --- calling ---------------------------------------------------------------------------------------------------

    def collect(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call a `register_*` hook and return what the plugins registered, clashes resolved.

        Each plugin runs in isolation: a third-party implementation that raises, or registers something that is
        not the documented type, is recorded as a failure and skipped; the others still register. What a
        third-party plugin registered comes back with its callables guarded and its `plugin` field filled in.
        """
        if hook_name == "register_commands":
            return self.add_commands(kwargs["cli"])
        kind, expected = _registration_kinds().get(hook_name, ("", object))
        found: list[tuple[str, Any]] = []
        caller = getattr(self.pm.hook, hook_name)
        for impl in caller.get_hookimpls():  # registration order: built-ins, then third-party in load order
            plugin_name = self.plugin_name(impl)
            owner = self.owner(plugin_name)
            registered: list[Any] = []
            args = {"register": registered.append, **kwargs}
            if not self._call_isolated(owner, hook_name, impl, args):
                continue
            for item in registered:
                if kind and not isinstance(item, expected):
                    problem = f"registered {type(item).__name__}, not a {expected.__name__}"
                    if owner.builtin:
                        raise ContractError(f"built-in plugin {plugin_name} in {hook_name}: {problem}")
                    skipped(owner.failed(hook_name, problem))
                    continue
                found.append((plugin_name, _adopt(owner, kind, item) if kind else item))
        if not kind:
            return [item for _, item in found]
        return self._resolve_clashes(kind, found)

    def _call_isolated(self, owner: Owner, stage: str, impl: Any, args: dict[str, Any]) -> bool:
        """Call a hook implementation; False (recorded) when a third-party one fails, AssistantError included."""
        try:
            guard_call(owner, stage, impl.function, **{name: args[name] for name in impl.argnames})
        except PluginError as error:
            skipped(error)
            return False
        except AssistantError as error:
            if owner.builtin:
                raise
            skipped(owner.failed(stage, error))
            return False
        except (SystemExit, GeneratorExit) as error:  # sys.exit() while registering must not end every command
            if owner.builtin:
                raise
            skipped(owner.failed(stage, error))
            return False
        return True

    def _resolve_clashes(self, kind: str, found: list[tuple[str, Any]]) -> list[Any]:
        """One registration per name: the built-in unless the other declares override=True, else the first."""
        kept: dict[str, tuple[str, Any]] = {}
        core = _core_slash_names() if kind == "slash command" else set()
        for plugin_name, item in found:
            name = str(getattr(item, "name", ""))
            if name in core:
                if getattr(item, "override", False) and plugin_name not in self.builtin:
                    self._clash(Clash(kind, name, plugin_name, CORE, override=True))
                else:
                    self._clash(Clash(kind, name, CORE, plugin_name))
                    continue
            if name not in kept:
                kept[name] = (plugin_name, item)
                continue
            current_plugin, current = kept[name]
            current_builtin, new_builtin = current_plugin in self.builtin, plugin_name in self.builtin
            if current_builtin and not new_builtin and getattr(item, "override", False):
                kept[name] = (plugin_name, item)
                self._clash(Clash(kind, name, plugin_name, current_plugin, override=True))
            elif new_builtin and not current_builtin and not getattr(current, "override", False):
                kept[name] = (plugin_name, item)
                self._clash(Clash(kind, name, plugin_name, current_plugin))
            else:
                self._clash(Clash(kind, name, current_plugin, plugin_name,
                                  override=not current_builtin and new_builtin))
        return [item for _, item in kept.values()]

    def _clash(self, clash: Clash) -> None:
        if clash not in self.clashes:
            self.clashes.append(clash)
            log.info("plugin clash: %s", clash.describe())

    def add_commands(self, cli: Any) -> list[Any]:
        """Let plugins add CLI subcommands to `cli` (a click.Group); returns the commands they added.

        Built-ins go first. A third-party command with the name of a core or built-in one is put back to the
        original unless the command says `override = True` (an attribute on the click command); a third-party
        command runs through the guard, so whatever it raises names the plugin.
        """
        import click

        passthrough = (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort)
        restore_core_commands(cli)  # a second run in one process (tests, embedding) starts from the core's own
        impls = list(reversed(self.pm.hook.register_commands.get_hookimpls()))
        impls.sort(key=lambda impl: self.plugin_name(impl) not in self.builtin)
        added: list[Any] = []
        for impl in impls:
            plugin_name = self.plugin_name(impl)
            owner = self.owner(plugin_name)
            before = _command_tables(cli)
            if not self._call_isolated(owner, "register_commands", impl, {"cli": cli}):
                for group, commands in before.values():
                    group.commands.clear()
                    group.commands.update(commands)
                continue
            for path, (group, commands) in before.items():  # the root, then each core or built-in group
                if path and _command_tables(cli).get(path, (None,))[0] is not group:
                    continue  # the group itself was replaced: judged as a command of its parent
                added += self._judge_commands(owner, group, commands, path, passthrough)
        return added

    def _judge_commands(
        self, owner: Owner, group: Any, before: dict[str, Any], path: str, passthrough: tuple[type[BaseException], ...]
    ) -> list[Any]:
        """The clash policy for what one plugin did to one command group's table (`before`: the table before)."""
        plugin_name = owner.name
        added: list[Any] = []
        for name in [name for name in before if name not in group.commands]:
            group.commands[name] = before[name]  # a plugin may add commands, not remove others
        for name, command in list(group.commands.items()):
            previous = before.get(name)
            if previous is command:
                continue
            shown = f"{path} {name}" if path else name
            default_owner = getattr(group, "_assistant_plugin", CORE)  # a subcommand belongs to its group's plugin
            previous_owner = getattr(previous, "_assistant_plugin", default_owner) if previous is not None else None
            if previous is not None and previous_owner != plugin_name:
                previous_trusted = previous_owner == CORE or previous_owner in self.builtin
                if previous_trusted and not owner.builtin and getattr(command, "override", False):
                    self._clash(Clash("command", shown, plugin_name, previous_owner, override=True))
                    command._assistant_replaced = previous
                else:
                    self._clash(Clash("command", shown, previous_owner, plugin_name))
                    group.commands[name] = previous
                    continue
            command._assistant_plugin = plugin_name
            if not owner.builtin and not getattr(command.invoke, "__assistant_guarded__", False):
                command.invoke = guarded(owner, f"command `{shown}`", command.invoke, passthrough=passthrough)
            added.append(command)
        return added

    def call_first(self, hook_name: str, **kwargs: Any) -> Any:
        """Call a first-result hook, each plugin through the guard, its result checked against the contract.

        A third-party implementation that fails (raises anything but AssistantError, or returns a wrong value) is
        skipped and the next one is asked. When no other plugin answers, the failure is raised as a PluginError
        naming the plugin, instead of looking as if nobody handled the request.
        """
        validate = optional(FIRST_RESULT_CONTRACTS[hook_name]) if hook_name in FIRST_RESULT_CONTRACTS else None
        failed: list[PluginError] = []
        caller = getattr(self.pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            plugin_name = self.plugin_name(impl)
            arguments = {name: kwargs[name] for name in impl.argnames}
            try:
                result = guard_call(self.owner(plugin_name), hook_name, impl.function, validate=validate, **arguments)
            except PluginError as error:
                failed.append(error)
                continue
            except AssistantError as error:
                if failed and not isinstance(error, PluginError):
                    kind = "built-in" if plugin_name in self.builtin else "plugin"
                    raise AssistantError(f"{failed[0]}; the {kind} {plugin_name} could not help either: {error}") from None
                raise
            if result is not None:
                for error in failed:
                    skipped(error)
                return result
        if failed:
            raise failed[0]
        return None

    def call_each(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call a hook whose results are all used, each plugin guarded: [(plugin, result)] for non-None results.

        A third-party failure raises PluginError naming the plugin (callers whose fallback is "skip" catch it).
        """
        validate = check_examples if hook_name == "conversation_to_examples" else None
        results = []
        for impl in reversed(getattr(self.pm.hook, hook_name).get_hookimpls()):
            plugin_name = self.plugin_name(impl)
            arguments = {name: kwargs[name] for name in impl.argnames}
            result = guard_call(self.owner(plugin_name), hook_name, impl.function, validate=validate, **arguments)
            if result is not None:
                results.append((plugin_name, result))
        return results

    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call an observer hook on every plugin; failures are recorded, never raised (built-ins included)."""
        caller = getattr(self.pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            plugin_name = self.plugin_name(impl)
            try:
                impl.function(**{name: kwargs[name] for name in impl.argnames})
            except Exception as error:  # noqa: BLE001 - observers never break a reply
                self._record(plugin_name, hook_name, error)

    # --- failures --------------------------------------------------------------------------------------------------

    def _fail(self, name: str, stage: str, error: BaseException | str) -> None:
        """A load-time failure (import, register): kept for this process only, shown by `plugins list`."""
        message = describe_error(error)
        if isinstance(error, BaseException):
            log.warning("plugin %s failed in %s: %s", name, stage, message, exc_info=error)
        self.failures.append(PluginFailure(name=name, stage=stage, error=message))

    def _record(self, name: str, stage: str, error: BaseException | str) -> None:
        """A run-time failure (the guard calls it): kept here and, unless probing, in the data dir."""
        message = describe_error(error)
        self.failures.append(PluginFailure(name=name, stage=stage, error=message, runtime=True))
        if self.persist_failures:
            from .plugin_records import record_failure

            record_failure(name, stage, message)

    # --- listing ---------------------------------------------------------------------------------------------------

    def probe_registrations(self) -> None:
        """Call every `register_*` hook once (failures kept in this process only) so clashes are known."""
        self.persist_failures = False
        try:
            for hook_name in _registration_kinds():
                try:
                    self.collect(hook_name)
                except Exception as error:  # noqa: BLE001 - a built-in's bug must not hide the listing
                    log.exception("probing %s failed", hook_name)
                    line = f"warning: {hook_name} failed: {describe_error(error)}"
                    self.warnings.append(line)
                    announce(CORE, hook_name, line)
        finally:
            self.persist_failures = True

    def plugins(self) -> list[PluginInfo]:
        infos = []
        for name, plugin in sorted(self.pm.list_name_plugin()):
            hooks = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])
            infos.append(PluginInfo(name=name, builtin=name in self.builtin, hooks=hooks))
        failed: dict[str, PluginFailure] = {}
        for failure in sorted(self.failures, key=lambda failure: failure.runtime):  # load failures first
            failed.setdefault(failure.name, failure)
        for info in infos:
            if info.name in failed:
                failure = failed[info.name]
                info.status = "failing" if failure.runtime else "failed"
                info.error = f"{failure.stage}: {failure.error}"
        known = {info.name for info in infos}
        for name, failure in failed.items():
            if name not in known:
                infos.append(PluginInfo(name, False, [], "failed", f"{failure.stage}: {failure.error}"))
        for name in sorted(self.blocked):
            infos.append(PluginInfo(name, name in self.blocked_builtin, [], "disabled",
                                    disabled_by=self.blocked_by.get(name, "")))
        by_name = {info.name: info for info in infos}
        for clash in self.clashes:
            for name in (clash.kept, clash.dropped):
                if name in by_name:
                    line = clash.describe()
                    if line not in by_name[name].clashes:
                        by_name[name].clashes.append(line)
        return infos


def _command_tables(cli: Any, path: str = "") -> dict[str, tuple[Any, dict[str, Any]]]:
    """{"": (cli, its commands), "chats": (the chats group, its commands), ...}: each group's table, copied."""
    tables = {path: (cli, dict(cli.commands))}
    for name, command in cli.commands.items():
        if hasattr(command, "commands") and isinstance(command.commands, dict):
            tables.update(_command_tables(command, f"{path} {name}".strip()))
    return tables


def restore_core_commands(cli: Any) -> None:
    """Take the plugins' commands off `cli`, putting back the core commands that a plugin overrode."""
    for name, command in list(cli.commands.items()):
        while getattr(command, "_assistant_plugin", None) is not None:
            command = getattr(command, "_assistant_replaced", None)
        if command is None:
            del cli.commands[name]
        else:
            cli.commands[name] = command


# --- loading ---------------------------------------------------------------------------------------------------------

def _hookspec_names() -> list[str]:
    return [name for name, value in vars(hookspecs).items() if getattr(value, "assistant_spec", None) is not None]


def _validation_message(pm: pluggy.PluginManager, plugin: Any, error: BaseException) -> str:
    """pluggy's message in one line, with "did you mean" for a misspelt hook and the arguments for a wrong one."""
    unknown = [
        caller.name
        for caller in pm.get_hookcallers(plugin) or []
        if caller.spec is None and caller.get_hookimpls()
    ]
    specs = _hookspec_names()
    if unknown:
        parts = [f"unknown hook {name}{names_like(name, specs)}" for name in unknown]
        return f"{'; '.join(parts)}: hook functions must be named like the hooks in docs/plugins.md"
    text = one_line(str(error))
    match = re.search(r"for hook '(\w+)'", text)
    if match and "can not be found in the hookspec" in text:
        spec = getattr(hookspecs, match.group(1), None)
        if spec is not None:
            wanted = ", ".join(inspect.signature(spec).parameters)
            return f"{text}; {match.group(1)} takes: {wanted} (any subset, by these names)"
    return text


def _wrapper_problem(pm: pluggy.PluginManager, plugin: Any) -> str:
    for caller in pm.get_hookcallers(plugin) or []:
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and (getattr(impl, "wrapper", False) or getattr(impl, "hookwrapper", False)):
                return (f"hook {caller.name} is a wrapper (wrapper=True or hookwrapper=True); the assistant calls each "
                        "plugin on its own and does not run wrappers: use a plain @hookimpl (tryfirst/trylast to "
                        "order it)")
    return ""


def _load_entry_point(entry_point: Any) -> Any:
    """The plugin object an entry point names; a class is instantiated (it must take no arguments)."""
    plugin = entry_point.load()
    if inspect.isclass(plugin):
        try:
            plugin = plugin()
        except TypeError as error:
            raise AssistantError(
                f"the entry point names the class {plugin.__name__}, which cannot be created without arguments "
                f"({error}); point the entry point at a module or at an instance"
            ) from None
    return plugin


EXTRA_PLUGINS: dict[str, Any] = {}
"""Plugins loaded as if installed through an entry point (name -> object): `assistant.testing.installed` uses it."""


@dataclass(frozen=True)
class _Extra:
    name: str
    plugin: Any

    @property
    def value(self) -> str:
        return repr(self.plugin)

    def load(self) -> Any:
        return self.plugin


SLOW_IMPORT_S = 2.0
"""A third-party plugin whose import takes longer is named in a notice: every command that loads plugins waits."""


@contextlib.contextmanager
def _user_interrupts() -> Iterator[threading.Event]:
    """While third-party plugins are imported: an Event set when the user presses Ctrl+C (a real SIGINT).

    It tells the user's own Ctrl+C, which must stop the command, apart from a KeyboardInterrupt that a broken
    plugin raises at import, which is that plugin's failure. Off the main thread no SIGINT arrives there, so every
    KeyboardInterrupt is the plugin's.
    """
    pressed = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield pressed
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        yield pressed
        return

    def on_sigint(signum: int, frame: Any) -> None:
        pressed.set()
        if callable(previous):
            previous(signum, frame)  # Python's own handler raises KeyboardInterrupt
        else:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


def blocked_from_env() -> set[str]:
    raw = os.environ.get("ASSISTANT_DISABLE_PLUGINS", "")
    return {item.strip() for item in raw.split(",") if item.strip()}


def _short_name(module_name: str) -> str:
    """`assistant_plugins.grounding.plugin` -> `grounding`: the name users type to disable a built-in."""
    parts = module_name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "assistant_plugins" else module_name


def _note_slow_import(name: str, seconds: float) -> None:
    if seconds >= SLOW_IMPORT_S:
        line = (f"warning: plugin {name} took {seconds:.1f} s to import, and every command that loads plugins waits "
                f"for it; ask its author to import lazily, or {disable_hint(name)}")
        log.warning("%s", line)
        announce(name, "import time", line)


def create_plugin_manager(
    disable: Iterable[str] = (),
    load_entry_points: bool = True,
    builtins: Iterable[str] = DEFAULT_PLUGINS,
    disable_source: str = "the profile's [plugins] disable",
) -> PluginManager:
    """A plugin manager with the built-ins and the installed third-party plugins, minus the blocked ones."""
    pm = pluggy.PluginManager("assistant")
    pm.add_hookspecs(hookspecs)
    from_profile = [str(name).strip() for name in disable if str(name).strip()]
    from_env = blocked_from_env()
    manager = PluginManager(pm=pm, disable=tuple(from_profile))
    blocked = set(from_profile) | from_env
    sources = {name: disable_source for name in from_profile}
    for name in from_env:
        sources[name] = "ASSISTANT_DISABLE_PLUGINS" if name not in sources else f"{sources[name]} and ASSISTANT_DISABLE_PLUGINS"
    known: set[str] = set()

    def block(name: str, builtin: bool, *aliases: str) -> None:
        manager.blocked.add(name)
        manager.blocked_by[name] = next((sources[alias] for alias in (name, *aliases) if alias in sources), "")
        if builtin:
            manager.blocked_builtin.add(name)

    for module_name in builtins:
        short = _short_name(module_name)
        known.update((short, module_name))
        if short in blocked or module_name in blocked:
            block(short, True, module_name)
            continue
        module = importlib.import_module(module_name)
        pm.register(module, name=short)
        manager.builtin.add(short)
        problem = _wrapper_problem(pm, module)
        if problem:
            raise ContractError(f"built-in plugin {short}: {problem}")
    if load_entry_points:
        found = [entry_point for entry_point in entry_points(group=ENTRY_POINT_GROUP) if entry_point.name not in EXTRA_PLUGINS]
        for entry_point in [*found, *(_Extra(name, plugin) for name, plugin in EXTRA_PLUGINS.items())]:
            known.add(entry_point.name)
            if entry_point.name in blocked:
                block(entry_point.name, False)
                continue
            started = time.monotonic()
            try:
                with _user_interrupts() as user_pressed:
                    plugin = _load_entry_point(entry_point)
            except AssistantError as error:
                manager._fail(entry_point.name, "register", str(error))
                continue
            except BaseException as error:  # noqa: BLE001 - sys.exit() or a stray KeyboardInterrupt at import too
                if isinstance(error, KeyboardInterrupt) and user_pressed.is_set():
                    raise  # the user's own Ctrl+C stops the command
                manager._fail(entry_point.name, "import", error)
                continue
            finally:
                _note_slow_import(entry_point.name, time.monotonic() - started)
            try:
                pm.register(plugin, name=entry_point.name)
            except Exception as error:  # noqa: BLE001 - a wrong argument name, a plugin registered twice
                if pm.get_plugin(entry_point.name) is not None:
                    pm.unregister(name=entry_point.name)
                message = _validation_message(pm, plugin, error) if isinstance(error, pluggy.PluginValidationError) else error
                manager._fail(entry_point.name, "register", message)
                continue
            problem = _wrapper_problem(pm, plugin)
            if problem:
                pm.unregister(plugin)
                manager._fail(entry_point.name, "register", problem)
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
            message = _validation_message(pm, offender, error)
            pm.unregister(offender)
            manager._fail(str(name), "register", message)
    for name in sorted(blocked - known):
        line = f"warning: {sources.get(name, 'a disable list')} names {name!r}, which is not an installed plugin" \
               f"{names_like(name, known)}; `assistant plugins list` shows the names"
        manager.warnings.append(line)
        announce(name, "disable", line)
    return manager


# --- the process-wide manager ----------------------------------------------------------------------------------------

_default: PluginManager | None = None
_default_lock = threading.Lock()
_active: tuple[str | None, tuple[str, ...]] = (None, ())
"""The profile the process-wide manager follows, and that profile's [plugins] disable list."""


def use_profile(name: str | None) -> None:
    """Make the process-wide manager follow this profile's `[plugins] disable` (None: the default profile).

    The CLI calls it before plugins add their commands, so `plugins list`, `tools list`, `ground`, `train` and a
    plugin's own commands see the same plugins as `ask` and the TUI with that profile. A profile that cannot be
    loaded changes nothing here: the command that uses it reports the problem.
    """
    global _active, _default
    from .profiles import load_profile

    try:
        profile = load_profile(name)
    except Exception:  # noqa: BLE001 - reported by the command that needs the profile
        return
    wanted = (profile.name, tuple(profile.plugins.disable))
    with _default_lock:
        if wanted != _active:
            _active = wanted
            if _default is not None and _default.disable != wanted[1]:
                _default = None


def profile_in_argv(argv: Iterable[str]) -> str | None:
    """The value of `--profile`/`-p` on a command line (the group's or the subcommand's), else None."""
    args = list(argv)
    for index, arg in enumerate(args):
        if arg == "--":
            break
        if arg in ("--profile", "-p") and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith("--profile="):
            return arg.split("=", 1)[1]
    return None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, created on first use (with the active profile's disable list)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = create_plugin_manager(disable=_active[1],
                                             disable_source=f"profile {_active[0]} [plugins] disable" if _active[0]
                                             else "the profile's [plugins] disable")
        return _default


def builtin_plugin_manager() -> PluginManager:
    """A manager with the built-in plugins only (the active profile's disable list obeyed), for what needs no
    third-party code (`assistant --help`): it never imports an installed plugin."""
    return create_plugin_manager(disable=_active[1], load_entry_points=False)


def reset_plugin_manager(manager: PluginManager | None = None) -> None:
    """Replace (or drop) the process-wide manager; tests use it to start clean."""
    global _default
    with _default_lock:
        _default = manager


RegisterFn = Callable[[Any], None]
