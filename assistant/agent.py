"""The agentic loop: the model calls the plugins' tools on its own, step by step, under the user's control.

`Agent.run(question)` yields `AgentEvent`s while it works: the reply streaming, each tool call the model makes,
the confirmation decision, the result, and finally `Finished`. Every call and result is stored in the chat as
it happens (a ToolCallPart in the assistant message, a `tool` message with a ToolResultPart and any images),
so a chat re-opens with its steps and is exported for training like any other.

Safety: the permission policy (assistant.permissions) decides each call from the registered tool and the
surface's approver only; nothing the model writes or a tool returns reaches it as an approval.
"""

from __future__ import annotations

import contextvars
import json
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from .conversation import ImagePart, Message, ReplyMeta, TextPart, ToolCallPart, ToolResultPart
from .errors import AssistantError
from .hooktypes import Tool, ToolResult
from .permissions import Answer, ApprovalRequest, Decision, Permissions
from .toolcalls import ParsedCall, ParsedReply, check_arguments, parse_tool_calls, tool_spec, valid_tool_name

if TYPE_CHECKING:
    from pathlib import Path

    from PIL.Image import Image

    from .api import Chat, Reply, ReplyStream
    from .plugins import PluginManager

log = logging.getLogger(__name__)

DEFAULT_MAX_STEPS = 6
MAX_RESULT_CHARS = 4000
"""Longer tool results are cut (a model's context is small; the full text would push the question out)."""
MAX_RESULT_IMAGES = 4
TOOLS_KEY = "tools"
"""[agent] tools in the user config: the names of the tools offered to the model (all when absent)."""


# --- events -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepStarted:
    """The model starts reply number `step` (1-based) of this run."""

    step: int


@dataclass(frozen=True)
class AnswerChunk:
    """A piece of the reply being generated (tool-call JSON included: the parse comes after the reply ends)."""

    step: int
    text: str


@dataclass(frozen=True)
class ReplyDone:
    """Reply `step` is complete and stored; `calls` are the tool calls found in it (none: it is the answer)."""

    step: int
    reply: "Reply"
    text: str
    """The reply's text without its tool calls."""
    calls: tuple[ToolCallPart, ...]
    message: Message | None = None
    """The stored assistant message (its parts hold the calls)."""


@dataclass(frozen=True)
class ToolCallRequested:
    """The model asked for a tool. `error` is set when the call cannot run (malformed, unknown tool, bad
    arguments); a ToolResultReady with that error follows without any confirmation."""

    step: int
    call: ToolCallPart
    needs_confirmation: bool = False
    error: str | None = None


@dataclass(frozen=True)
class ToolCallApproved:
    step: int
    call: ToolCallPart
    decision: Decision


@dataclass(frozen=True)
class ToolCallDenied:
    step: int
    call: ToolCallPart
    decision: Decision


@dataclass(frozen=True)
class ToolResultReady:
    """A call's result, stored as the `tool` message `message_id` (text, images, whether it failed)."""

    step: int
    call: ToolCallPart
    result: ToolResultPart
    images: tuple[ImagePart, ...] = ()
    message_id: int = 0
    duration_s: float = 0.0


@dataclass(frozen=True)
class CallsSkipped:
    """`count` tool calls of reply `step` were not run (nor stored as calls): over a limit, said by `reason`."""

    step: int
    count: int
    reason: str


@dataclass(frozen=True)
class Finished:
    """The run ended. reason: answer (a reply without tool calls), step_limit, call_limit, stopped or failed."""

    reason: str
    answer: str = ""
    """The final reply's text, surrounding whitespace removed (the stored message keeps it as generated)."""
    reply: "Reply | None" = None
    steps: int = 0
    """Tool rounds run."""
    error: str | None = None


AgentEvent = StepStarted | AnswerChunk | ReplyDone | ToolCallRequested | ToolCallApproved | ToolCallDenied | ToolResultReady | CallsSkipped | Finished


# --- what a tool may use while it runs -------------------------------------------------------------------------------


