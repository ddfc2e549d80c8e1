"""The `assistant` command: the TUI by default, plus headless subcommands for scripts.

Plugins add subcommands through the `register_commands(cli)` hook. Every AssistantError is printed as one
line on stderr with exit status 2; anything else is a bug: one line pointing at the log file, exit 1.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from .errors import AssistantError

log = logging.getLogger("assistant")


def _setup_logging() -> Path | None:
    from .paths import touch_private, user_paths

    try:
        paths = user_paths().ensure()
        handler = logging.FileHandler(touch_private(paths.log_file), encoding="utf-8")
    except (OSError, AssistantError):
        return None  # an unusable data dir is reported by the command that needs it
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return paths.log_file


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--profile", "-p", "profile", default=None, help="Profile name or .toml path (default: smolvlm-256m).")
@click.option("--model", "-m", "model", default=None, help="Hub id or local directory to run instead of the profile's model.")
@click.option("--chat", "chat_id", type=int, default=None, help="Reopen a saved chat by id.")
@click.option("--adapter", default=None, help="LoRA adapter to activate.")
@click.option("--base-url", "base_url", default=None, metavar="URL", help="Chat with a model on an OpenAI-compatible server (with --model NAME).")
@click.version_option(package_name="vlm-assistant", prog_name="assistant")
@click.pass_context
def cli(
    ctx: click.Context, profile: str | None, model: str | None, chat_id: int | None, adapter: str | None, base_url: str | None
) -> None:
    """Chat with a local vision-language model about images, screenshots and documents.

    With no subcommand, opens the terminal UI.
    """
    if ctx.invoked_subcommand is not None:
        return
    from .tui.app import run_app

    run_app(profile=profile, model=model, chat_id=chat_id, adapter=adapter, base_url=base_url)


def _open_assistant(profile: str | None, model: str | None, adapter: str | None = None, base_url: str | None = None) -> Any:
    from .api import Assistant
    from .stack import warn_untested_stack

    warn_untested_stack()
    return Assistant.from_profile(profile, model=model, adapter=adapter, base_url=base_url)


# --- ask --------------------------------------------------------------------------------------

_TOOL_LIST = re.compile(r"[\w.-]+(,\s*[\w.-]+)*,?")


def _split_yes(yes: str | None, question: str) -> tuple[str | None, str]:
    """`--yes` takes an optional TOOL[,TOOL] list. With no QUESTION after it, a value that is not a list of tools
    (`--yes "what is on my screen?"`, `--yes go`, as written before the list existed) is the question."""
    if not yes or question:
        if yes and not _TOOL_LIST.fullmatch(yes.strip()):
            raise AssistantError(f"--yes takes tool names, e.g. --yes screenshot,zoom; {yes!r} is not a list of them")
        return yes, question
    if _TOOL_LIST.fullmatch(yes.strip()):
        from .agent import available_tools
        from .plugins import get_plugin_manager

        tools = available_tools(get_plugin_manager())
        if all(name.strip() in tools for name in yes.split(",") if name.strip()):
            return yes, question
    return "", yes


def _yes_scope(yes: str | None, question: str, tools: Any) -> frozenset[str]:
    """What `--yes` pre-approves: the tools it lists, or (plain --yes) the tools the user's question names."""
    from .permissions import question_tools

    if yes is None:
        return frozenset()
    if yes == "":
        return question_tools(question, tools)
    names = [name.strip() for name in yes.split(",") if name.strip()]
    unknown = [name for name in names if name not in tools]
    if unknown:
        raise AssistantError(
            f"--yes names {', '.join(repr(name) for name in unknown)}, which the agent does not have; the tools are: "
            f"{', '.join(sorted(tools)) or 'none'}"
        )
    return frozenset(names)


def _check_ask_options(
    pdf: str | None, pages: str | None, password: str | None, agent_mode: bool, yes: bool, max_steps: int | None,
    as_json: bool, json_stream: bool, system: str | None, temperature: float | None, top_p: float | None,
    seed: int | None, continue_last: bool, chat_ref: str | None, images: tuple[str, ...], dry_run: bool = False,
) -> None:
    """Options of `ask` that do not go together: one line saying which, before anything is loaded."""
    if (pages or password) and not pdf:
        raise AssistantError("--pages and --password need --pdf FILE")
    if (yes or max_steps is not None or dry_run) and not agent_mode:
        raise AssistantError("--yes, --max-steps and --dry-run work with --agent; add --agent to let the model use tools")
    if as_json and json_stream:
        raise AssistantError("use either --json (one object at the end) or --json-stream (lines as text arrives)")
    if agent_mode and (as_json or json_stream or system or temperature is not None or top_p is not None or seed is not None):
        raise AssistantError("--json, --json-stream, --system, --temperature, --top-p and --seed do not work with --agent yet")
    if continue_last and chat_ref not in (None, "last"):
        raise AssistantError("use either -c (the most recent chat) or --chat ID")
    if images.count("-") > 1:
        raise AssistantError("--image - reads one image from stdin; pass it once")


