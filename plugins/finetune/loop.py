"""The training loop of one stage (SFT, or DPO in dpo.py): steps, validation, best weights, early stopping,
checkpoints and resume.

`run_stage` is the entry point; `StageLoop` keeps the loop's state (optimizer, step plan, loss history,
validations, the best weights so far) so that each part of a stage (resume, validate, step, checkpoint,
finish) is a method that can be read on its own. An `Objective` says what is optimised.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from assistant.errors import AssistantError
from assistant.hooktypes import TrainProgress, TrainResult

from .checkpoint import latest_checkpoint, load_checkpoint, rng_tensors, save_checkpoint
from .dataset import DatasetStats, Example
from .settings import ProgressFn, TrainSettings, auto_epochs, auto_eval_every, learning_rate, plan_steps

if TYPE_CHECKING:
    from assistant.profiles import Profile

    from .validation import Validation


@dataclass
class Run:
    """What a run knows once the data and the model are ready."""

    settings: TrainSettings
    path: Path
    profile: "Profile"
    train: list[Example]
    held_out: list[Example]
    learned_tokens: list[int]
    stats: DatasetStats
    fingerprint: str
    report: ProgressFn


@dataclass
class StageOutcome:
    """A stage that ran to its end (or stopped early on validation): what saving the adapter needs."""

    done: int
    total: int
    history: list[float]
    metrics: dict[str, Any]
    validations: list[Any]
    duration: float
    samples: int


Finish = Callable[[Run, Any, Any, StageOutcome], TrainResult]
"""What follows a finished stage: save the adapter (trainer.save_adapter), or hand over to the next stage."""


class Objective:
    """What one stage of training optimises: SFT here, DPO in dpo.py. `run_stage` runs either."""

    stage = "sft"
    held_out_what = "held-out chats"
    count: int
    """Training items (examples, pairs) the step plan shuffles."""
    held_out: bool
    """Whether there is anything to validate on."""

    def step(self, model: Any, batches: list[list[int]]) -> float:
        """Forward and backward for one optimizer step's micro-batches; returns the step's loss."""
        raise NotImplementedError

    def validate(self, step: int, model: Any) -> Any:
        """A `Validation` of the model as it is now."""
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """What a checkpoint must keep for this stage to resume (JSON)."""
        return {}

    def final_metrics(self, first: Any, best: Any) -> dict[str, Any]:
        """Extra metrics for the adapter's metadata from the first and the kept validation."""
        return {}


class SFTObjective(Objective):
    """Cross-entropy on the learned reply tokens, summed and divided by the learned tokens of the whole step."""

    def __init__(self, run: Run, loaded: Any, encoder: Any) -> None:
        self.run, self.loaded, self.encoder = run, loaded, encoder
        self.count = len(run.train)
        self.held_out = bool(run.held_out)

    def step(self, model: Any, batches: list[list[int]]) -> float:
        from .modeling import batch_loss

        run = self.run
        step_tokens = sum(run.learned_tokens[index] for batch in batches for index in batch)
        loss_sum = 0.0
        for batch_indices in batches:
            batch = self.encoder.encode([run.train[index] for index in batch_indices]).to(self.loaded.device)
            loss, _ = batch_loss(model, batch, self.loaded)
            (loss / max(1, step_tokens)).backward()
            loss_sum += float(loss.detach())
        return loss_sum / max(1, step_tokens)

    def validate(self, step: int, model: Any) -> Any:
        from .validation import validate

        return validate(step, model, self.loaded, self.encoder, self.run.held_out, self.run.settings.batch_size)


def run_stage(
    run: Run,
    loaded: Any,
    model: Any,
    objective: Objective,
    finish: Finish,
    saved: dict[str, Any] | None,
    should_stop: Callable[[], bool] | None,
    stop_after: int | None,
    step_offset: int = 0,
) -> TrainResult:
    """Train one stage from the start or from its newest checkpoint (`saved`), then `finish` it.

    A later stage of a multi-stage run (sft-then-dpo) numbers its checkpoints after `step_offset`, so the newest
    checkpoint is always the one to resume. `should_stop()` and `stop_after` end the stage early with a checkpoint.
    """
    loop = StageLoop(run, loaded, model, objective, step_offset)
    if saved is not None:
        loop.resume()
    elif objective.held_out:
        loop.evaluate(0)
    stopped = loop.train(should_stop, stop_after)
    if stopped is not None:
        return stopped
    return finish(run, model, loaded, loop.outcome())