@dataclass
class ToolContext:
    """What a running tool may use: the chat (its images), the plugins (screenshot, documents), the stop flag."""

    chat: "Chat"
    stop: threading.Event = field(default_factory=threading.Event)
    """Set when the user stops the run."""
    cancel: threading.Event = field(default_factory=threading.Event)
    """Set when this call is abandoned (timed out or stopped): a long-running tool should return soon."""
    allowed_window: str = ""
    """The window title an "always" rule allowed this call in ("" otherwise): a tool with `allow_scope` checks,
    right before it acts, that the window under the target is still that one."""

    @property
    def cancelled(self) -> bool:
        return self.stop.is_set() or self.cancel.is_set()

    @property
    def plugins(self) -> "PluginManager":
        return self.chat.assistant.plugins

    def images(self) -> list[ImagePart]:
        """Every image of the chat in order; tools and the model number them from 1."""
        return list(self.chat.conversation.images)

    def image(self, number: int | None = None) -> ImagePart:
        """Image `number` (1-based) of the chat, or the most recent one; AssistantError when there is none."""
        images = self.images()
        if not images:
            raise AssistantError("this chat has no image yet; take a screenshot or render a page first")
        if number is None:
            return images[-1]
        if not 1 <= number <= len(images):
            raise AssistantError(f"there is no image {number}: this chat has images 1 to {len(images)}")
        return images[number - 1]

    def open_image(self, part: ImagePart) -> "Image":
        return self.chat.assistant.store.open_image(part)

    def image_number(self, part: ImagePart) -> int:
        """The 1-based number an image will have once stored (after the chat's current images)."""
        for index, existing in enumerate(self.images(), start=1):
            if existing.sha256 == part.sha256:
                return index
        return len(self.images()) + 1


_CONTEXT: contextvars.ContextVar[ToolContext | None] = contextvars.ContextVar("assistant_tool_context", default=None)


def optional_context() -> ToolContext | None:
    """The context of the tool call running now, or None outside the agent loop."""
    return _CONTEXT.get()


def current_context() -> ToolContext:
    """The context of the tool call running now; AssistantError outside the agent loop."""
    context = _CONTEXT.get()
    if context is None:
        raise AssistantError("this tool works on a chat; use it through the agent (`assistant ask --agent`)")
    return context


# --- the tools -------------------------------------------------------------------------------------------------------


def available_tools(plugins: "PluginManager") -> dict[str, Tool]:
    """Every tool registered through `register_tools`, by name; a later-registered plugin wins over a built-in.

    Registrations that are not a Tool, or whose name is not a valid tool name, are skipped (and logged).
    """
    tools: dict[str, Tool] = {}
    for tool in plugins.collect("register_tools"):
        if not isinstance(tool, Tool):
            log.warning("ignored a registered tool that is not an assistant.hooktypes.Tool: %r", tool)
            continue
        if not valid_tool_name(tool.name):
            log.warning("ignored tool with an invalid name %r", tool.name)
            continue
        tools.setdefault(tool.name, tool)
    return dict(sorted(tools.items()))


def configured_tool_names(config_file: "Path | None" = None) -> list[str] | None:
    """The tools the user lets the agent offer ([agent] tools in the config file), None when not set (all)."""
    from .paths import user_paths
    from .permissions import read_agent_config

    path = config_file or user_paths().config_file
    names = read_agent_config(path).get(TOOLS_KEY)
    if names is None:
        return None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise AssistantError(f'{path}: [agent] {TOOLS_KEY} must be a list of tool names, e.g. ["screenshot", "zoom"]')
    return list(names)


def agent_tools(plugins: "PluginManager", config_file: "Path | None" = None) -> dict[str, Tool]:
    """The tools the agent offers the model: every registered tool, or only those listed in [agent] tools.

    Fewer tools make a shorter prompt, which small models read better (and faster).
    """
    tools = available_tools(plugins)
    names = configured_tool_names(config_file)
    if names is None:
        return tools
    unknown = [name for name in names if name not in tools]
    if unknown:
        log.warning("[agent] tools names tools that are not registered: %s", ", ".join(unknown))
    return {name: tool for name, tool in tools.items() if name in names}


def tool_specs(tools: Mapping[str, Tool]) -> list[dict[str, Any]]:
    """The tools as function specs for the chat template (`tools=`) or the fallback system prompt."""
    return [tool_spec(tool.name, tool.description, tool.parameters) for tool in tools.values()]


def error_result(text: str) -> ToolResult:
    return ToolResult(text=f"error: {text}", is_error=True)


