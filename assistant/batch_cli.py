"""`assistant batch`: one question (or a manifest's questions) over many images, folders, globs and PDF pages.

One JSON line per input as each finishes (stdout, or the -o file, which a later run resumes), progress on stderr,
Ctrl+C keeps every finished line and prints the summary. The logic lives in assistant.batch (pure) and
assistant.batch_model (the model through the ModelBackend seam).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import IO, Any

import click

from .errors import AssistantError


def _rewrite(path: Path, lines: list[str]) -> None:
    """Replace the output file with the lines worth keeping (drops error lines and a cut-off last line)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(temporary, path)


def _open_output(output: Path) -> tuple[IO[str], list[dict[str, Any]]]:
    """The -o file opened for appending, and the lines answered in it before."""
    from .batch import answered_records

    if output.is_dir():
        raise AssistantError(f"-o {output} is a folder; give a file name such as answers.jsonl")
    records, kept = answered_records(output)
    try:
        if output.exists():
            existing = output.read_text(encoding="utf-8").splitlines()
            if existing != kept:
                _rewrite(output, kept)
        else:
            output.parent.mkdir(parents=True, exist_ok=True)
        return output.open("a", encoding="utf-8"), records
    except OSError as error:
        raise AssistantError(f"cannot write {output} ({error.strerror or error}); choose a writable -o path") from None


@click.command("batch")
@click.argument("paths", nargs=-1, required=True)
@click.option("--question", "-q", default=None, help="The question for every input (a manifest line's own question wins).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the JSON lines here (default: stdout); running again with the same file resumes.")
@click.option("--profile", "-p", default=None, help="Profile name or .toml path.")
@click.option("--model", "-m", default=None, help="Hub id or local directory instead of the profile's model.")
@click.option("--batch-size", "batch_size", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Inputs per generate call (transformers backend; others answer one at a time).")
@click.option("--ground", is_flag=True, help="Add the boxes/points in each answer, in pixels of the original image.")
@click.option("--max-tokens", "max_tokens", type=click.IntRange(1, 1_000_000), default=None,
              help="Most new tokens per answer (default: the profile's).")
@click.option("--save", is_flag=True, help="Also keep each answer as a chat (tagged batch) to rate, correct and train on.")
def batch_command(
    paths: tuple[str, ...],
    question: str | None,
    output: Path | None,
    profile: str | None,
    model: str | None,
    batch_size: int,
    ground: bool,
    max_tokens: int | None,
    save: bool,
) -> None:
    """Ask QUESTION about every image in PATHS: image files, folders (recursive), globs, PDFs (one input per page)
    or JSONL manifests ({"image": PATH, "question": TEXT} per line).

    Prints one JSON line per input as it finishes: input, page, sha256, question, profile, answer, error,
    prompt_tokens, completion_tokens, seconds (and grounding with --ground). A bad file is an error line and the
    run goes on. With -o, running the same command again skips the inputs already answered there.
    """
    from .api import Assistant, GenerationOptions
    from .batch import BatchRun, Progress, expand_inputs
    from .batch_model import ImageReader, ModelAnswerer, save_as_chat
    from .stack import warn_untested_stack

    if question is not None and not question.strip():
        raise AssistantError("--question is empty; pass the question to ask about every input")
    warn_untested_stack()
    bot = Assistant.from_profile(profile, model=model)
    reader = ImageReader(bot.plugins)
    items = expand_inputs(paths, question, reader.page_count)
    if not items:
        raise AssistantError(f"no images or PDFs found in {', '.join(paths)}")
    if question is None and all(item.question == "" for item in items):
        raise AssistantError("no question: pass --question TEXT, or a manifest whose lines have a \"question\"")
    options = GenerationOptions(max_new_tokens=max_tokens).check()
    out: IO[str]
    previous: list[dict[str, Any]] = []
    if output is not None:
        out, previous = _open_output(output)
    else:
        out = sys.stdout
    progress = Progress(sys.stderr)
    try:
        click.echo(f"batch: {len(items)} inputs, loading {bot.profile.name}", err=True)
        bot.load()
        answerer = ModelAnswerer(bot, options, ground=ground)
        if batch_size > 1 and not answerer.batched:
            click.echo(f"batch: the {bot.backend.name} backend answers one input at a time (--batch-size ignored)", err=True)

        def answer_many(group: list[Any]) -> list[Any]:
            answers = answerer(group)
            if save:
                for prepared, answer in zip(group, answers):
                    if answer.error is None and not answer.stopped:
                        answer.extra["chat_id"] = save_as_chat(bot, prepared, answer)
            return answers

        def write(record: dict[str, Any]) -> None:
            if out is sys.stdout and progress.tty and sys.stdout.isatty():
                progress.clear()
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()

        run = BatchRun(
            items=items, profile=bot.profile.name, answer_many=answer_many, write=write, read_image=reader,
            batch_size=batch_size, previous=previous, ground=ground, progress=progress,
        )
        with _ctrl_c_stops(run, answerer):
            summary = run.run()
    finally:
        progress.close()
        if out is not sys.stdout:
            out.close()
    if summary.skipped and output is not None:
        plural = "s" if summary.skipped != 1 else ""
        click.echo(f"batch: skipped {summary.skipped} input{plural} already answered in {output}", err=True)
    click.echo(summary.line(), err=True)
    if summary.interrupted:
        sys.exit(130)


class _ctrl_c_stops:
    """While the run goes on, the first Ctrl+C stops it after the current input (finished lines are all written);
    a second one interrupts at once. Only on the main thread (signal handlers live there)."""

    def __init__(self, run: Any, answerer: Any) -> None:
        self.run = run
        self.answerer = answerer
        self.previous: Any = None
        self.installed = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.run.stop.is_set():
            raise KeyboardInterrupt
        self.run.stop.set()
        self.answerer.cancel()
        sys.stderr.write("\nbatch: stopping (Ctrl+C again to quit at once)\n")
        sys.stderr.flush()

    def __enter__(self) -> "_ctrl_c_stops":
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
            self.installed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.installed:
            signal.signal(signal.SIGINT, self.previous)
