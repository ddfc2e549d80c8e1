"""The values plugins exchange with the core through hooks: requests, results and registrations."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:
    from PIL.Image import Image

    from .geometry import Grounding


# --- screenshots -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ScreenshotRequest:
    """What to capture: the whole virtual screen (monitor=None, region=None), one monitor (1-based), or a region."""

    monitor: int | None = None
    region: tuple[int, int, int, int] | None = None
    """x, y, width, height in virtual-screen pixels."""


@dataclass
class Screenshot:
    image: "Image"
    left: int
    top: int
    width: int
    height: int
    monitor: int | None = None
    scale: float = 1.0
    monitors: list[dict[str, int]] = field(default_factory=list)
    """Geometry of every monitor ({left, top, width, height}), index 0 = monitor 1."""

    @property
    def source(self) -> str:
        if self.monitor is not None:
            return f"screenshot monitor {self.monitor}"
        return f"screenshot {self.width}x{self.height}+{self.left}+{self.top}"


# --- documents -------------------------------------------------------------------------------

@dataclass(frozen=True)
class PageRequest:
    """A page of a document: `page` is 1-based, as people count pages."""

    path: Path
    page: int
    dpi: int = 144
    password: str | None = None
    max_pixels: int = 25_000_000


@dataclass
class RenderedPage:
    image: "Image"
    page: int
    page_count: int
    dpi: int


@dataclass
class PageText:
    text: str
    page: int
    page_count: int


# --- registrations ---------------------------------------------------------------------------

@dataclass
class ProgressView:
    """A snapshot of long-running plugin work, for the TUI's progress screen (e.g. /train)."""

    title: str
    completed: float = 0
    total: float | None = None
    """None: unknown (an indeterminate bar)."""
    status: str = ""
    """One line under the bar (loss, samples/s, ETA...)."""
    series: list[float] = field(default_factory=list)
    """Values to plot live (e.g. the training loss per step)."""
    finished: bool = False
    error: str = ""
    """Why the work failed (one line a person can act on); non-empty means it ended in failure, not done."""


class SlashContext(Protocol):
    """What a TUI /command may do. The TUI implements it; plugins only ever see this protocol."""

    plugin_manager: Any
    profile: Any
    chat: Any
    """The open assistant.Chat, or None before the first message."""

    def send(self, text: str, extra: dict[str, Any] | None = None) -> None:
        """Send `text` as the user's next message, with the attached chips, as if typed and submitted.

        `extra` is kept in the reply's metadata (e.g. {"grounding_request": "the Save button"}).
        """

    def attach_image(self, image: "Image", source: str) -> None:
        """Add an image chip to the prompt (the user still confirms by sending)."""

    def attach_text(self, text: str, source: str) -> None:
        """Add document text to the next message (shown as a chip too)."""

    def attach_document(self, source: str, choose: Callable[[str], Any]) -> None:
        """Add a document chip whose pages are chosen by the question when it is sent.

        `choose(question)` runs off the UI thread and returns an assistant.documents.DocumentContext: its
        images and text go with the question (fitted to the model's context) and its footer into the reply's notes.
        """

    def notify(self, message: str, severity: str = "information") -> None:
        """Show a notification (severity: information, warning, error)."""

    def run_in_background(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Run `work` off the UI thread, then `done(result)` on the UI thread; AssistantError is notified."""

    def ask_password(self, prompt: str, done: Callable[[str | None], None]) -> None:
        """Ask the user for a secret (e.g. a PDF password); `done(None)` when cancelled."""

    def show_progress(self, poll: Callable[[], ProgressView], stop: Callable[[], None] | None = None) -> None:
        """Open a progress screen that calls `poll()` twice a second; `stop` (if given) is offered as a button."""


@dataclass(frozen=True)
class SlashCommand:
    """A TUI /command. `run(context, argument)` runs on the UI thread; slow work goes to run_in_background."""

    name: str
    help: str
    run: Callable[[SlashContext, str], Any]
    complete_paths: bool = False
    """Offer file-path completion for the argument."""
    override: bool = False
    """Replace a built-in registration of the same name (without it, the built-in wins and the clash is reported)."""
    plugin: str = ""
    """The plugin that registered it: filled in by the plugin manager (whatever the plugin wrote here)."""


@dataclass(frozen=True)
class Backend:
    """A model backend: `load(profile)` returns an object with the engine's generate interface."""

    name: str
    load: Callable[[Any], Any]


@dataclass(frozen=True)
class GroundingFormat:
    """A reply format for boxes/points. `parse(text, image_size, input_size)` never raises."""

    name: str
    description: str
    parse: Callable[[str, tuple[int, int], tuple[int, int] | None], "Grounding"]
    prompt: str = ""
    """Prompt template that asks the model to locate `{thing}` in this format."""
    override: bool = False
    """Replace a built-in registration of the same name (without it, the built-in wins and the clash is reported)."""
    plugin: str = ""
    """The plugin that registered it: filled in by the plugin manager (whatever the plugin wrote here)."""


@dataclass(frozen=True)
class ToolResult:
    text: str = ""
    images: list["Image"] = field(default_factory=list)
    is_error: bool = False


@dataclass(frozen=True)
class Tool:
    """A tool the model may call. `side_effects=True` means the user must confirm each call."""

    name: str
    description: str
    parameters: dict[str, Any]
    """JSON schema of the arguments."""
    run: Callable[..., ToolResult]
    side_effects: bool = False
    timeout_s: float = 30.0
    override: bool = False
    """Replace a built-in registration of the same name (without it, the built-in wins and the clash is reported)."""
    plugin: str = ""
    """The plugin that registered it: filled in by the plugin manager (whatever the plugin wrote here)."""


@dataclass
class TrainProgress:
    """One progress report a trainer passes to `progress(update)`: phase is data, loading, training, eval, saving
    or done."""

    phase: str
    message: str = ""
    """One line for people (what is happening now)."""
    step: int = 0
    total_steps: int = 0
    epoch: int = 0
    epochs: int = 0
    loss: float | None = None
    """Training loss of the latest step."""
    eval_loss: float | None = None
    lr: float = 0.0
    samples_per_s: float | None = None
    eta_s: float | None = None
    """Seconds left, estimated."""
    stats: Any = None
    """With phase "data": what the data holds (the built-in trainer passes its DatasetStats)."""


@dataclass
class TrainResult:
    """What `Trainer.train` returns."""

    name: str
    """The adapter's name."""
    path: Path
    """Where the adapter (or the checkpoint of a stopped run) is saved."""
    status: str
    """complete, or stopped (a checkpoint was saved: resume continues it)."""
    step: int = 0
    total_steps: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    """Numbers for people and for `assistant adapters show` (train_loss_last_epoch, eval_loss, steps...)."""
    stats: Any = None
    """What the training data held (the built-in trainer's DatasetStats)."""
    message: str = ""
    """One line: why it stopped, or what was saved."""


@dataclass(frozen=True)
class Trainer:
    """A fine-tuning method: `train(config, progress=None, **options)` returns a TrainResult."""

    name: str
    description: str
    train: Callable[..., Any]
    override: bool = False
    """Replace a built-in registration of the same name (without it, the built-in wins and the clash is reported)."""
    plugin: str = ""
    """The plugin that registered it: filled in by the plugin manager (whatever the plugin wrote here)."""
