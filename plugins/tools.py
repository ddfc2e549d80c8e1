"""Built-in plugin: the tools the model may call in the agentic loop, and `assistant tools list|run|forget`.

Tools: `screenshot` (asks for confirmation), `pdf_page` (image and text of a page), `pdf_search` (pages matching
a query; both ask before reading a file the user did not attach or name in the chat), `ground` (boxes for a phrase on an image of the chat) and `zoom` (a crop of an image of the chat).
Written only against the public API (hooks, `assistant.agent.current_context`), like a third-party plugin.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from assistant import hookimpl
from assistant.errors import AssistantError
from assistant.hooktypes import PageRequest, ScreenshotRequest, Tool, ToolResult

if TYPE_CHECKING:
    from PIL.Image import Image

    from assistant.agent import ToolContext

MAX_SEARCH_PAGES = 500
ZOOM_MIN_EDGE = 448
"""A small crop is enlarged so its longest edge has at least this many pixels (the point of zooming in)."""


def _context() -> "ToolContext | None":
    from assistant.agent import optional_context

    return optional_context()


def _plugins() -> Any:
    context = _context()
    if context is not None:
        return context.plugins
    from assistant.plugins import get_plugin_manager

    return get_plugin_manager()


def _image_label(image_number: int | None) -> str:
    return f"; it is image {image_number} of this chat" if image_number else ""


def _next_image_number() -> int | None:
    context = _context()
    return len(context.images()) + 1 if context is not None else None


# --- screenshot -------------------------------------------------------------------------------------------------------


def screenshot(monitor: int | None = None, region: list[int] | None = None) -> ToolResult:
    """Capture the whole screen, one monitor, or a region."""
    request = ScreenshotRequest(monitor=monitor, region=tuple(region) if region else None)  # type: ignore[arg-type]
    shot = _plugins().call_first("capture_screenshot", request=request)
    if shot is None:
        raise AssistantError("no screenshot plugin is active")
    from assistant.screenmap import remember_capture

    remember_capture(shot)  # desktop actions map pixels of this image back to the screen
    text = f"Screenshot ({shot.source}, {shot.width}x{shot.height} pixels){_image_label(_next_image_number())}."
    return ToolResult(text=text, images=[shot.image])


SCREENSHOT = Tool(
    name="screenshot",
    description="Capture the user's screen (all monitors, one monitor, or a region) and look at it.",
    parameters={
        "type": "object",
        "properties": {
            "monitor": {"type": "integer", "minimum": 1, "description": "Monitor number, from 1 (default: all)."},
            "region": {
                "type": "array",
                "items": {"type": "integer"},
                "minItems": 4,
                "maxItems": 4,
                "description": "x, y, width, height in screen pixels.",
            },
        },
        "additionalProperties": False,
    },
    run=screenshot,
    side_effects=True,
    timeout_s=20.0,
)


# --- documents ---------------------------------------------------------------------------------------------------------


def _document(path: str) -> Path:
    document = Path(path).expanduser()
    if not document.is_file():
        raise AssistantError(f"{path} not found; give the path of an existing document")
    return document


def pdf_page(path: str, page: int, password: str | None = None) -> ToolResult:
    """The image and the text of one page of a document."""
    document = _document(path)
    plugins = _plugins()
    request = PageRequest(path=document, page=page, password=password)
    rendered = plugins.call_first("render_page", request=request)
    if rendered is None:
        raise AssistantError(f"no plugin reads {document.name}; only PDF is built in")
    text = plugins.call_first("page_text", request=request)
    body = text.text.strip() if text is not None else ""
    header = f"{document.name} page {page} of {rendered.page_count}{_image_label(_next_image_number())}."
    return ToolResult(text=f"{header}\n{body}" if body else f"{header}\n(no text layer)", images=[rendered.image])


PDF_PAGE = Tool(
    name="pdf_page",
    description="Look at one page of a PDF: its image and its text.",
    parameters={
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "Path of the PDF file."},
            "page": {"type": "integer", "minimum": 1, "description": "Page number, from 1."},
            "password": {"type": "string", "description": "Password of an encrypted PDF."},
        },
        "required": ["path", "page"],
        "additionalProperties": False,
    },
    run=pdf_page,
    timeout_s=30.0,
    reads_paths=("path",),
)


def pdf_search(path: str, query: str, max_results: int = 5) -> ToolResult:
    """The pages of a document that best match a query (BM25 over the text layer), best first."""
    from assistant.documents import query_terms, rank_pages

    document = _document(path)
    if not query_terms(query):
        raise AssistantError("the query has no words to search for; give content words such as 'revenue 2023'")
    plugins = _plugins()
    first = plugins.call_first("page_text", request=PageRequest(path=document, page=1))
    if first is None:
        raise AssistantError(f"no plugin reads the text of {document.name}; only PDF is built in")
    count = min(first.page_count, MAX_SEARCH_PAGES)
    texts = {1: first.text}
    for number in range(2, count + 1):
        found = plugins.call_first("page_text", request=PageRequest(path=document, page=number))
        texts[number] = found.text if found is not None else ""
    ranking = rank_pages(texts, query, max(1, max_results))
    if not ranking:
        return ToolResult(text=f"No page of {document.name} ({first.page_count} pages) mentions {query!r}.")
    lines = [f"Pages of {document.name} ({first.page_count} pages) matching {query!r}, best first:"]
    for number, score, matched in ranking:
        snippet = " ".join(texts[number].split())[:160]
        lines.append(f"- page {number} (score {score:.2f}; {', '.join(matched)}): {snippet}")
    if first.page_count > count:
        lines.append(f"(only the first {count} pages were searched)")
    return ToolResult(text="\n".join(lines))


PDF_SEARCH = Tool(
    name="pdf_search",
    description="Find the pages of a PDF that mention a query; returns page numbers with snippets.",
    parameters={
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "Path of the PDF file."},
            "query": {"type": "string", "description": "Words to look for."},
            "max_results": {"type": "integer", "minimum": 1, "maximum": 20, "description": "Most pages (default 5)."},
        },
        "required": ["path", "query"],
        "additionalProperties": False,
    },
    run=pdf_search,
    timeout_s=60.0,
    reads_paths=("path",),
)


# --- images of the chat -------------------------------------------------------------------------------------------------


def _chat_context() -> "ToolContext":
    from assistant.agent import current_context

    return current_context()


def ground(phrase: str, image: int | None = None) -> ToolResult:
    """Ask the model (with the profile's grounding format) where `phrase` is on an image of the chat."""
    from assistant.conversation import ImagePart, Message, TextPart
    from assistant.geometry import Box, Point
    from assistant.grounding import grounding_formats, model_input_size, parse_with_fallback

    if not phrase.strip():
        raise AssistantError("say what to look for, e.g. {\"phrase\": \"the Save button\"}")
    context = _chat_context()
    part: ImagePart = context.image(image)
    assistant = context.chat.assistant
    formats = grounding_formats(assistant.plugins)
    settings = assistant.profile.grounding
    if settings.format not in formats:
        raise AssistantError(f"grounding format {settings.format!r} is not registered")
    template = formats[settings.format].prompt or "Locate {thing} in the image. Answer with [x1, y1, x2, y2]."
    question = Message(role="user", parts=[part, TextPart(template.format(thing=phrase))])
    from assistant.hooktypes import GenerationRequest

    stream = assistant.backend.stream(
        GenerationRequest([question], assistant.store.open_image, assistant.profile.generation, max_new_tokens=128)
    )
    text = ""
    for piece in stream:
        text += piece
        if context.cancelled:  # stopped by the user, or timed out: free the engine for the next step
            stream.cancel()
    reply = stream.stats.raw_text or text
    grounding = parse_with_fallback(
        formats, settings.format, settings.coordinates, reply, (part.width, part.height),
        model_input_size(assistant, part),
    )
    number = context.image_number(part)
    if grounding is None or not grounding.shapes:
        return ToolResult(text=f"Found no {phrase!r} on image {number}. The model said: {text.strip()[:200]}")
    lines = [f"{phrase!r} on image {number} ({part.width}x{part.height} pixels), in pixels:"]
    for shape in grounding.shapes:
        label = f" {shape.label}" if getattr(shape, "label", "") else ""
        if isinstance(shape, Box):
            lines.append(f"- box{label} [{shape.x1:.0f}, {shape.y1:.0f}, {shape.x2:.0f}, {shape.y2:.0f}]")
        elif isinstance(shape, Point):
            lines.append(f"- point{label} ({shape.x:.0f}, {shape.y:.0f})")
        else:
            lines.append(f"- polygon{label} with {len(shape.points)} points")
    return ToolResult(text="\n".join(lines))


GROUND = Tool(
    name="ground",
    description="Locate something on an image of this chat; returns boxes in the image's pixels.",
    parameters={
        "type": "object",
        "properties": {
            "phrase": {"type": "string", "description": "What to find, e.g. 'the Save button'."},
            "image": {"type": "integer", "minimum": 1, "description": "Image number in the chat (default: the last)."},
        },
        "required": ["phrase"],
        "additionalProperties": False,
    },
    run=ground,
    timeout_s=120.0,
)


def crop(source: "Image", box: list[float], min_edge: int = ZOOM_MIN_EDGE) -> "Image":
    """The box [x1, y1, x2, y2] (pixels, clamped to the image) cut out, enlarged to `min_edge` when smaller."""
    from PIL import Image

    x1, y1, x2, y2 = (float(value) for value in box)
    left, right = sorted((x1, x2))
    top, bottom = sorted((y1, y2))
    left, top = max(0, round(left)), max(0, round(top))
    right, bottom = min(source.width, round(right)), min(source.height, round(bottom))
    if right - left < 1 or bottom - top < 1:
        raise AssistantError(
            f"box {box} lies outside the image ({source.width}x{source.height}); give [x1, y1, x2, y2] inside it"
        )
    piece = source.crop((left, top, right, bottom))
    longest = max(piece.size)
    if longest < min_edge:
        scale = min_edge / longest
        piece = piece.resize((max(1, round(piece.width * scale)), max(1, round(piece.height * scale))), Image.Resampling.LANCZOS)
    return piece


def zoom(box: list[float], image: int | None = None) -> ToolResult:
    """Cut a box out of an image of the chat and look at it enlarged."""
    context = _chat_context()
    part = context.image(image)
    piece = crop(context.open_image(part), box)
    number = context.image_number(part)
    text = (
        f"Zoom into image {number}, box {[round(float(v)) for v in box]}: {piece.width}x{piece.height} pixels"
        f"{_image_label(_next_image_number())}."
    )
    return ToolResult(text=text, images=[piece])


ZOOM = Tool(
    name="zoom",
    description="Enlarge a region of an image of this chat to see details (box in the image's pixels).",
    parameters={
        "type": "object",
        "properties": {
            "box": {
                "type": "array",
                "items": {"type": "number"},
                "minItems": 4,
                "maxItems": 4,
                "description": "[x1, y1, x2, y2] in pixels of the image.",
            },
            "image": {"type": "integer", "minimum": 1, "description": "Image number in the chat (default: the last)."},
        },
        "required": ["box"],
        "additionalProperties": False,
    },
    run=zoom,
    timeout_s=20.0,
)

BUILTIN_TOOLS: tuple[Tool, ...] = (SCREENSHOT, PDF_PAGE, PDF_SEARCH, GROUND, ZOOM)


# --- hooks --------------------------------------------------------------------------------------------------------------


@hookimpl
def register_tools(register: Callable[[Tool], None]) -> None:
    for tool in BUILTIN_TOOLS:
        register(tool)


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(tools_group)


@click.group("tools")
def tools_group() -> None:
    """Tools the model may call with `assistant ask --agent`."""


@tools_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (function specs).")
def tools_list(as_json: bool) -> None:
    """Every tool with its confirmation policy and the JSON schema of its arguments.

    The user config's [agent] table may hold `tools = ["screenshot", ...]` (offer only these to the model) and
    `always_allow = [...]` (tools that run without asking; written when you answer "always"). Desktop pointer
    actions are always allowed per application window only (`assistant tools allowed` lists those rules).
    """
    from assistant.agent import available_tools, configured_tool_names, tool_specs
    from assistant.permissions import ASK_EVERY_TIME, PER_WINDOW, Permissions, confirmation_reason, read_window_rules
    from assistant.plugins import get_plugin_manager

    tools = available_tools(get_plugin_manager())
    if as_json:
        click.echo(json.dumps(tool_specs(tools), indent=2))
        return
    if not tools:
        click.echo("no tools registered (is the built-in `tools` plugin disabled?)")
        return
    allowed = Permissions().allowed
    rules = read_window_rules()
    offered = configured_tool_names()
    for tool in tools.values():
        reason = confirmation_reason(tool.name, tool.side_effects)
        if reason is None and tool.reads_paths:
            policy = "runs without asking for files you attached or named in the chat; asks for other paths"
        elif reason is None:
            policy = "runs without asking"
        elif tool.name in ASK_EVERY_TIME:
            policy = f"asks before every call: {reason}"
        elif tool.name in PER_WINDOW or tool.allow_scope is not None:
            windows = sum(1 for rule in rules if rule.tool == tool.name)
            policy = f"asks first: {reason}" + (f"; always allowed in {windows} window(s)" if windows else "")
        elif tool.name in allowed:
            policy = f"always allowed (asks by default: {reason})"
        else:
            policy = f"asks first: {reason}"
        if offered is not None and tool.name not in offered:
            policy += "; not offered: not in [agent] tools"
        click.echo(f"{tool.name}  [{policy}; timeout {tool.timeout_s:g} s]")
        click.echo(f"  {tool.description}")
        for line in json.dumps(tool.parameters, indent=2).splitlines():
            click.echo(f"  {line}")
        click.echo()


@tools_group.command("run")
@click.argument("name")
@click.argument("arguments", default="{}", metavar="JSON_ARGS")
@click.option("--yes", is_flag=True, help="Pre-approve this one call (otherwise a tool with side effects asks).")
@click.option("--dry-run", is_flag=True, help="Desktop actions only: record and preview the action, send nothing.")
def tools_run(name: str, arguments: str, yes: bool, dry_run: bool) -> None:
    """Run one tool NAME with JSON_ARGS, e.g. `assistant tools run click '{"x": 700, "y": 120}'`.

    Outside a chat, desktop actions take virtual-desktop pixels. The same permission policy as in the agent:
    a tool with side effects asks on the terminal, and without a terminal it runs only with --yes.
    """
    import os
    import sys

    from assistant.agent import available_tools, run_tool, tool_scope
    from assistant.cli import _prompt_approval
    from assistant.permissions import Permissions
    from assistant.plugins import get_plugin_manager
    from assistant.toolcalls import check_arguments

    tools = available_tools(get_plugin_manager())
    tool = tools.get(name)
    if tool is None:
        raise AssistantError(f"there is no tool {name!r}; the tools are: {', '.join(tools) or 'none'}")
    try:
        values = json.loads(arguments)
    except ValueError as error:
        raise AssistantError(f"JSON_ARGS is not JSON ({error}); give an object, e.g. '{{\"x\": 10, \"y\": 20}}'") from None
    if not isinstance(values, dict):
        raise AssistantError("JSON_ARGS must be a JSON object, e.g. '{\"x\": 10, \"y\": 20}'")
    problem = check_arguments(tool.parameters, values)
    if problem:
        raise AssistantError(f"{name}: {problem}")

    interactive = sys.stdin is not None and sys.stdin.isatty()
    permissions = Permissions(approver=_prompt_approval if interactive else None, pre_approved=yes)
    needs = permissions.needs_confirmation(tool.name, tool.side_effects) and not yes
    scope = tool_scope(tool, values) if needs else None  # the window under a click, for "always" rules
    decision = permissions.check(tool.name, tool.description, tool.side_effects, values, scope=scope)
    if not decision.approved:
        raise AssistantError(f"{name} was not run: {decision.describe()}")
    from assistant.dryrun import actions_dry_run

    with actions_dry_run(dry_run):
        result, _ = run_tool(tool, values, None)
    if result.is_error:
        raise AssistantError(result.text.removeprefix("error: "))
    click.echo(result.text + (f" [+{len(result.images)} image(s)]" if result.images else ""))


@tools_group.command("allowed")
def tools_allowed() -> None:
    """What runs without asking: the tools you always allow ([agent] always_allow in the config file) and the
    desktop actions you always allow in one application window (always-allow.json in the config folder).
    `assistant tools forget NAME [--window TITLE]` takes one back; --yes is never remembered."""
    from assistant.paths import user_paths
    from assistant.permissions import read_allow_list, read_window_rules, window_rules_file
    from assistant.textsafe import printable

    tools = read_allow_list(user_paths().config_file)
    rules = read_window_rules()
    if not tools and not rules:
        click.echo("nothing is always allowed: every tool that needs confirmation asks")
        return
    for name in tools:
        click.echo(f"{name}  (everywhere; {user_paths().config_file})")
    for rule in rules:
        click.echo(printable(f"{rule.label()}  (since {rule.added or 'unknown'}; {window_rules_file()})"))


@tools_group.command("forget")
@click.argument("name")
@click.option("--window", "window", default=None, metavar="TITLE",
              help="Only the rule for this application window (default: NAME's rules in every window).")
def tools_forget(name: str, window: str | None) -> None:
    """Ask again before running NAME (remove it from the always-allowed tools and its per-window rules)."""
    from assistant.paths import user_paths
    from assistant.permissions import read_allow_list, remove_from_allow_list, remove_window_rules, window_label
    from assistant.textsafe import printable

    path = user_paths().config_file
    tool_wide = window is None and name in read_allow_list(path)
    gone = remove_window_rules(None, name, window)
    if not tool_wide and not gone:
        what = window_label(name, window) if window is not None else name
        raise AssistantError(f"{what} is not always allowed; `assistant tools allowed` lists what is")
    if tool_wide:
        remove_from_allow_list(path, name)
    where = ", ".join(rule.label() for rule in gone)
    click.echo(printable(f"{name} will ask for confirmation again" + (f" (forgot {where})" if where else "")))
