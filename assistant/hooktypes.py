"""The values plugins exchange with the core through hooks: requests, results and registrations."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol, Sequence

if TYPE_CHECKING:
    from PIL.Image import Image

    from .conversation import ImagePart, Message
    from .geometry import Grounding
    from .profiles import GenerationSettings, Profile


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
    second_series: list[float] = field(default_factory=list)
    """A second curve, plotted under the first (e.g. the validation loss at each evaluation); empty: none."""


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


# --- model backends --------------------------------------------------------------------------

@dataclass(frozen=True)
class BackendCapabilities:
    """What a loaded backend can do; the surfaces check these instead of the backend's name."""

    adapters: bool = False
    """LoRA adapters can be switched on it (`set_adapter`)."""
    kv_reuse: bool = False
    """A follow-up reuses the conversation's computed prompt (cheap follow-ups)."""
    tools: bool = True
    """It accepts tool specs and its replies may contain tool calls."""
    video: bool = False
    video_with_images: bool = True
    """A chat may hold images and videos together (SmolVLM2's processor gives both the same input: it may not)."""
    max_context: int = 0
    """Tokens of context (prompt + reply); 0 when unknown."""
    grounding_format: str = ""
    """The reply format for boxes/points ('' : the profile's [grounding] format)."""
    remote: str = ""
    """Host the prompts (screens, documents) are sent to; '' when the model runs on this machine."""


@dataclass
class BackendInfo:
    """What the status bar and `ask`'s stats line show about the loaded model."""

    profile: str
    model: str
    device: str = ""
    dtype: str = ""
    adapter: str | None = None
    context_limit: int = 0
    random_weights: bool = False
    remote: str = ""


@dataclass
class GenerationStats:
    """Counts and timings of one reply; complete once its stream has been iterated to the end."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None
    """Seconds from the call to the first generated token."""
    decode_s: float = 0.0
    """Seconds from the first to the last generated token."""
    total_s: float = 0.0
    stopped: bool = False
    finish_reason: str = ""
    """eos, length, stopped or tool_calls."""
    raw_text: str = ""
    """The reply with special tokens kept (grounding formats such as Qwen2-VL's boxes need them)."""
    output_ids: list[int] = field(default_factory=list)
    reused_tokens: int = 0
    """Prompt tokens served from the conversation's KV cache instead of being recomputed."""
    fast_steps: int = 0
    """Tokens computed by the transformers engine's fused decode step; 0 elsewhere."""

    @property
    def tokens_per_s(self) -> float | None:
        """Decode speed: tokens after the first, over the time after the first."""
        if self.completion_tokens < 2 or self.decode_s <= 0:
            return None
        return (self.completion_tokens - 1) / self.decode_s


@dataclass
class GenerationRequest:
    """Everything a backend needs to write the next assistant reply of a conversation."""

    messages: "Sequence[Message]"
    """The conversation so far (user, assistant and tool messages; the reply to write is not in it)."""
    open_image: "Callable[[ImagePart], Image]"
    """Opens an image part of `messages` (from the store)."""
    settings: "GenerationSettings"
    """Sampling: temperature, top_p, seed, max_new_tokens (the profile's, with per-reply overrides)."""
    max_new_tokens: int | None = None
    system_prompt: str = ""
    tools: "Sequence[dict[str, Any]] | None" = None
    """OpenAI-style function specs the model may call; tool calls come back in the text as
    `<tool_call>{"name": ..., "arguments": ...}</tool_call>` (assistant.toolcalls parses them)."""
    started_at: float | None = None
    """`time.perf_counter()` when the user asked (TTFT is measured from it)."""


class ReplyEvents(Protocol):
    """A reply being generated: iterate for text pieces; `cancel()` from any thread stops it (text kept)."""

    stats: GenerationStats
    input_sizes: dict[str, tuple[int, int]]
    """Image sha256 -> (width, height) of the image as the model saw it (grounding maps boxes back from it)."""
    dropped: int
    """Leading messages left out so the conversation fits the context."""
    finished: bool
    """True once generation has ended (finished, stopped or failed)."""

    def __iter__(self) -> "Iterator[str]": ...

    def cancel(self) -> None: ...


class ModelBackend(Protocol):
    """A loaded model behind one interface: the API, CLI, TUI, agent and server talk only to this.

    One reply at a time per backend (a second `stream` while one runs raises AssistantError). Errors a user
    can fix (server down, context overflow, wrong key) are AssistantError with one actionable line.
    """

    name: str
    capabilities: BackendCapabilities

    @property
    def info(self) -> BackendInfo: ...

    def stream(self, request: GenerationRequest) -> ReplyEvents: ...

    def set_adapter(self, name: str | None) -> None:
        """Activate LoRA adapter `name` (None: the base model); AssistantError when unsupported."""

    def close(self) -> None:
        """Free the model or the connection; the backend is not used afterwards."""


@dataclass(frozen=True)
class Backend:
    """A model backend registration: `[model] backend = NAME` in a profile picks it.

    `load(profile, progress)` returns a ModelBackend; `progress(text, fraction_or_None)` reports loading
    steps (may be None). Loading errors a user can fix are AssistantError.
    """

    name: str
    load: "Callable[[Profile, Callable[[str, float | None], None] | None], ModelBackend]"
    description: str = ""
    override: bool = False
    """Replace a built-in backend of the same name (without it, the built-in wins and the clash is reported)."""
    plugin: str = ""
    """The plugin that registered it: filled in by the plugin manager (whatever the plugin wrote here)."""


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
    reads_paths: tuple[str, ...] = ()
    """Names of arguments that are file paths the tool reads: a path the user did not attach or name in the chat
    needs the user's confirmation (the model, a web page or a document cannot choose what is read unasked)."""
    override: bool = False
    """Replace a built-in registration of the same name (without it, the built-in wins and the clash is reported)."""
    plugin: str = ""
    """The plugin that registered it: filled in by the plugin manager (whatever the plugin wrote here)."""
    preview: Callable[..., str] | None = None
    """Called with a call's arguments just before the user is asked: one line saying exactly what the call will
    do (where it clicks, the text it types), shown with the confirmation. Must be quick and must not act."""
    allow_scope: Callable[..., str] | None = None
    """Called with a call's arguments just before the user is asked: the title of the application window the call
    acts on (the desktop actions: the window under the target, as the X server names it). An "always allow"
    answer for such a tool is remembered for that window only; "" (unknown) offers "allow once" only."""


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
    eval_accuracy: float | None = None
    """Latest validation accuracy (0-1: exact match on short replies; with DPO, the held-out pairs' reward accuracy);
    None when not measured."""


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
