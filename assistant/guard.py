"""The plugin guard: every call into plugin code goes through `guard_call`, which names the plugin on failure.

A third-party plugin that raises (anything but AssistantError) or hands back a value that breaks its documented
contract is logged with its traceback, recorded in the data dir (`assistant plugins list` shows it), announced
once as a one-line notice naming the plugin and how to disable it, and turned into a `PluginError` the caller
maps to the documented fallback (skip that contribution). Built-in plugins are trusted code: their exceptions
propagate unchanged, so their bugs surface as bugs.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .errors import AssistantError

log = logging.getLogger(__name__)

Validator = Callable[[Any], "str | None"]
"""Returns None for a valid value, else what is wrong with it ("returned None, not a Grounding")."""


def disable_hint(plugin: str) -> str:
    return f'disable it with ASSISTANT_DISABLE_PLUGINS={plugin} or [plugins] disable = ["{plugin}"] in the profile'


def one_line(text: str, limit: int = 300) -> str:
    """Whitespace (pluggy's multi-line messages included) collapsed to single spaces, cut at `limit` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def describe_error(error: BaseException | str) -> str:
    if isinstance(error, str):
        return one_line(error)
    text = str(error)
    return one_line(f"{type(error).__name__}: {text}" if text else type(error).__name__)


class PluginError(AssistantError):
    """A third-party plugin failed or broke its contract; the message names it and says how to disable it.

    Exit status 1: a bug, but in someone else's code, reported as one line (the traceback is in the log).
    """

    exit_code = 1

    def __init__(self, plugin: str, stage: str, problem: str) -> None:
        self.plugin, self.stage, self.problem = plugin, stage, problem
        super().__init__(f"plugin {plugin} failed in {stage}: {problem}; {disable_hint(plugin)}")


class ContractError(TypeError):
    """A built-in plugin handed back a value that breaks its contract: a bug in the assistant."""


# --- notices: one line per (plugin, stage) per process, for the surfaces to show -------------------------------------

_listeners: list[Callable[[str], None]] = []
_announced: set[tuple[str, str]] = set()
_lock = threading.Lock()


def add_notice_listener(listener: Callable[[str], None]) -> Callable[[], None]:
    """Call `listener(line)` for each new plugin failure notice; returns a function that removes it."""
    with _lock:
        _listeners.append(listener)

    def remove() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return remove


def announce(plugin: str, stage: str, line: str) -> None:
    """Tell the listeners once per process per plugin and stage (a provider failing on 1,000 pages says it once)."""
    with _lock:
        if (plugin, stage) in _announced:
            return
        _announced.add((plugin, stage))
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(line)
        except Exception:  # noqa: BLE001 - a notice must never break the call that failed
            log.exception("plugin notice listener failed")


def reset_notices() -> None:
    """Forget which failures were announced (tests start clean)."""
    with _lock:
        _announced.clear()


# --- the guard -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Owner:
    """Who a call belongs to: the plugin's name, whether it is built in, and where its failures are recorded."""

    name: str
    builtin: bool
    on_failure: Callable[[str, str, "BaseException | str"], None] | None = None
    """on_failure(plugin, stage, error): the plugin manager records it (and the data dir keeps a count)."""

    def failed(self, stage: str, error: BaseException | str) -> PluginError:
        """Log, record and announce a failure; the PluginError to raise or to turn into a fallback."""
        problem = describe_error(error)
        if isinstance(error, BaseException):
            log.warning("plugin %s failed in %s: %s", self.name, stage, problem, exc_info=error)
        else:
            log.warning("plugin %s failed in %s: %s", self.name, stage, problem)
        if self.on_failure is not None:
            try:
                self.on_failure(self.name, stage, error)
            except Exception:  # noqa: BLE001 - recording must never hide the plugin's own failure
                log.exception("recording the failure of plugin %s failed", self.name)
        return PluginError(self.name, stage, problem)


def skipped(error: PluginError) -> None:
    """Announce a failure whose contribution was skipped (the caller carried on without it)."""
    announce(error.plugin, error.stage, f"warning: {error} (skipped)")


PASS_THROUGH: tuple[type[BaseException], ...] = (AssistantError,)


def guard_call(
    owner: Owner,
    stage: str,
    function: Callable[..., Any],
    *args: Any,
    validate: Validator | None = None,
    passthrough: tuple[type[BaseException], ...] = (),
    **kwargs: Any,
) -> Any:
    """Call plugin code. Third-party: any exception but AssistantError (and `passthrough`), or a returned value
    that `validate` rejects, raises PluginError naming the plugin. Built-in: exceptions propagate, an invalid
    value raises ContractError (a bug)."""
    try:
        result = function(*args, **kwargs)
    except PASS_THROUGH + passthrough:
        raise
    except Exception as error:  # noqa: BLE001 - isolation is the point
        if owner.builtin:
            raise
        raise owner.failed(stage, error) from error
    if inspect.isawaitable(result):
        return _guard_awaitable(owner, stage, result, validate, passthrough)
    _check(owner, stage, result, validate)
    return result


async def _guard_awaitable(
    owner: Owner, stage: str, awaitable: Any, validate: Validator | None, passthrough: tuple[type[BaseException], ...]
) -> Any:
    try:
        result = await awaitable
    except PASS_THROUGH + passthrough:
        raise
    except Exception as error:  # noqa: BLE001
        if owner.builtin:
            raise
        raise owner.failed(stage, error) from error
    _check(owner, stage, result, validate)
    return result


def _check(owner: Owner, stage: str, result: Any, validate: Validator | None) -> None:
    if validate is None:
        return
    problem = validate(result)
    if problem is None:
        return
    if owner.builtin:
        raise ContractError(f"built-in plugin {owner.name} in {stage}: {problem}")
    raise owner.failed(stage, problem)


def guarded(
    owner: Owner,
    stage: str,
    function: Callable[..., Any],
    validate: Validator | None = None,
    passthrough: tuple[type[BaseException], ...] = (),
) -> Callable[..., Any]:
    """`function` wrapped by guard_call (keeps its name, module and docstring)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return guard_call(owner, stage, function, *args, validate=validate, passthrough=passthrough, **kwargs)

    wrapper.__assistant_guarded__ = True  # type: ignore[attr-defined]
    return wrapper


# --- value contracts -------------------------------------------------------------------------------------------------

MAX_IMAGE_SIDE = 100_000
MAX_IMAGE_PIXELS = 400_000_000


def _type_name(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_image(image: Any, what: str) -> str | None:
    """A PIL image with a sane size (1 to 100,000 pixels a side, at most 400 megapixels)."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        return f"{what} is {_type_name(image)}, not a PIL image"
    width, height = image.size
    if not (1 <= width <= MAX_IMAGE_SIDE and 1 <= height <= MAX_IMAGE_SIDE) or width * height > MAX_IMAGE_PIXELS:
        return f"{what} is {width}x{height} pixels, not a usable size"
    return None


def instance_of(expected: type, what: str) -> Validator:
    def validate(value: Any) -> str | None:
        if not isinstance(value, expected):
            return f"{what} returned {_type_name(value)}, not a {expected.__name__}"
        return None

    return validate


def optional(validate: Validator) -> Validator:
    """None is allowed (a first-result hook's "not mine")."""
    return lambda value: None if value is None else validate(value)


def all_of(*validators: Validator) -> Validator:
    def validate(value: Any) -> str | None:
        for check in validators:
            problem = check(value)
            if problem:
                return problem
        return None

    return validate


def check_screenshot(value: Any) -> str | None:
    from .hooktypes import Screenshot

    problem = instance_of(Screenshot, "capture_screenshot")(value)
    if problem:
        return problem
    problem = check_image(value.image, "Screenshot.image")
    if problem:
        return problem
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (value.left, value.top, value.width, value.height)):
        return "Screenshot left/top/width/height must be whole numbers"
    if value.width < 1 or value.height < 1:
        return f"Screenshot is {value.width}x{value.height}, not a usable size"
    if not is_number(value.scale) or value.scale <= 0:
        return f"Screenshot.scale is {value.scale!r}, not a positive number"
    return None