def run_tool(tool: Tool, arguments: Mapping[str, Any], context: ToolContext | None = None) -> tuple[ToolResult, float]:
    """Run a tool in a thread with its timeout: (result, seconds). Never raises: failures become error results.

    A tool that times out (or is abandoned because the user stopped the run) keeps running in its daemon thread
    until it returns; its result is ignored.
    """
    box: dict[str, Any] = {}
    stop = context.stop if context is not None else threading.Event()
    cancel = context.cancel if context is not None else threading.Event()

    def work() -> None:
        _CONTEXT.set(context)
        try:
            box["result"] = tool.run(**dict(arguments))
        except AssistantError as error:
            box["result"] = error_result(str(error))
        except Exception as error:  # noqa: BLE001 - a broken tool must not end the loop
            log.exception("tool %s failed", tool.name)
            box["result"] = error_result(f"{tool.name} failed: {type(error).__name__}: {error}".splitlines()[0])

    started = time.perf_counter()
    thread = threading.Thread(target=contextvars.Context().run, args=(work,), daemon=True, name=f"tool-{tool.name}")
    thread.start()
    deadline = time.monotonic() + max(0.0, float(tool.timeout_s))
    while thread.is_alive():
        thread.join(0.05)
        if not thread.is_alive():
            break
        if stop.is_set():
            cancel.set()
            return error_result(f"{tool.name} was stopped by the user"), time.perf_counter() - started
        if time.monotonic() >= deadline:
            cancel.set()
            return (
                error_result(f"{tool.name} timed out after {tool.timeout_s:g} s; try other arguments or answer without it"),
                time.perf_counter() - started,
            )
    result = box.get("result")
    if not isinstance(result, ToolResult):
        result = error_result(f"{tool.name} returned {type(result).__name__}, not a ToolResult (a bug in its plugin)")
    return result, time.perf_counter() - started


def tool_preview(tool: Tool, arguments: Mapping[str, Any], context: ToolContext | None = None) -> str:
    """The tool's own one-line account of what a call will do (Tool.preview), for the confirmation; "" when it
    has none or it fails (a preview never blocks or approves anything)."""
    if tool.preview is None:
        return ""
    token = _CONTEXT.set(context)
    try:
        text = tool.preview(**dict(arguments))
    except AssistantError as error:
        text = str(error)
    except Exception:  # noqa: BLE001 - a broken preview only means a plainer question
        log.exception("preview of %s failed", tool.name)
        return ""
    finally:
        _CONTEXT.reset(token)
    return " ".join(text.split())[:600] if isinstance(text, str) else ""


def tool_scope(tool: Tool, arguments: Mapping[str, Any], context: ToolContext | None = None) -> str | None:
    """The window a call acts on (Tool.allow_scope) for a per-window "always" rule: None when the tool has no
    scope, "" when it has one but the window is unknown or the lookup fails (then only "once" is offered)."""
    if tool.allow_scope is None:
        return None
    token = _CONTEXT.set(context)
    try:
        text = tool.allow_scope(**dict(arguments))
    except Exception:  # noqa: BLE001 - an unknown window only means no "always" option
        log.debug("window of %s unknown", tool.name, exc_info=True)
        return ""
    finally:
        _CONTEXT.reset(token)
    return text if isinstance(text, str) else ""


def native_actions(
    chat: "Chat", text: str, input_sizes: dict[str, tuple[int, int]] | None = None
) -> ParsedReply | None:
    """GUI actions a model wrote in its own format (UI-TARS `click(start_box='(x,y)')`, `type(content=...)`) as
    tool calls, or None. The profile's grounding parser reports them in `Grounding.raw["actions"]` as
    {"tool", "arguments"} in pixels of the chat's latest image; they then pass the same checks and the same
    permission policy as any tool call. `input_sizes` (from the prompt) saves running the image processor again."""
    from .grounding import ground_reply

    if "(" not in text:
        return None
    try:
        grounding = ground_reply(chat, text, input_sizes or None)
    except Exception:  # noqa: BLE001 - a parser problem means no native actions, never a failed run
        log.exception("reading native actions failed")
        return None
    actions = grounding.raw.get("actions") if grounding is not None else None
    if not isinstance(actions, list):
        return None
    calls = [
        ParsedCall(name=item["tool"], arguments=dict(item["arguments"]), raw=text)
        for item in actions[:MAX_NATIVE_ACTIONS]
        if isinstance(item, dict) and isinstance(item.get("tool"), str) and valid_tool_name(item["tool"])
        and isinstance(item.get("arguments"), dict)
    ]
    return ParsedReply(text=text, calls=calls) if calls else None


MAX_NATIVE_ACTIONS = 10


