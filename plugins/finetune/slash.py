"""TUI /train: the `train` command's options, run in a background worker with progress notifications."""

from __future__ import annotations

import shlex
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import click

from assistant.errors import AssistantError

from .trainer import TrainConfig, TrainProgress, TrainResult

NOTIFY_EVERY = 0.25
"""Fraction of the steps between progress notifications."""


def parse_train_argument(argument: str) -> TrainConfig:
    """The TrainConfig for `/train --name N ...` (the same options as `assistant train`)."""
    from .commands import config_from_params, train_command

    try:
        words = shlex.split(argument)
    except ValueError as error:
        raise AssistantError(f"/train: {error}; quote names with spaces") from None
    if not words:
        raise AssistantError("usage: /train --name NAME [--tag T | --chats IDS | --rated | --corrected] [--epochs N] "
                             "[--method sft|dpo|sft-then-dpo] ...")
    try:
        context = train_command.make_context("train", words)
    except click.exceptions.Exit:
        raise AssistantError("/train takes the options of `assistant train --help`") from None
    except click.ClickException as error:
        raise AssistantError(f"/train: {error.format_message()}") from None
    params = dict(context.params)
    params.pop("trainer_name", None)
    return config_from_params(params)


class ProgressNotifier:
    """Turns training progress into a few notifications (start, every quarter, end) and keeps the latest report."""

    def __init__(self, notify: Callable[[str, str], None]) -> None:
        self.notify = notify
        self.latest: TrainProgress | None = None
        self.history: list[float] = []
        self.validation: list[float] = []
        """Validation loss at each evaluation (the progress screen's second curve)."""
        self._next_fraction = NOTIFY_EVERY
        self._lock = threading.Lock()

    def __call__(self, event: TrainProgress) -> None:
        from .commands import progress_line

        with self._lock:
            if (event.phase == "training" and event.total_steps and self.latest is not None
                    and self.latest.total_steps and event.step < self.latest.step):
                self._next_fraction = NOTIFY_EVERY  # sft-then-dpo: the DPO stage counts its steps from 0 again
            self.latest = event
            if event.phase == "training" and event.loss is not None:
                self.history.append(event.loss)
            if event.phase == "eval" and event.eval_loss is not None:
                self.validation.append(event.eval_loss)
            if event.phase == "data" and event.stats is not None:
                self.notify(f"training data: {event.stats.summary()}", "information")
                for warning in event.stats.warnings():
                    self.notify(warning, "warning")
            elif event.phase == "training" and event.total_steps and not event.message:
                if event.step / event.total_steps >= self._next_fraction and event.step < event.total_steps:
                    self._next_fraction += NOTIFY_EVERY
                    self.notify(progress_line(event, width=10), "information")


@dataclass
class RunningTraining:
    """A /train run in progress: its stop flag and its latest progress (for a richer TUI screen)."""

    stop: threading.Event
    notifier: ProgressNotifier
    error: str = ""
    """Why the run failed, once it has: the progress screen shows it instead of "done"."""
    outcome: str = ""
    """The finished run's closing line (ready, or stopped with how to resume)."""


RUNNING: dict[str, RunningTraining] = {}
"""Adapter name -> run, while /train works on it in this process."""


def progress_view(name: str, run: RunningTraining) -> Any:
    """What the TUI's progress screen shows for a /train run: steps, loss line, the live training loss plot and
    the validation loss plot under it."""
    from assistant.hooktypes import ProgressView

    from .commands import progress_line

    latest = run.notifier.latest
    finished = name not in RUNNING
    if run.error:
        done = latest.step if latest is not None else 0
        return ProgressView(f"Training adapter {name}", completed=done, total=latest.total_steps if latest else None,
                            status=run.error, series=list(run.notifier.history), finished=True, error=run.error,
                            second_series=list(run.notifier.validation))
    if finished and run.outcome:
        return ProgressView(f"Training adapter {name}", completed=latest.step if latest else 0,
                            total=(latest.total_steps or None) if latest else None, status=run.outcome,
                            series=list(run.notifier.history), finished=True,
                            second_series=list(run.notifier.validation))
    if latest is None or not latest.total_steps:
        status = latest.message if latest is not None and latest.message else "preparing…"
        return ProgressView(f"Training adapter {name}", status=status, finished=finished)
    return ProgressView(
        title=f"Training adapter {name}",
        completed=latest.step,
        total=latest.total_steps,
        status=progress_line(latest, width=10),
        series=list(run.notifier.history),
        second_series=list(run.notifier.validation),
        finished=finished or latest.phase == "done",
    )