def _ask_document(
    bot: Any, pdf: Path, question: str, text: str, pages: str | None, password: str | None,
    attachments: list[Any], max_tokens: int | None, system: str | None,
) -> Any:
    """The document's pages for the question, fitted to the model's context; asks for a password on a terminal."""
    from .documents import DocumentPasswordError, fit_to_model, prepare_document, terminal_progress

    def prepare(password: str | None) -> Any:
        return prepare_document(bot.plugins, pdf, question, pages, bot.profile.documents, password=password,
                                progress=terminal_progress(pdf.name))

    try:
        document = prepare(password)
    except DocumentPasswordError:
        if not sys.stdin.isatty():
            raise
        document = prepare(click.prompt(f"password for {pdf.name}", hide_input=True, err=True))
    return fit_to_model(bot, document, text, attachments, max_tokens, system)  # pages that fit the context

@cli.command()
@click.argument("question", required=False, default="")
@click.option("--profile", "-p", default=None, help="Profile name or .toml path.")
@click.option("--model", "-m", default=None, help="Hub id or local directory instead of the profile's model (with --base-url: the served model's name).")
@click.option("--base-url", "base_url", default=None, metavar="URL", help="Ask an OpenAI-compatible server instead (vLLM, ollama, llama-server, assistant serve), e.g. http://127.0.0.1:8000/v1.")
@click.option("--image", "-i", "images", multiple=True, help="Image file to ask about (repeatable); - reads one from stdin.")
@click.option("--screenshot", "screenshot", is_flag=True, help="Capture the screen and ask about it.")
@click.option("--monitor", type=int, default=None, help="With --screenshot: capture this monitor (1-based).")
@click.option("--pdf", "pdf", default=None, help="PDF document to ask about.")
@click.option("--pages", default=None, help="With --pdf: pages to use, e.g. 1-3,5 (default: the most relevant).")
@click.option("--password", default=None, help="With --pdf: password of an encrypted document.")
@click.option("--video", "video", default=None, metavar="FILE", help="Video file to ask about (SmolVLM2 and Qwen2-VL profiles).")
@click.option("--fps", type=float, default=None, help="With --video: frames a second to take (default: the model's, e.g. 1).")
@click.option("--max-frames", "max_frames", type=int, default=None, help="With --video: most frames to take (default: the model's, e.g. 64); alone, that many spread evenly.")
@click.option("--chat", "chat_ref", default=None, metavar="ID|last", help="Continue a saved chat: its id, or last.")
@click.option("--continue", "-c", "continue_last", is_flag=True, help="Continue the most recent chat (--chat last).")
@click.option("--adapter", default=None, help="LoRA adapter to use.")
@click.option("--system", "system", default=None, help="System prompt for this reply instead of the profile's.")
@click.option("--temperature", type=click.FloatRange(0, 100), default=None, help="Sampling temperature; 0 is greedy (default: the profile's).")
@click.option("--top-p", "top_p", type=click.FloatRange(0, 1, min_open=True), default=None, help="Nucleus sampling mass (default: the profile's).")
@click.option("--seed", type=click.IntRange(0), default=None, help="Seed that makes a sampled reply repeatable.")
@click.option("--max-tokens", "max_tokens", type=click.IntRange(1, 1_000_000), default=None, help="Most new tokens (default: the profile's).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: text, chat and message ids, timings, tokens, grounding.")
@click.option("--json-stream", "json_stream", is_flag=True, help="Print JSON lines as the text arrives, then the --json object.")
@click.option("--stats/--no-stats", default=True, help="Print timings on stderr after the reply.")
@click.option("--agent", "agent_mode", is_flag=True, help="Let the model call tools (screenshot, PDF pages, ...) on its own.")
@click.option("--yes", "-y", "yes", is_flag=False, flag_value="", default=None, metavar="[TOOL,...]",
              help="With --agent: pre-approve the calls of these tools (default: the tools your question names).")