# --- the loop ----------------------------------------------------------------------------------------------------------


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:12]}"


class Agent:
    """Runs the loop on one chat. Build it in a surface with that surface's Permissions (and its approver).

    One run at a time; `stop()` (any thread) ends the run after the current token or tool wait.
    """

    def __init__(
        self,
        chat: "Chat",
        permissions: Permissions,
        tools: Mapping[str, Tool] | None = None,
        max_steps: int = DEFAULT_MAX_STEPS,
        max_new_tokens: int | None = None,
        max_calls: int | None = None,
        max_calls_per_reply: int | None = None,
    ) -> None:
        """`max_calls` / `max_calls_per_reply`: tool calls per run / per reply (default: the profile's [agent])."""
        if max_steps < 0:
            raise AssistantError(f"the step limit must be 0 or more, not {max_steps}")
        limits = chat.assistant.profile.agent
        self.max_calls = limits.max_calls if max_calls is None else max_calls
        self.max_calls_per_reply = limits.max_calls_per_reply if max_calls_per_reply is None else max_calls_per_reply
        self.chat = chat
        self.permissions = permissions
        self.tools = dict(tools) if tools is not None else agent_tools(chat.assistant.plugins)
        self.max_steps = max_steps
        self.max_new_tokens = max_new_tokens
        self._stop = threading.Event()
        self._stream: "ReplyStream | None" = None

    @property
    def specs(self) -> list[dict[str, Any]]:
        return tool_specs(self.tools)

    def stop(self) -> None:
        """Stop the run: the reply being generated ends (its text kept), a running tool is abandoned."""
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.cancel()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def run(
        self,
        question: str,
        images: Sequence[Any] = (),
        context_text: str = "",
        extra: dict[str, Any] | None = None,
    ) -> Iterator[AgentEvent]:
        """Ask `question` and work until an answer, the step limit, a stop or a failure; yields every step."""
        self._stop.clear()
        stream = self.chat.stream(
            question,
            images,
            max_new_tokens=self.max_new_tokens,
            context_text=context_text,
            extra=self._extra(extra),
            tools=self.specs,
        )
        yield from self._loop(stream)

    def resume(self) -> Iterator[AgentEvent]:
        """Continue the chat as it stands (e.g. after a stop) with the tools available."""
        self._stop.clear()
        yield from self._loop(self.chat.continue_reply(self.max_new_tokens, self._extra(None), tools=self.specs))

    def _extra(self, extra: dict[str, Any] | None) -> dict[str, Any]:
        merged = dict(extra or {})
        merged["agent"] = True
        merged["tools"] = self.specs
        return merged

    def _loop(self, stream: "ReplyStream") -> Iterator[AgentEvent]:
        steps = 0
        step = 0
        calls_run = 0  # tool calls let through in this run (the [agent] max_calls budget)
        while True:
            step += 1
            self._stream = stream
            yield StepStarted(step)
            if self._stop.is_set():
                stream.cancel()
            try:
                for piece in stream:
                    yield AnswerChunk(step, piece)
                    if self._stop.is_set():
                        stream.cancel()
            except AssistantError as error:
                yield Finished("failed", steps=steps, error=str(error), reply=stream.reply)
                return
            finally:
                self._stream = None
            reply = stream.reply
            assert reply is not None
            if reply.stopped or self._stop.is_set():
                yield ReplyDone(step, reply, reply.text, (), stream.message)
                yield Finished("stopped", answer=reply.text.strip(), reply=reply, steps=steps)
                return
            parsed = parse_tool_calls(reply.text)
            if not parsed.calls:
                parsed = native_actions(self.chat, reply.text, getattr(stream, "_input_sizes", None)) or parsed
            if not parsed.calls:
                yield ReplyDone(step, reply, reply.text, (), stream.message)
                yield Finished("answer", answer=reply.text.strip(), reply=reply, steps=steps)
                return
            allowed = max(0, min(self.max_calls_per_reply, self.max_calls - calls_run))
            kept, skipped = parsed.calls[:allowed], len(parsed.calls) - allowed
            reason = ""
            if skipped > 0:
                reason = (
                    f"at most {self.max_calls} tool calls per question ([agent] max_calls)"
                    if allowed < self.max_calls_per_reply
                    else f"at most {self.max_calls_per_reply} tool calls per reply ([agent] max_calls_per_reply)"
                )
                if stream.message.meta is not None:
                    stream.message.meta.extra.setdefault("notes", []).append(f"{skipped} tool calls skipped: {reason}")
            calls = self._store_calls(stream.message, reply.text, parsed.text, list(kept))
            calls_run += len(kept)
            made = tuple(call for call, _ in calls if call is not None)
            yield ReplyDone(step, reply, parsed.text, made, stream.message)
            if skipped > 0:
                yield CallsSkipped(step, skipped, reason)
            if not kept:
                yield Finished("call_limit", reply=reply, steps=steps)
                return
            over_limit = steps >= self.max_steps
            for call_part, parsed_call in calls:
                yield from self._handle(step, call_part, parsed_call, over_limit)
            if over_limit:
                yield Finished("step_limit", reply=reply, steps=steps)
                return
            steps += 1
            if self._stop.is_set():
                yield Finished("stopped", reply=reply, steps=steps)
                return
            stream = self.chat.continue_reply(self.max_new_tokens, self._extra(None), tools=self.specs)

    def _store_calls(
        self, message: Message, original: str, text: str, calls: list[ParsedCall]
    ) -> list[tuple[ToolCallPart | None, ParsedCall]]:
        """Rewrite the stored reply as its text plus one ToolCallPart per well-formed call (a malformed call stays
        as the text the model wrote, so the model sees its own mistake next to the error)."""
        parts: list[Any] = [TextPart(text)] if text else []
        placed: list[tuple[ToolCallPart | None, ParsedCall]] = []
        for call in calls:
            if call.ok:
                part = ToolCallPart(name=call.name, arguments=dict(call.arguments), call_id=new_call_id())
                parts.append(part)
                placed.append((part, call))
            else:
                parts.append(TextPart(("\n" if parts else "") + call.raw))
                placed.append((None, call))
        message.parts = parts
        meta = message.meta
        if meta is not None:
            meta.extra.pop("grounding", None)  # coordinates in tool arguments are not an answer's boxes
            meta.extra["model_text"] = original
        self.chat.update_message(message)
        return placed

    def _handle(
        self, step: int, part: ToolCallPart | None, call: ParsedCall, over_limit: bool
    ) -> Iterator[AgentEvent]:
        shown = part or ToolCallPart(name=call.name, arguments=dict(call.arguments), call_id="")
        tool = self.tools.get(call.name) if call.ok else None
        error: str | None = None
        if not call.ok:
            error = f"{call.error}"
        elif tool is None:
            names = ", ".join(self.tools) or "none"
            error = f"there is no tool {call.name!r}; the tools are: {names}"
        elif over_limit:
            error = f"not run: the step limit ({self.max_steps}) was reached; answer with what you have"
        else:
            error = check_arguments(tool.parameters, call.arguments)
            if error is not None:
                error = f"{call.name}: {error}"
        path_reason = None
        if tool is not None and error is None and getattr(tool, "reads_paths", ()):
            path_reason = self.permissions.path_reason(tool.reads_paths, call.arguments, self.chat.conversation.messages)
        needs = tool is not None and self.permissions.needs_confirmation(tool.name, tool.side_effects, path_reason)
        yield ToolCallRequested(step, shown, needs_confirmation=needs and error is None, error=error)
        if error is not None:
            yield self._store_result(step, shown, error_result(error), 0.0)
            return
        assert tool is not None
        if self._stop.is_set():
            yield self._store_result(step, shown, error_result(f"{tool.name} was not run: the user stopped"), 0.0)
            return
        asking = needs and not self.permissions.pre_approves(tool.name)
        preview = tool_preview(tool, call.arguments, ToolContext(self.chat, self._stop)) if asking else ""
        scope = tool_scope(tool, call.arguments, ToolContext(self.chat, self._stop)) if asking else None
        decision = self.permissions.check(
            tool.name, tool.description, tool.side_effects, call.arguments, path_reason, preview, scope
        )
        if not decision.approved:
            yield ToolCallDenied(step, shown, decision)
            why = "the user denied this call" if decision.asked else decision.describe()
            yield self._store_result(step, shown, error_result(f"{tool.name} was not run: {why}"), 0.0, decision)
            return
        yield ToolCallApproved(step, shown, decision)
        if self._stop.is_set():
            yield self._store_result(step, shown, error_result(f"{tool.name} was not run: the user stopped"), 0.0, decision)
            return
        context = ToolContext(self.chat, self._stop, allowed_window=scope or "" if decision.rule else "")
        result, seconds = run_tool(tool, call.arguments, context)
        yield self._store_result(step, shown, result, seconds, decision)

    def _store_result(
        self, step: int, call: ToolCallPart, result: ToolResult, seconds: float, decision: Decision | None = None
    ) -> ToolResultReady:
        """Save the result as a `tool` message: the ToolResultPart, then the images (stored by content).

        The approval decision is kept in the message's meta (`extra["approval"]`, and in one word
        `extra["approval_reason"]`: once, always, yes, ...), never in the text the model
        reads: `assistant chats show` lists who allowed each call and how."""
        text = result.text or ""
        if len(text) > MAX_RESULT_CHARS:
            text = text[:MAX_RESULT_CHARS] + f"\n[... cut: {len(result.text) - MAX_RESULT_CHARS} more characters]"
        images, problem = self._store_images(call.name, list(result.images or []))
        is_error = bool(result.is_error)
        if problem:
            text = f"{text}\n{problem}".strip()
        part = ToolResultPart(call_id=call.call_id, name=call.name, text=text, is_error=is_error)
        meta = (
            ReplyMeta(extra={"approval": decision.describe(), "approval_reason": decision.reason})
            if decision is not None
            else None
        )
        message = self.chat.add_message(Message(role="tool", parts=[part, *images], meta=meta))
        return ToolResultReady(step, call, part, tuple(images), message.id or 0, seconds)

    def _store_images(self, name: str, images: list[Any]) -> tuple[list[ImagePart], str]:
        from PIL import Image as PILImage

        from .images import image_from_pil

        stored: list[ImagePart] = []
        problem = ""
        if len(images) > MAX_RESULT_IMAGES:
            problem = f"(only the first {MAX_RESULT_IMAGES} of {len(images)} images were kept)"
            images = images[:MAX_RESULT_IMAGES]
        for image in images:
            if not isinstance(image, PILImage.Image):
                problem = f"(an image of {name} was not a PIL image and was left out)"
                continue
            try:
                stored.append(self.chat.assistant.store.put_image(image_from_pil(image, f"{name} result")))
            except AssistantError as error:
                problem = f"(an image of {name} could not be stored: {error})"
        return stored, problem


