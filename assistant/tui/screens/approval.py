"""The confirmation dialog of the agent: may the model run this tool with these arguments? Once, always, or no."""

from __future__ import annotations

from textual import events, on
from textual._time import get_time
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from ...permissions import Answer, ApprovalRequest

_ANSWERS = {"once": Answer.ONCE, "always": Answer.ALWAYS, "deny": Answer.DENY}

ARM_DELAY_S = 0.8
"""How long the dialog is shown before it takes a decision: keys typed for the prompt never answer it."""

ALWAYS_KEY = "ctrl+a"
"""The key for "always allow": not a letter of running text, so typing ahead never grants a permanent allow."""


class ToolApprovalDialog(ModalScreen[Answer]):
    """Allow once (y), always allow (Ctrl+A), or deny (n, Esc). Deny has the focus.

    "Always" is offered only where the policy offers it (`request.always`): this tool, or for a pointer action
    this tool in the application window under the target (`click in "Calculator"`); never for typing or keys.

    Only a key press or a click here answers: the dialog shows the model's arguments as plain text and nothing
    the model or a tool wrote can press its buttons. It arms itself `ARM_DELAY_S` after it is shown (the hint line
    says so): a key or click before that, and any key typed before that moment but delivered later (typed ahead
    while the agent was asking), is dropped, so text meant for the prompt ("a cat…") never decides anything.
    """

    AUTO_FOCUS = "#deny"

    BINDINGS = [
        Binding("y", "answer('once')", "Allow once", show=False),
        Binding(ALWAYS_KEY, "answer('always')", "Always allow", show=False),
        Binding("n,escape", "answer('deny')", "Deny", show=False),
    ]

    def __init__(self, request: ApprovalRequest, arm_delay_s: float = ARM_DELAY_S) -> None:
        super().__init__(classes="dialog-screen arming")
        self.request = request
        self.arm_delay_s = arm_delay_s
        self.armed_at: float | None = None
        """Textual's clock when the dialog started taking decisions (None while arming)."""
        self.dropped_keys = 0
        """Keys that reached the dialog before it was armed (typed ahead or during the arming delay)."""

    @property
    def armed(self) -> bool:
        return self.armed_at is not None

    def compose(self) -> ComposeResult:
        request = self.request
        with Vertical(classes="dialog"):
            yield Static(f"Run the tool {request.tool}? ({request.reason})", classes="dialog-title", markup=False)
            if request.description:
                yield Static(request.description, classes="dialog-detail", markup=False)
            yield Static(f"arguments: {request.arguments_text()}", classes="dialog-detail", id="arguments", markup=False)
            if request.preview:
                yield Static(request.preview, classes="dialog-detail", id="preview", markup=False)
            yield Static("read the request: the keys work in a moment…", classes="dialog-hint", id="arming", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Allow once (y)", variant="primary", id="once")
                if request.always:
                    yield Button(f"Always allow {request.always} (Ctrl+A)", id="always")
                yield Button("Deny (n)", variant="error", id="deny")

    def on_mount(self) -> None:
        self.set_timer(self.arm_delay_s, self._arm)

    def _arm(self) -> None:
        self.armed_at = get_time()
        self.remove_class("arming")
        always = " · Ctrl+A always allow" if self.request.always else ""
        self.query_one("#arming", Static).update(f"y allow once{always} · n or Esc deny")

    def accepts(self, event: events.Event) -> bool:
        """True for an input event made after the dialog armed; keys typed ahead carry an earlier time."""
        return self.armed_at is not None and event.time >= self.armed_at

    async def on_key(self, event: events.Key) -> None:
        # Runs before the screen's bindings (the key bubbles to the app, which checks them): drop it here.
        if not self.accepts(event):
            self.dropped_keys += 1
            event.stop()
            event.prevent_default()

    def action_answer(self, answer: str) -> None:
        if answer == "always" and not self.request.always:
            return  # not offered for this call (typing, keys, a window without a title)
        if self.armed:
            self.dismiss(_ANSWERS[answer])

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if self.armed:
            self.dismiss(_ANSWERS.get(event.button.id or "", Answer.DENY))