class StageLoop:
    """The state of one stage's loop; `run_stage` drives it."""

    def __init__(self, run: Run, loaded: Any, model: Any, objective: Objective, step_offset: int) -> None:
        import torch

        from .validation import EarlyStopping

        settings = run.settings
        self.run, self.loaded, self.model, self.objective = run, loaded, model, objective
        self.settings, self.step_offset = settings, step_offset
        self.parameters = [parameter for _, parameter in model.named_parameters() if parameter.requires_grad]
        self.optimizer = torch.optim.AdamW(self.parameters, lr=settings.lr, weight_decay=settings.weight_decay)
        self.epochs = settings.epochs or auto_epochs(objective.count)
        self.plan = plan_steps(objective.count, settings.batch_size, settings.grad_accum, self.epochs, settings.seed)
        self.total = len(self.plan)
        self.warmup = math.ceil(self.total * settings.warmup_ratio) if settings.warmup_ratio else 0
        self.eval_every = settings.eval_every or auto_eval_every(self.total)
        self.history: list[float] = []
        self.metrics: dict[str, Any] = {"epochs": self.epochs, "planned_steps": self.total, "eval_every": self.eval_every}
        self.validations: list[Validation] = []
        self.stopper = EarlyStopping(settings.patience)
        self.best_state: dict[str, Any] | None = None
        self.start = 0
        self.done = 0
        self.samples = 0
        self.duration = 0.0
        self.stopped_early = False

    # --- validation and the best weights ---------------------------------------------------------------------------

    def _progress(self, phase: str, message: str = "", **fields: Any) -> None:
        self.run.report(TrainProgress(phase, message, total_steps=self.total, **fields))

    def _snapshot(self) -> dict[str, Any]:
        from peft import get_peft_model_state_dict

        return {key: value.detach().clone() for key, value in get_peft_model_state_dict(self.model).items()}

    def evaluate(self, step: int) -> "Validation":
        """Validate on the held-out items; an improvement becomes the best weights (never the untrained start)."""
        objective, stopper = self.objective, self.stopper
        what = ("the base model" if objective.stage == "sft" else "the start") if step == 0 else f"step {step}"
        self._progress("eval", f"validating {what} on {len(self.run.held_out)} {objective.held_out_what}",
                       step=step, epochs=self.epochs)
        result = objective.validate(step, self.model)
        self.validations.append(result)
        improved = step > 0 and stopper.update(result)
        if improved:
            self.best_state = self._snapshot()
        note = " · best so far" if improved else f" · best: step {stopper.best.step}" if stopper.best else ""
        self._progress("eval", result.describe() + note, step=step, epochs=self.epochs,
                       eval_loss=result.loss, eval_accuracy=result.accuracy)
        return result

    # --- checkpoints -----------------------------------------------------------------------------------------------

    def resume(self) -> None:
        """Continue from the newest checkpoint: weights, optimizer, RNG, history, validations, the best so far."""
        from peft import set_peft_model_state_dict

        from .checkpoint import load_best, restore_rng
        from .validation import Validation

        device = self.loaded.device
        checkpoint = latest_checkpoint(self.run.path)
        assert checkpoint is not None
        adapter_state, optimizer_state, rng, state = load_checkpoint(checkpoint, device)
        set_peft_model_state_dict(self.model, adapter_state)
        self.optimizer.load_state_dict(optimizer_state)
        restore_rng(rng)
        self.start = self.done = int(state["step"]) - self.step_offset
        self.history = list(state.get("history") or [])
        self.metrics.update(state.get("metrics") or {})
        self.validations = [Validation.from_dict(item) for item in state.get("validations") or []]
        best_step = state.get("best_step")
        self.stopper.best = next((item for item in self.validations if item.step == best_step), None)
        self.stopper.stale = int(state.get("stale_evaluations") or 0)
        self.best_state = load_best(checkpoint, device)
        self._progress("training", f"resuming at step {self.start}/{self.total}", step=self.start, epochs=self.epochs)
        interrupted_validation = self.start % self.eval_every == 0 and not any(
            item.step == self.start for item in self.validations
        )
        if self.objective.held_out and interrupted_validation:
            self.evaluate(self.start)

    def _checkpoint_state(self, step: int) -> dict[str, Any]:
        settings, stopper = self.settings, self.stopper
        return {
            "step": self.step_offset + step,
            "stage": self.objective.stage,
            "stage_state": self.objective.state(),
            "total_steps": self.total,
            "history": self.history,
            "metrics": self.metrics,
            "validations": [item.to_dict() for item in self.validations],
            "best_step": stopper.best.step if stopper.best else None,
            "stale_evaluations": stopper.stale,
            "fingerprint": self.run.fingerprint,
            "settings": {
                "profile": settings.profile,
                "selection": settings.selection.to_dict(),
                "hyperparameters": settings.hyperparameters(),
            },
        }

    def save(self, step: int, rng: dict[str, Any]) -> None:
        from peft import get_peft_model_state_dict

        self._progress("saving", f"checkpoint at step {step}", step=step)
        save_checkpoint(self.run.path, self.step_offset + step, get_peft_model_state_dict(self.model), self.optimizer,
                        rng, self._checkpoint_state(step), self.best_state)

    def _stopped(self, rng: dict[str, Any]) -> TrainResult:
        """Stopped on request: a checkpoint of the last finished step, and how to continue."""
        self.save(self.done, rng)
        run, settings = self.run, self.settings
        message = f"stopped at step {self.done}/{self.total}; continue with `assistant train --name {settings.name} --resume`"
        self._progress("done", message, step=self.done)
        return TrainResult(settings.name, run.path, "stopped", self.done, self.total, dict(self.metrics), run.stats,
                           message)

    # --- the steps -------------------------------------------------------------------------------------------------

    def _forward_backward(self, step: int) -> tuple[float, float]:
        """The gradients of one optimizer step's micro-batches at this step's learning rate: (rate, loss)."""
        settings = self.settings
        _, batches = self.plan[step]
        rate = learning_rate(step, self.total, settings.lr, self.warmup, settings.schedule)
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        step_loss = self.objective.step(self.model, batches)
        self.samples += sum(len(batch) for batch in batches)
        return rate, step_loss

    def _update(self) -> None:
        """Clip and apply the gradients: the weights change here."""
        import torch

        if self.settings.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.parameters, self.settings.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def train(self, should_stop: Callable[[], bool] | None, stop_after: int | None) -> TrainResult | None:
        """Run the remaining steps; a TrainResult when stopped on request, None when the stage ended."""
        settings, total = self.settings, self.total
        started = time.perf_counter()
        rng_at_done = rng_tensors()
        updating = False
        try:
            for step in range(self.start, total):
                if should_stop is not None and should_stop():
                    return self._stopped(rng_at_done)
                rate, step_loss = self._forward_backward(step)
                updating = True  # an interrupt from here until the step is recorded leaves no consistent state
                self._update()
                self.done = step + 1
                self.history.append(round(step_loss, 6))
                rng_at_done = rng_tensors()
                updating = False
                if self.objective.held_out and (self.done % self.eval_every == 0 or self.done == total):
                    self.evaluate(self.done)
                    self.stopped_early = self.stopper.exhausted and self.done < total
                if self.done % settings.checkpoint_every == 0 and self.done < total and not self.stopped_early:
                    self.save(self.done, rng_at_done)
                self._report_step(self.plan[step][0], rate, time.perf_counter() - started)
                if self.stopped_early:
                    self._report_early_stop()
                    break
                if stop_after is not None and self.done >= stop_after and self.done < total:
                    return self._stopped(rng_at_done)
        except KeyboardInterrupt:
            raise self._interrupted(keep=not updating, rng=rng_at_done) from None
        self.duration = time.perf_counter() - started
        return None

    def _report_step(self, epoch: int, rate: float, elapsed: float) -> None:
        done, start, total = self.done, self.start, self.total
        speed = self.samples / elapsed if elapsed > 0 else None
        eta = elapsed / (done - start) * (total - done) if done > start else None
        latest = self.validations[-1] if self.validations else None
        self._progress(
            "training", step=done, epoch=epoch + 1, epochs=self.epochs, loss=self.history[-1], lr=rate,
            samples_per_s=speed, eta_s=eta, eval_loss=latest.loss if latest else None,
            eval_accuracy=latest.accuracy if latest else None,
        )

    def _report_early_stop(self) -> None:
        assert self.stopper.best is not None
        self._progress("eval", f"stopping early at step {self.done}/{self.total}: no progress in "
                               f"{self.settings.patience} validations (best at step {self.stopper.best.step})",
                       step=self.done)

    def _interrupted(self, keep: bool, rng: dict[str, Any]) -> AssistantError:
        """Ctrl+C: when the state after `done` steps is intact (not mid-update), it is checkpointed."""
        done, total, name = self.done, self.total, self.settings.name
        if keep:
            self.save(done, rng)
            return AssistantError(
                f"training interrupted at step {done}/{total}; a checkpoint was saved: continue with "
                f"`assistant train --name {name} --resume`"
            )
        return AssistantError(
            f"training interrupted at step {done}/{total}; continue from the last checkpoint with "
            f"`assistant train --name {name} --resume`"
        )

    # --- the end ---------------------------------------------------------------------------------------------------

    def outcome(self) -> StageOutcome:
        """The best weights put back into the model, and the stage's figures for the adapter's metadata."""
        from peft import set_peft_model_state_dict

        if self.best_state is not None:
            set_peft_model_state_dict(self.model, self.best_state)
        validations = self.validations
        first = validations[0] if validations and validations[0].step == 0 else None
        best = self.stopper.best
        self.metrics.update(
            eval_loss_before=first.loss if first else None,
            val_accuracy_before=first.accuracy if first else None,
            eval_loss=best.loss if best else None,
            val_accuracy=best.accuracy if best else None,
            best_step=best.step if best else None,
            stopped_early=self.stopped_early,
            **self.objective.final_metrics(first, best),
        )
        return StageOutcome(self.done, self.total, self.history, self.metrics, validations, self.duration,
                            self.samples)
