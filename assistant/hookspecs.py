"""Every hook a plugin can implement. Implementations may accept any subset of a hook's arguments.

Hooks whose names start with `register_` receive a `register` callback: call it once per thing provided.
Hooks marked "first result wins" stop at the first plugin that returns something other than None,
so a third-party plugin registered later (e.g. a Wayland screenshot backend) takes precedence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:
    import click

    from .api import Chat, Reply
    from .conversation import Conversation
    from .hooktypes import (
        Backend,
        GroundingFormat,
        PageRequest,
        PageText,
        RenderedPage,
        Screenshot,
        ScreenshotRequest,
        SlashCommand,
        Tool,
        Trainer,
    )

hookspec = pluggy.HookspecMarker("assistant")


@hookspec
def register_commands(cli: "click.Group") -> None:
    """Add subcommands to the `assistant` CLI. Called once when the CLI starts. All plugins are called."""


@hookspec
def register_slash_commands(register: "Callable[[SlashCommand], None]") -> None:
    """Add TUI /commands by calling `register(SlashCommand(...))`. Called once when the TUI starts."""


@hookspec
def register_backends(register: "Callable[[Backend], None]") -> None:
    """Add model backends by calling `register(Backend(...))`. Called when a model is loaded."""


@hookspec(firstresult=True)
def capture_screenshot(request: "ScreenshotRequest") -> "Screenshot | None":
    """Capture the screen, a monitor or a region. First result wins. Raise AssistantError when impossible."""


@hookspec(firstresult=True)
def render_page(request: "PageRequest") -> "RenderedPage | None":
    """Render one page of a document to an image. First result wins; return None for documents you don't handle."""


@hookspec(firstresult=True)
def page_text(request: "PageRequest") -> "PageText | None":
    """Extract the text layer of one page. First result wins; return None for documents you don't handle."""


@hookspec(firstresult=True)
def document_text(request: "PageRequest", progress: "Callable[[int, int], None]") -> "list[PageText] | None":
    """Extract the text layer of every page at once (`request.page` is ignored), calling `progress(done, total)`.

    First result wins; return None for documents you don't handle (`page_text` is then called page by page).
    """


@hookspec
def register_grounding_formats(register: "Callable[[GroundingFormat], None]") -> None:
    """Add reply parsers for boxes and points by calling `register(GroundingFormat(...))`."""


@hookspec
def register_tools(register: "Callable[[Tool], None]") -> None:
    """Add tools the model may call in the agentic loop by calling `register(Tool(...))`."""


@hookspec
def register_trainers(register: "Callable[[Trainer], None]") -> None:
    """Add fine-tuning methods by calling `register(Trainer(...))`."""


@hookspec
def conversation_to_examples(conversation: "Conversation") -> "list[dict[str, Any]] | None":
    """Turn a saved conversation into training examples (TRL conversational dicts). All results are concatenated."""


@hookspec
def reply_finished(chat: "Chat", reply: "Reply") -> None:
    """Observe every finished assistant reply (`chat` is an assistant.Chat, `reply` an assistant.Reply)."""