def check_rendered_page(value: Any) -> str | None:
    from .hooktypes import RenderedPage

    problem = instance_of(RenderedPage, "render_page")(value)
    return problem or check_image(value.image, "RenderedPage.image") or _check_page_numbers(value, "RenderedPage")


def check_page_text(value: Any) -> str | None:
    from .hooktypes import PageText

    problem = instance_of(PageText, "page_text")(value)
    if problem:
        return problem
    if not isinstance(value.text, str):
        return f"PageText.text is {_type_name(value.text)}, not a str"
    return _check_page_numbers(value, "PageText")


def check_document_text(value: Any) -> str | None:
    """document_text: a list of PageText, one per page."""
    if not isinstance(value, list):
        return f"document_text returned {_type_name(value)}, not a list of PageText"
    for item in value:
        problem = check_page_text(item)
        if problem:
            return problem.replace("page_text", "document_text", 1)
    return None


def _check_page_numbers(value: Any, what: str) -> str | None:
    for field_name in ("page", "page_count"):
        number = getattr(value, field_name)
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            return f"{what}.{field_name} is {number!r}, not a page number"
    return None


def check_tool_result(value: Any) -> str | None:
    from .hooktypes import ToolResult

    problem = instance_of(ToolResult, "the tool")(value)
    if problem:
        return problem
    if not isinstance(value.text, str):
        return f"ToolResult.text is {_type_name(value.text)}, not a str"
    if not isinstance(value.images, (list, tuple)):
        return f"ToolResult.images is {_type_name(value.images)}, not a list of PIL images"
    for index, image in enumerate(value.images):
        problem = check_image(image, f"ToolResult.images[{index}]")
        if problem:
            return problem
    return None


def check_train_result(value: Any) -> str | None:
    """A TrainResult whose status is complete or stopped."""
    from .hooktypes import TrainResult

    if not isinstance(value, TrainResult):
        return f"train returned {_type_name(value)}, not a TrainResult"
    if value.status not in ("complete", "stopped"):
        return f"TrainResult.status is {value.status!r}, not complete or stopped"
    return None


def check_examples(value: Any) -> str | None:
    """conversation_to_examples: None or a list of dicts."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        return f"conversation_to_examples returned {_type_name(value)}, not a list of dicts or None"
    return None


def names_like(name: str, known: Iterable[str]) -> str:
    """' (did you mean X?)' for a close match, else ''."""
    import difflib

    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""