# --- re-opening a chat ----------------------------------------------------------------------------------------------


@dataclass
class StoredStep:
    """A tool call of a saved chat with its result, for showing a re-opened chat step by step."""

    message_index: int
    """Index of the assistant message that made the call."""
    call: ToolCallPart
    result: ToolResultPart | None = None
    images: list[ImagePart] = field(default_factory=list)
    result_index: int | None = None


def stored_steps(messages: Sequence[Message]) -> list[StoredStep]:
    """Every tool call in `messages` paired with its result: by call_id, else (imported chats) in order."""
    steps: list[StoredStep] = []
    open_steps: list[StoredStep] = []
    for index, message in enumerate(messages):
        if message.role == "assistant":
            open_steps = [StoredStep(index, call) for call in message.tool_calls]
            steps.extend(open_steps)
        elif message.role == "tool":
            results = [part for part in message.parts if isinstance(part, ToolResultPart)]
            result = results[0] if results else ToolResultPart(call_id="", name="", text=message.text)
            step = next((s for s in open_steps if result.call_id and s.call.call_id == result.call_id), None)
            step = step or next((s for s in open_steps if s.result is None), None)
            if step is not None:
                step.result, step.images, step.result_index = result, list(message.images), index
    return steps


# --- running in the background (CLI), one-line descriptions --------------------------------------------------------


