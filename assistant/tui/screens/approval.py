"""The confirmation dialog of the agent: may the model run this tool with these arguments? Once, always, or no."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from ...permissions import Answer, ApprovalRequest

_ANSWERS = {"once": Answer.ONCE, "always": Answer.ALWAYS, "deny": Answer.DENY}


class ToolApprovalDialog(ModalScreen[Answer]):
    """Allow once (y), always allow this tool (a), or deny (n, Esc). Deny has the focus.

    Only a key press or a click here answers: the dialog shows the model's arguments as plain text and nothing
    the model or a tool wrote can press its buttons.
    """

    AUTO_FOCUS = "#deny"

    BINDINGS = [
        Binding("y", "answer('once')", "Allow once", show=False),
        Binding("a", "answer('always')", "Always allow", show=False),
        Binding("n,escape", "answer('deny')", "Deny", show=False),
    ]

    def __init__(self, request: ApprovalRequest) -> None:
        super().__init__(classes="dialog-screen")
        self.request = request

    def compose(self) -> ComposeResult:
        request = self.request
        with Vertical(classes="dialog"):
            yield Static(f"Run the tool {request.tool}? ({request.reason})", classes="dialog-title", markup=False)
            if request.description:
                yield Static(request.description, classes="dialog-detail", markup=False)
            yield Static(f"arguments: {request.arguments_text()}", classes="dialog-detail", id="arguments", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Allow once (y)", variant="primary", id="once")
                yield Button(f"Always allow {request.tool} (a)", id="always")
                yield Button("Deny (n)", variant="error", id="deny")

    def action_answer(self, answer: str) -> None:
        self.dismiss(_ANSWERS[answer])

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(_ANSWERS.get(event.button.id or "", Answer.DENY))