def _status_or_stop(context: Any, words: list[str]) -> None:
    from .commands import progress_line

    names = words[1:] or sorted(RUNNING)
    if not RUNNING:
        context.notify("no training is running; start one with /train --name NAME ...")
        return
    for name in names:
        run = RUNNING.get(name)
        if run is None:
            context.notify(f"no training of {name!r} is running (running: {', '.join(sorted(RUNNING))})", "warning")
        elif words[0] == "stop":
            run.stop.set()
            context.notify(f"stopping {name} after the current step (a checkpoint is kept: /train --name {name} --resume)")
        else:
            latest = run.notifier.latest
            shown = progress_line(latest, width=10) if latest and latest.total_steps else (latest.message if latest else "starting")
            context.notify(f"{name}: {shown}")


def _context_profile(context: Any) -> str | None:
    """The profile the TUI runs (its name, or its file when it is not a known profile name): what /train trains.

    Without this, /train in a TUI started with `--profile tiny-smolvlm` trained the default profile's model.
    """
    profile = getattr(context, "profile", None)
    if profile is None or not getattr(profile, "name", ""):
        return None
    from assistant.profiles import available_profiles

    from assistant.profiles import load_profile

    source = str(getattr(profile, "source", "") or "")
    known = available_profiles().get(profile.name)
    chosen = str(profile.name) if not source or (known is not None and Path(known).resolve() == Path(source).resolve()) else source
    saved = load_profile(chosen)
    running = getattr(profile, "model", None)
    if running is not None and (running.id, running.local_build) != (saved.model.id, saved.model.local_build):
        raise AssistantError(
            f"/train trains profile {profile.name}'s own model ({saved.model_label}), but this TUI runs "
            f"{profile.model_label} (--model or a server): restart without --model, or use "
            f"`assistant train --profile FILE` with a profile whose [model] is the one you want"
        )
    return chosen


def run_train(context: Any, argument: str) -> None:
    """/train --name NAME [options] trains in the background (chatting goes on); /train status, /train stop [NAME]."""
    from .trainer import train_adapter

    words = argument.split()
    if words and words[0] == "show":
        name = words[1] if len(words) > 1 else next(iter(sorted(RUNNING)), None)
        if name is None or name not in RUNNING:
            raise AssistantError("no training is running; start one with /train --name NAME ...")
        run = RUNNING[name]
        context.show_progress(lambda: progress_view(name, run), run.stop.set)
        return
    if words and words[0] in ("stop", "status"):
        _status_or_stop(context, words)
        return
    config = parse_train_argument(argument)
    if config.profile is None and not config.resume:
        config.profile = _context_profile(context)
    if config.name in RUNNING:
        raise AssistantError(f"adapter {config.name} is already being trained; /train status shows how far it is")
    # Textual's notify is thread-safe, so the worker may report progress directly.
    notifier = ProgressNotifier(lambda message, severity: context.notify(message, severity))
    running = RunningTraining(threading.Event(), notifier)
    RUNNING[config.name] = running
    context.notify(f"training adapter {config.name} in the background… (/train show, /train stop {config.name})")
    show = getattr(context, "show_progress", None)
    if show is not None:
        show(lambda: progress_view(config.name, running), running.stop.set)

    def work() -> TrainResult:
        try:
            return train_adapter(config, progress=notifier, should_stop=running.stop.is_set,
                                 plugins=getattr(context, "plugin_manager", None))
        except AssistantError as error:
            running.error = str(error)
            raise
        except Exception as error:  # noqa: BLE001 - the TUI reports it as a bug; the screen must say it failed
            running.error = f"{type(error).__name__}: {error}"
            raise
        finally:
            RUNNING.pop(config.name, None)

    def done(result: TrainResult) -> None:
        if result.status == "complete":
            loss = result.metrics.get("eval_loss") or result.metrics.get("train_loss_last_epoch")
            shown = f" (loss {loss:.4f})" if isinstance(loss, float) else ""
            if isinstance(result.metrics.get("reward_accuracy"), float):
                shown = (f" (held-out reward accuracy {result.metrics['reward_accuracy']:.0%}, "
                         f"margin {result.metrics.get('reward_margin') or 0:+.3f})")
            running.outcome = f"adapter {result.name} is ready{shown}: /adapter {result.name} to use it"
            context.notify(running.outcome)
        else:
            running.outcome = result.message
            context.notify(result.message, "warning")

    context.run_in_background(work, done)