def run_in_background(
    agent: Agent,
    start: "Callable[[], Iterator[AgentEvent]]",
    ask: "Callable[[ApprovalRequest], Answer] | None",
    poll_s: float = 0.1,
) -> Iterator[AgentEvent]:
    """Run `start()` (e.g. `lambda: agent.run(question)`) on a daemon thread and yield its events on this thread.

    Confirmations are asked by calling `ask` on this thread (a terminal prompt must run where Ctrl+C lands);
    `ask=None` means nobody can answer, so calls that need confirmation are denied unless pre-approved. For the
    run, `agent.permissions.approver` is a bridge to this thread; the caller's own approver is put back when the
    run ends (on the worker thread, so it is never called from there). A KeyboardInterrupt here stops the agent;
    the events continue until Finished, so the chat is left consistent.
    """
    bridge = _ApprovalBridge(ask)
    previous = agent.permissions.approver
    agent.permissions.approver = bridge if ask is not None else None

    def work() -> None:
        try:
            for event in start():
                bridge.inbox.put(("event", event))
        except BaseException as error:  # noqa: BLE001 - handed to the consumer's thread
            bridge.inbox.put(("error", error))
        finally:
            agent.permissions.approver = previous
            bridge.inbox.put(("done", None))

    threading.Thread(target=work, daemon=True, name="agent").start()
    finished = False
    try:
        while True:
            try:
                kind, payload = bridge.next(poll_s)
                if kind == "done":
                    finished = True
                    return
                if kind == "error":
                    finished = True
                    raise payload
                if kind == "ask":
                    if not bridge.answer(*payload):
                        agent.stop()
                    continue
                if kind == "event":
                    yield payload
            except KeyboardInterrupt:
                agent.stop()
    finally:
        bridge.closed = True  # a question asked after the consumer left is denied, never left waiting
        if not finished:
            agent.stop()