@click.option("--max-steps", type=click.IntRange(0, 100), default=None, help="With --agent: most tool steps (default 6).")
@click.option("--dry-run", "dry_run", is_flag=True, help="With --agent: desktop actions are previewed and logged, never sent.")
def ask(
    question: str,
    profile: str | None,
    model: str | None,
    base_url: str | None,
    images: tuple[str, ...],
    screenshot: bool,
    monitor: int | None,
    pdf: str | None,
    pages: str | None,
    password: str | None,
    chat_ref: str | None,
    continue_last: bool,
    adapter: str | None,
    system: str | None,
    temperature: float | None,
    top_p: float | None,
    seed: int | None,
    max_tokens: int | None,
    as_json: bool,
    json_stream: bool,
    stats: bool,
    agent_mode: bool,
    yes: str | None,
    max_steps: int | None,
    dry_run: bool,
    video: str | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
) -> None:
    """Ask a question (optionally about images, a video, the screen or a PDF); the reply streams to stdout.

    Text piped in is added after the question (`cat notes.txt | assistant ask "summarise"`,
    `assistant ask "fix this" < error.log`); with no QUESTION the piped text is the question.
    `xclip -o -t image/png | assistant ask --image - "what is this?"` asks about an image from stdin.
    -c continues the most recent chat. With --agent the model may call tools; each step is printed on
    stderr, the answer on stdout. `--video clip.mp4 [--fps F] [--max-frames N]` asks about a video's frames.
    """
    yes, question = _split_yes(yes, question)
    _check_ask_options(
        pdf=pdf, pages=pages, password=password, agent_mode=agent_mode, yes=yes is not None, max_steps=max_steps,
        as_json=as_json, json_stream=json_stream, system=system, temperature=temperature, top_p=top_p, seed=seed,
        continue_last=continue_last, chat_ref=chat_ref, images=images, dry_run=dry_run,
    )
    if video is None and (fps is not None or max_frames is not None):
        raise AssistantError("--fps and --max-frames choose a video's frames; give the video with --video FILE")
    if video is not None and agent_mode:
        raise AssistantError("--video does not work with --agent yet; ask about the video without --agent")
    text, title = _question_text(question, images)
    bot = _open_assistant(profile, model, adapter, base_url)
    attachments, context_text, extra = _ask_attachments(
        bot, images, screenshot, monitor, pdf, pages, password, title or text, text, max_tokens, system
    )
    chat = _chat_to_use(bot, chat_ref, continue_last)
    if agent_mode:
        from .dryrun import actions_dry_run

        with actions_dry_run(dry_run):
            _ask_agent(chat, text, attachments, context_text, extra, max_tokens, yes, max_steps, stats, typed=question)
        return
    stream = chat.stream(
        text,
        attachments,
        max_new_tokens=max_tokens,
        context_text=context_text,
        extra=extra,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        system=system,
        title=title,
        video=video,
        fps=fps,
        max_frames=max_frames,
    )
    interrupted = _print_reply_text(stream, as_json, json_stream)
    if stream.reply is None:
        if interrupted:
            raise KeyboardInterrupt
        return
    sent_videos = _sent_videos(chat) if video is not None else []
    _print_reply_summary(bot, stream.reply, sent_videos, as_json, json_stream, stats)
    if interrupted:
        sys.exit(130)  # Ctrl+C: the reply is kept (stopped); the status says it was interrupted


def _question_text(question: str, images: tuple[str, ...]) -> tuple[str, str]:
    """The text to ask (the question, then any piped text; the piped text alone without a question) and the new
    chat's title (the typed question only, never piped text)."""
    piped = "" if "-" in images else _piped_text()
    text = f"{question}\n\n{piped}" if question.strip() and piped.strip() else question if question.strip() else piped
    if not text.strip():
        raise AssistantError("the question is empty; pass a question, e.g. assistant ask \"what is this?\"")
    return text, question if question.strip() else ""


def _ask_attachments(
    bot: Any, images: tuple[str, ...], screenshot: bool, monitor: int | None, pdf: str | None, pages: str | None,
    password: str | None, title: str, text: str, max_tokens: int | None, system: str | None,
) -> tuple[list[Any], str, dict[str, Any]]:
    """The images (files, stdin, a screenshot, a PDF's chosen pages), the document text and the reply's extra."""
    from .images import image_from_pil, load_image_file

    attachments: list[Any] = [_stdin_image() if path == "-" else load_image_file(path) for path in images]
    context_text = ""
    extra: dict[str, Any] = {}
    if screenshot:
        from .hooktypes import ScreenshotRequest

        shot = bot.plugins.call_first("capture_screenshot", request=ScreenshotRequest(monitor=monitor))
        if shot is None:
            raise AssistantError("no screenshot plugin is active; enable the built-in `screenshot` plugin")
        from .screenmap import remember_capture

        remember_capture(shot)  # with --agent, desktop actions may act on this capture's pixels
        attachments.append(image_from_pil(shot.image, shot.source))
    if pdf:
        document = _ask_document(bot, Path(pdf), title, text, pages, password, attachments, max_tokens, system)
        attachments.extend(image_from_pil(image, source) for image, source in document.images)
        context_text = document.text
        extra["pages"] = document.pages
        extra["notes"] = [document.footer]
        extra["attached"] = [Path(pdf).name]  # the chat's title names the file, never its page text
    return attachments, context_text, extra


def _print_reply_text(stream: Any, as_json: bool, json_stream: bool) -> bool:
    """Print the reply as it streams (text, or JSON lines); returns whether Ctrl+C stopped it (the reply is kept,
    stopped)."""
    from .textsafe import printable

    on_terminal = sys.stdout.isatty()  # a terminal would obey ESC sequences in the reply; a file gets it as is
    try:
        for piece in stream:
            if json_stream:
                click.echo(json.dumps({"type": "text", "text": piece}, ensure_ascii=False))
            elif not as_json:
                click.echo(printable(piece, keep="\n\t") if on_terminal else piece, nl=False)
    except KeyboardInterrupt:
        stream.close()  # generation stops; the reply is kept as stopped
        return True
    return False