class _ApprovalBridge:
    """The worker thread's approver: each request waits in `inbox` until the consumer's thread answers it."""

    def __init__(self, ask: "Callable[[ApprovalRequest], Answer] | None") -> None:
        self.ask = ask
        self.inbox: "queue.Queue[tuple[str, Any]]" = queue.Queue()
        self.closed = False

    def __call__(self, request: ApprovalRequest) -> Answer:
        if self.closed:
            return Answer.DENY
        box: "queue.Queue[Answer]" = queue.Queue(maxsize=1)
        self.inbox.put(("ask", (request, box)))
        return box.get()

    def next(self, poll_s: float) -> tuple[str, Any]:
        """The next item, or ("idle", None) after `poll_s` (so a KeyboardInterrupt is noticed)."""
        try:
            return self.inbox.get(timeout=poll_s)
        except queue.Empty:
            return ("idle", None)

    def answer(self, request: ApprovalRequest, box: "queue.Queue[Answer]") -> bool:
        """Ask on this thread and hand the answer to the worker; False when the prompt failed (EOF, Abort)."""
        answer: Any = Answer.DENY
        try:
            assert self.ask is not None
            answer = self.ask(request)
            return True
        except Exception:  # noqa: BLE001 - a prompt that fails denies and stops
            return False
        finally:
            box.put(answer if isinstance(answer, Answer) else Answer.DENY)


def _short(text: str, limit: int = 120) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _arguments(call: ToolCallPart) -> str:
    return json.dumps(call.arguments, ensure_ascii=True, sort_keys=True, default=str)


def describe_event(event: AgentEvent) -> str | None:
    """One line for a step (what `assistant ask --agent` prints on stderr); None: nothing to say.

    Control characters from the model or a tool (ESC sequences, OSC 52 clipboard writes) come out escaped.
    """
    from .textsafe import printable

    line = _describe_event(event)
    return None if line is None else printable(line)


def _describe_event(event: AgentEvent) -> str | None:
    if isinstance(event, ReplyDone):
        return f"[step {event.step}] model: {_short(event.text)}" if event.calls and event.text.strip() else None
    if isinstance(event, ToolCallRequested):
        name = event.call.name or "(no name)"
        line = f"[step {event.step}] call {name} {_arguments(event.call)}"
        return line + (" - needs confirmation" if event.needs_confirmation else "")
    if isinstance(event, ToolCallApproved):
        return f"[step {event.step}] {event.call.name}: {event.decision.describe()}"
    if isinstance(event, ToolCallDenied):
        return f"[step {event.step}] {event.call.name}: {event.decision.describe()}"
    if isinstance(event, CallsSkipped):
        return f"[step {event.step}] {event.count} more tool call{'s' if event.count != 1 else ''} skipped: {event.reason}"
    if isinstance(event, ToolResultReady):
        images = f" [+{len(event.images)} image{'s' if len(event.images) != 1 else ''}]" if event.images else ""
        kind = "error" if event.result.is_error else "result"
        return f"[step {event.step}] {event.call.name or 'call'} {kind}: {_short(event.result.text)}{images}"
    if isinstance(event, Finished):
        if event.reason == "step_limit":
            return f"stopped: the step limit was reached after {event.steps} tool steps (raise it with --max-steps)"
        if event.reason == "call_limit":
            return "stopped: the tool-call limit for one question was reached ([agent] max_calls in the profile)"
        if event.reason == "stopped":
            return "stopped by the user"
    return None