def _print_reply_summary(
    bot: Any, reply: Any, sent_videos: list[Any], as_json: bool, json_stream: bool, stats: bool
) -> None:
    """After the text: the --json record, or the stats lines on stderr (where the prompt went, the video frames
    taken, the boxes/points found)."""
    if as_json or json_stream:
        record = reply_record(reply, bot.profile)
        if sent_videos:
            from .video import frames_record

            record["videos"] = [frames_record(part) for part in sent_videos]  # which frames were sampled
        click.echo(json.dumps({"type": "reply", **record} if json_stream else record, ensure_ascii=False))
        return
    click.echo()
    if not stats:
        return
    remote = bot.backend.capabilities.remote
    where = f"remote: {remote} · " if remote else ""  # screens and documents left this machine: say where to
    click.echo(f"[chat {reply.conversation_id} · {where}{reply.footer()}]", err=True)
    if sent_videos:
        from .video import frames_line

        for part in sent_videos:
            click.echo(f"[video {frames_line(part)}]", err=True)
    if reply.grounding is not None and reply.grounding.shapes:
        click.echo(f"[{len(reply.grounding.shapes)} boxes/points found ({reply.grounding.format})]", err=True)


def _piped_stdin_fd() -> int | None:
    """stdin's file descriptor when it is a pipe or a redirected file (not a terminal, not closed), else None."""
    import os
    import stat

    stream = sys.stdin
    if stream is None:
        return None
    try:
        fd = stream.fileno()
        mode = os.fstat(fd).st_mode
    except (OSError, ValueError, AttributeError):
        return None
    return fd if stat.S_ISFIFO(mode) or stat.S_ISREG(mode) else None


def _piped_text() -> str:
    """Text piped or redirected into `ask` ("" when stdin is a terminal or nothing is there)."""
    if _piped_stdin_fd() is None:
        return ""
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8").strip("\n")
    except UnicodeDecodeError:
        raise AssistantError(
            "the text piped into ask is not UTF-8; pipe a text file, or use --image - for an image"
        ) from None


def _stdin_image() -> Any:
    """`--image -`: one image read from stdin (binary), checked like an image file."""
    from .images import load_image_bytes

    if _piped_stdin_fd() is None:
        raise AssistantError("--image - reads an image piped into ask, but nothing is piped; e.g. xclip -o -t image/png | assistant ask --image - \"...\"")
    data = sys.stdin.buffer.read()
    if not data:
        raise AssistantError("--image -: stdin was empty; pipe the image's bytes into ask")
    return load_image_bytes(data, "stdin")


def _chat_to_use(bot: Any, chat_ref: str | None, continue_last: bool) -> Any:
    """A new chat, the saved one with an id, or the most recent one (`--chat last`, `-c`)."""
    if continue_last or chat_ref == "last":
        return bot.last_chat()
    if chat_ref is None:
        return bot.chat()
    if not chat_ref.strip().isdigit():
        raise AssistantError(f"--chat takes a chat id or `last`, not {chat_ref!r}; `assistant chats list` shows the ids")
    return bot.chat(int(chat_ref))


def _sent_videos(chat: Any) -> list[Any]:
    """The videos of the question just asked (their sampled frames and times)."""
    question = chat.conversation.last("user")
    return list(question.videos) if question is not None else []


def reply_record(reply: Any, profile: Any) -> dict[str, Any]:
    """The `ask --json` object for a reply (also the last line of --json-stream)."""
    grounding = None
    if reply.grounding is not None and reply.grounding.shapes:
        from .geometry import shape_to_dict

        grounding = {
            "format": reply.grounding.format,
            "image_size": list(reply.grounding.image_size),
            "shapes": [shape_to_dict(shape) for shape in reply.grounding.shapes],
        }
    return {
        "text": reply.text,
        "chat_id": reply.conversation_id,
        "message_id": reply.message_id,
        "status": reply.status,
        "finish_reason": reply.finish_reason,
        "profile": profile.name,
        "model": profile.model_label,
        "timings": {"ttft_s": reply.ttft_s, "tokens_per_s": reply.tokens_per_s},
        "tokens": {"prompt": reply.prompt_tokens, "completion": reply.completion_tokens},
        "grounding": grounding,
        "notes": [str(note) for note in reply.extra.get("notes", [])],
    }


def _prompt_approval(request: Any) -> Any:
    """Ask on the terminal whether a tool may run: y (once), n (no), a (always, where the policy offers it)."""
    from .permissions import Answer

    from .textsafe import printable

    # The tool name and arguments come from the model: escape control characters (a terminal would obey them).
    click.echo(printable(f"{request.tool} wants to run ({request.reason}) with {request.arguments_text()}"), err=True)
    if request.preview:  # what an action will do on the desktop (where a click lands, the exact text and keys)
        click.echo(printable(f"  {request.preview}"), err=True)
    # "always" only where the policy offers it (never for typing or keys; pointer actions: in this window).
    always = f" / [a]lways allow {request.always}" if request.always else ""
    choices = ["y", "n", "a"] if request.always else ["y", "n"]
    choice = click.prompt(
        printable(f"allow? [y]es once / [n]o{always}"), type=click.Choice(choices), default="n", err=True,
        show_choices=False,
    )
    return {"y": Answer.ONCE, "a": Answer.ALWAYS}.get(choice, Answer.DENY)


def _ask_agent(
    chat: Any,
    question: str,
    attachments: list[Any],
    context_text: str,
    extra: dict[str, Any],
    max_tokens: int | None,
    yes: str | None,
    max_steps: int | None,
    stats: bool,
    typed: str = "",
) -> None:
    """`ask --agent`: run the loop, print each step on stderr and the answer on stdout.

    `yes`: None (no --yes), "" (plain --yes: the tools named in `typed`, the question on the command line, never
    piped text or a document) or a comma-separated list of tools."""
    from .agent import DEFAULT_MAX_STEPS, Agent, Finished, describe_event, run_in_background
    from .textsafe import printable
    from .permissions import Permissions

    steps = DEFAULT_MAX_STEPS if max_steps is None else max_steps
    agent = Agent(chat, Permissions(), max_steps=steps, max_new_tokens=max_tokens)
    agent.permissions.pre_approved = _yes_scope(yes, typed, agent.tools)
    if yes == "" and not agent.permissions.pre_approved:
        click.echo("--yes: your question names no tool, so every call that needs confirmation is asked; "
                   "name them: --yes TOOL[,TOOL]", err=True)
    ask_user = _prompt_approval if sys.stdin is not None and sys.stdin.isatty() else None
    finished: Any = None
    events = run_in_background(agent, lambda: agent.run(question, attachments, context_text, extra), ask_user)
    for event in events:
        line = describe_event(event)
        if line:
            click.echo(line, err=True)
        if isinstance(event, Finished):
            finished = event
    if finished is None or finished.reason == "failed":
        raise AssistantError(finished.error if finished is not None else "the agent ended without an answer")
    if finished.answer:
        click.echo(printable(finished.answer, keep="\n\t"))  # the model's text: ESC sequences shown, not obeyed
    if stats and finished.reply is not None:
        click.echo(f"[chat {chat.id} · {finished.reply.footer()} · {finished.steps} tool steps]", err=True)


# --- chats ------------------------------------------------------------------------------------

@cli.group()
def chats() -> None:
    """List, show, search, export, rename and delete saved chats."""


def _store() -> Any:
    from .store import Store

    return Store.open_default()


@chats.command("list")
@click.option("--limit", type=click.IntRange(1), default=None, help="Show at most this many chats.")
@click.option("--tag", default=None, help="Only chats with this tag.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def chats_list(limit: int | None, tag: str | None, as_json: bool) -> None:
    """Saved chats, newest first."""
    with _store() as store:
        summaries = store.list_conversations(limit=limit, tag=tag)
    if as_json:
        click.echo(json.dumps([summary.__dict__ for summary in summaries], indent=2))
        return
    if not summaries:
        click.echo("no saved chats yet; start one with `assistant` or `assistant ask \"...\"`")
        return
    for summary in summaries:
        tags = f"  [{', '.join(summary.tags)}]" if summary.tags else ""
        click.echo(
            f"{summary.id:>5}  {_when(summary.updated_at)}  {summary.message_count:>3} msgs  "
            f"{summary.title or '(untitled)'}{tags}"
        )


@chats.command("show")
@click.argument("chat_id", type=int)
def chats_show(chat_id: int) -> None:
    """Print a chat as Markdown."""
    with _store() as store:
        click.echo(store.export_markdown(chat_id))


@chats.command("search")
@click.argument("text")
def chats_search(text: str) -> None:
    """Full-text search over every saved message."""
    if not text.strip():
        raise AssistantError("the search text is empty; pass words to look for")
    with _store() as store:
        hits = store.search(text)
    if not hits:
        click.echo(f"no messages match {text!r}")
        return
    for hit in hits:
        click.echo(f"{hit.conversation_id:>5}  {hit.title or '(untitled)'}: {hit.snippet}")


@chats.command("export")
@click.argument("chat_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["md", "jsonl"]), default="md", help="Output format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write to a file (never an existing one without --force).")
@click.option("--force", is_flag=True, help="With -o: replace an existing file.")
def chats_export(chat_id: int, fmt: str, output: str | None, force: bool) -> None:
    """Export a chat as Markdown or JSON lines."""
    from .outputs import check_output, write_output

    if output:
        check_output(output, force)  # before the work: a refusal costs nothing
    with _store() as store:
        text = store.export_markdown(chat_id) if fmt == "md" else store.export_jsonl(chat_id)
    if output:
        write_output(output, text, force)
        click.echo(f"wrote {output}")
    else:
        click.echo(text)


@chats.command("rename")
@click.argument("chat_id", type=int)
@click.argument("title")
def chats_rename(chat_id: int, title: str) -> None:
    """Give a chat a new title."""
    with _store() as store:
        store.get_conversation(chat_id)
        store.rename_conversation(chat_id, title)
    click.echo(f"renamed chat {chat_id}")


@chats.command("delete")
@click.argument("chat_id", type=int)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def chats_delete(chat_id: int, yes: bool) -> None:
    """Delete a chat and the images only it used."""
    with _store() as store:
        conversation = store.get_conversation(chat_id)
        if not yes and not click.confirm(f"delete chat {chat_id} ({conversation.title or 'untitled'})?", default=False):
            raise AssistantError("not deleted (answer y to confirm, or pass --yes)")
        store.delete_conversation(chat_id)
    click.echo(f"deleted chat {chat_id}")


# --- profiles, plugins ------------------------------------------------------------------------

@cli.group()
def profiles() -> None:
    """Model profiles (shipped and in your profile directory)."""


@profiles.command("list")
def profiles_list() -> None:
    """Every profile with its model."""
    from .profiles import DEFAULT_PROFILE, available_profiles, profile_from_file

    for name, path in available_profiles().items():
        try:
            profile = profile_from_file(path)
            detail = f"{profile.model_label:<40} {profile.description}"
        except AssistantError as error:
            detail = f"(invalid: {error})"
        marker = "*" if name == DEFAULT_PROFILE else " "
        click.echo(f"{marker} {name:<26} {detail}")


@profiles.command("show")
@click.argument("name")
def profiles_show(name: str) -> None:
    """A profile's settings, as JSON."""
    from .profiles import describe, load_profile

    click.echo(json.dumps(describe(load_profile(name)), indent=2))


@cli.command("models")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def models_list(as_json: bool) -> None:
    """Each profile's model: built locally, downloaded or not, and its size on disk."""
    from .models import human_size, model_state
    from .profiles import DEFAULT_PROFILE, available_profiles, profile_from_file

    states = []
    for name, path in available_profiles().items():
        try:
            states.append(model_state(profile_from_file(path)))
        except AssistantError as error:
            if not as_json:
                click.echo(f"  {name:<26} (invalid profile: {error})")
    if as_json:
        click.echo(json.dumps([state.__dict__ for state in states], indent=2))
        return
    for state in states:
        marker = "*" if state.profile == DEFAULT_PROFILE else " "
        size = human_size(state.size_bytes) if state.size_bytes else "-"
        click.echo(f"{marker} {state.profile:<26} {state.model:<40} {state.state:<18} {size:>9}")
    missing = [state.profile for state in states if state.kind == "hub" and not state.ready]
    if missing:
        click.echo(f"download one with `assistant pull PROFILE` (e.g. assistant pull {missing[0]})", err=True)


@cli.command()
@click.argument("profile", required=False, default=None)
def pull(profile: str | None) -> None:
    """Download PROFILE's model (default: smolvlm-256m) into the Hugging Face cache; an interrupted pull resumes."""
    from .models import human_size, hub_offline, model_state
    from .profiles import check_model_source, load_profile

    chosen = load_profile(profile)
    state = model_state(chosen)
    if state.kind == "local_build":
        when = "" if state.ready else " on first use"
        click.echo(f"{chosen.name}: {state.model} is built locally{when}, there is nothing to download")
        return
    if state.kind == "remote":
        click.echo(f"{chosen.name}: {state.state}, there is nothing to download here")
        return
    if state.kind == "directory":
        check_model_source(chosen.model.id)
        click.echo(f"{chosen.name}: uses the local directory {state.path}, there is nothing to download")
        return
    if hub_offline():
        raise AssistantError(
            f"cannot download {state.model}: offline mode is on (HF_HUB_OFFLINE=1); unset HF_HUB_OFFLINE and run "
            f"`assistant pull {chosen.name}` again"
        )
    from .engine.loading import download_model

    click.echo(f"downloading {state.model} ({chosen.model.revision or 'main'}) for profile {chosen.name}", err=True)
    try:
        download_model(state.model, chosen.model.revision or "main", None)
    except AssistantError:
        raise
    except Exception as error:  # noqa: BLE001 - hub errors come in many classes
        log.info("pull failed", exc_info=True)
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
        raise AssistantError(
            f"could not download {state.model} ({reason}); check the id and your connection, then run "
            f"`assistant pull {chosen.name}` again: it resumes"
        ) from None
    done = model_state(chosen)
    click.echo(f"{chosen.name}: {done.model} {done.state} ({human_size(done.size_bytes)} in {done.path})")


@cli.group()
def plugins() -> None:
    """Installed plugins."""


@plugins.command("new")
@click.argument("name")
@click.option("--directory", "-d", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Where to create the assistant-NAME folder.")
def plugins_new(name: str, directory: Path) -> None:
    """Create a minimal installable plugin package assistant-NAME (a command, an entry point and a test)."""
    from .scaffold import new_plugin

    root = click.get_current_context().find_root().command
    target = new_plugin(name, directory.expanduser(), taken=set(getattr(root, "commands", cli.commands)))
    click.echo(f"created {target}")
    click.echo(f"next: pip install -e '{target}[test]' && pytest {target}   (then: assistant {name})")


def _runtime_line(record: Any, width: int) -> str:
    times = "once" if record.count == 1 else f"{record.count} times"
    return f"{'':<{width}} failed at run time: {record.stage}: {' '.join(record.error.split())} ({times}, last {_when(record.last)})"


@plugins.command("list")
@click.option("--clear", is_flag=True, help="Forget the recorded run-time failures (after fixing or updating a plugin).")
def plugins_list(clear: bool) -> None:
    """Built-in and third-party plugins, their hooks, name clashes, and any that failed (also at run time)."""
    from .plugin_records import clear_failures, read_failures
    from .plugins import get_plugin_manager

    if clear:
        dropped = clear_failures()
        click.echo(f"cleared {dropped} recorded run-time failure{'s' if dropped != 1 else ''}", err=True)
    manager = get_plugin_manager()
    if clear:
        manager.failures = [failure for failure in manager.failures if not failure.runtime]
    manager.probe_registrations()
    infos = manager.plugins()
    runtime: dict[str, list[Any]] = {}
    for record in read_failures():
        runtime.setdefault(record.plugin, []).append(record)
    width = max([16, *(len(info.name) + 1 for info in infos), *(len(name) + 1 for name in runtime)])
    for info in infos:
        status = "failing" if info.status == "ok" and info.name in runtime else info.status
        kind = "built-in" if info.builtin else "third-party"
        click.echo(f"{info.name:<{width}} {kind:<12} {status:<9} {', '.join(info.hooks)}".rstrip())
        if info.disabled_by:
            click.echo(f"{'':<{width}} disabled by {info.disabled_by}")
        if info.error:
            click.echo(f"{'':<{width}} error: {' '.join(info.error.split())}")
        for record in runtime.pop(info.name, []):
            click.echo(_runtime_line(record, width))
        for clash in info.clashes:
            click.echo(f"{'':<{width}} clash: {clash}")
    for name, records in runtime.items():  # plugins no longer installed or active
        click.echo(f"{name:<{width}} {'?':<12} not loaded")
        for record in records:
            click.echo(_runtime_line(record, width))
    if any(info.name in runtime or info.error for info in infos) or read_failures():
        click.echo("(`assistant plugins list --clear` forgets the recorded run-time failures)", err=True)


# --- bench ------------------------------------------------------------------------------------

@cli.command()
@click.option("--profile", "-p", default="bench-smolvlm-256m", show_default=True, help="Profile to measure.")
@click.option("--runs", type=click.IntRange(1, 50), default=3, show_default=True,
              help="Runs per measurement (medians); with --decode, replies per phase.")
@click.option("--new-tokens", type=click.IntRange(2, 4096), default=32, show_default=True, help="Tokens decoded per reply.")
@click.option("--threads", type=click.IntRange(1, 512), default=None, help="Torch threads (default: all cores).")
@click.option("--pipeline/--no-pipeline", default=True, help="Also measure transformers.pipeline.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="Also write the report as JSON.")
@click.option("--quantize", type=click.Choice(["int8"]), default=None, help="Decode with int8 weights (our side only).")
@click.option("--decode", "decode_dtypes", default="", metavar="DTYPES",
              help="Also measure load and decode per dtype, each in its own process (e.g. float32,bfloat16,int8).")
@click.option("--hog", type=click.IntRange(0, 64), default=0,
              help="With --decode: also decode beside this many busy-looping processes (idle figures from the same run).")
@click.option("--llama-bench", type=click.Path(exists=True, dir_okay=False), default=None,
              help="llama.cpp's llama-bench binary: measure its decode in the same run (needs --llama-model).")
@click.option("--llama-model", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The GGUF (e.g. a q8_0 text model) for --llama-bench.")
@click.option("--screenshot/--no-screenshot", default=True, help="Run the screenshot questions (off: only --decode).")
@click.option("--pause", "pause_s", type=click.FloatRange(0, 600), default=0.0, show_default=True,
              help="Also time a question sent this many seconds after the screenshot was attached (encode while typing).")
@click.option("--disk-cache", is_flag=True,
              help="Also time the screenshot question in new processes sharing the vision cache's disk tier.")
def bench(
    profile: str, runs: int, new_tokens: int, threads: int | None, pipeline: bool, json_out: str | None,
    quantize: str | None, decode_dtypes: str, hog: int, llama_bench: str | None, llama_model: str | None,
    screenshot: bool, pause_s: float, disk_cache: bool,
) -> None:
    """Measure load, preprocessing, first-token latency (turn 1 and follow-up), decode speed and memory."""
    from .bench import benchmark, format_table
    from .bench_decode import DTYPES

    dtypes = tuple(part.strip() for part in decode_dtypes.split(",") if part.strip())
    unknown = [dtype for dtype in dtypes if dtype not in DTYPES]
    if unknown:
        raise AssistantError(f"unknown --decode dtype {unknown[0]!r}; use a comma-separated list of {', '.join(DTYPES)}")
    if disk_cache and not screenshot:
        raise AssistantError("--disk-cache times the screenshot question; leave out --no-screenshot to use it")
    if bool(llama_bench) != bool(llama_model):
        raise AssistantError("--llama-bench and --llama-model go together: the binary and the GGUF it should run")
    report = benchmark(
        profile, runs, new_tokens, threads, pipeline, progress=lambda m: click.echo(m, err=True), quantize=quantize,
        decode_dtypes=dtypes, hog=hog, llama_bench=llama_bench, llama_model=llama_model, screenshot=screenshot,
        pause_s=pause_s, disk_cache=disk_cache,
    )
    click.echo(format_table(report))
    if json_out:
        Path(json_out).write_text(json.dumps(report, indent=2), encoding="utf-8")
        click.echo(f"wrote {json_out}", err=True)


# --- entry point ------------------------------------------------------------------------------

from .doctor import doctor_command  # noqa: E402 - the command lives with its checks

cli.add_command(doctor_command)

from .batch_cli import batch_command  # noqa: E402 - `assistant batch` (issue 17) lives in its own module

cli.add_command(batch_command)

from .evaluation.cli import eval_command  # noqa: E402 - `assistant eval` (issue 18) lives in assistant/evaluation

cli.add_command(eval_command)


def _with_plugin_commands(args: list[str] | None = None) -> click.Group:
    """This run's command group: the core `cli` copied (nested groups too), with the plugins' subcommands added.

    The module's `cli` is never changed, so a second `main()` in one process (tests, embedding) starts clean. A
    third-party plugin that raises is recorded; the others still register. `assistant --help` and `--version`
    (no subcommand) import no third-party plugin: a slow or broken one never delays them.
    """
    from .plugins import builtin_plugin_manager, get_plugin_manager

    group = _copy_group(cli)
    if args is not None and _asks_only_about_assistant(args):
        builtin_plugin_manager().collect("register_commands", cli=group)
        group.epilog = ("Third-party plugins are not loaded for this list: `assistant plugins list` names them, "
                        "and `assistant COMMAND --help` describes any command, theirs included.")
        return group
    get_plugin_manager().collect("register_commands", cli=group)
    return group


def _asks_only_about_assistant(args: list[str]) -> bool:
    """True for `assistant [GROUP OPTIONS] --help` or `--version`: no subcommand, nothing to run."""
    takes_value = {name for param in cli.params if isinstance(param, click.Option) and not param.is_flag
                   for name in param.opts}
    asked, skip_value = False, False
    for arg in args:
        if skip_value:
            skip_value = False
        elif arg in ("-h", "--help", "--version"):
            asked = True
        elif arg in takes_value:
            skip_value = True
        elif arg == "--" or not arg.startswith("-"):
            return False  # a subcommand (or the TUI): it may need the plugins
    return asked


def _copy_group(group: click.Group) -> click.Group:
    """A shallow copy of a click group whose command table (and those of its subgroups) is its own."""
    import copy

    clone = copy.copy(group)
    clone.commands = {
        name: _copy_group(command) if isinstance(command, click.Group) else command
        for name, command in group.commands.items()
    }
    return clone


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (also used by tests)."""
    log_file = _setup_logging()
    from .libwarnings import route_library_warnings

    route_library_warnings()  # transformers' FutureWarnings go to the log, not between the reply's lines
    from .guard import add_notice_listener, reset_notices
    from .plugins import profile_in_argv, use_profile

    reset_notices()
    stop_notices = add_notice_listener(lambda line: click.echo(line, err=True))
    from .paths import take_notices

    for line in take_notices():  # e.g. an older install's files made private
        click.echo(line, err=True)
    try:
        use_profile(profile_in_argv(sys.argv[1:] if argv is None else argv))
        args = sys.argv[1:] if argv is None else list(argv)
        _with_plugin_commands(args).main(args=argv, prog_name="assistant", standalone_mode=False)
    except AssistantError as error:
        from .textsafe import printable

        click.echo(printable(f"error: {error}"), err=True)  # it may quote a model's or a tool's text
        return error.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except SystemExit as exit_:  # a command that chose its own status (e.g. `doctor` exits 1 on a failed check)
        return exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    except Exception as error:  # noqa: BLE001 - a bug: one line here, the traceback in the log
        log.exception("unexpected error")
        where = f"; details in {log_file}" if log_file else ""
        click.echo(f"internal error: {type(error).__name__}: {error}{where}".splitlines()[0], err=True)
        return 1
    finally:
        stop_notices()
    return 0


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry_point()
