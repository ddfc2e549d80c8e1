"""Small modal dialogs: yes/no, one line of text (or a password), a multi-line editor, and an error with its fix."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static, TextArea

from ..format import split_cause_fix


class ConfirmDialog(ModalScreen[bool]):
    """A question answered with Yes (`yes_key`, y by default) or No (n, Esc, or Enter on the focused No button).

    For something that cannot be undone pass `yes_key="ctrl+y"`: no typed word can then answer Yes by accident
    (typing "yes" into a dialog that popped up under the user's fingers answered it before).
    """

    AUTO_FOCUS = "#no"

    BINDINGS = [Binding("n,escape", "answer(False)", "No", show=False)]

    def __init__(self, question: str, detail: str = "", yes: str = "Yes", yes_key: str = "y") -> None:
        super().__init__(classes="dialog-screen")
        self.question = question
        self.detail = detail
        self.yes = yes
        self.yes_key = yes_key
        self._bindings.bind(yes_key, "answer(True)", yes, show=False)

    def compose(self) -> ComposeResult:
        from ..config import key_label

        with Vertical(classes="dialog"):
            yield Static(self.question, classes="dialog-title", markup=False)
            if self.detail:
                yield Static(self.detail, classes="dialog-detail", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} ({key_label(self.yes_key)})", variant="error", id="yes")
                yield Button("No (n)", id="no")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class TextPrompt(ModalScreen["str | None"]):
    """One line of input: Enter accepts, Esc cancels (None). `password` hides what is typed."""

    AUTO_FOCUS = "#dialog-input"

    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, title: str, value: str = "", password: bool = False, placeholder: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.value = value
        self.password = password
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            yield Input(self.value, password=self.password, placeholder=self.placeholder, id="dialog-input")
            yield Static("Enter accepts · Esc cancels", classes="dialog-hint")

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)


class EditorDialog(ModalScreen["str | None"]):
    """A multi-line editor: Ctrl+S saves, Esc cancels (None)."""

    AUTO_FOCUS = "#editor"

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", show=False, priority=True),
        Binding("escape", "cancel", "Cancel", show=False),
    ]

    def __init__(self, title: str, text: str, hint: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.text = text
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog editor-dialog"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            if self.hint:
                yield Static(self.hint, classes="dialog-detail", markup=False)
            yield TextArea(self.text, soft_wrap=True, id="editor", show_line_numbers=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (Ctrl+S)", variant="primary", id="save")
                yield Button("Cancel (Esc)", id="cancel")

    def on_mount(self) -> None:
        for editor in self.query(TextArea):
            editor.move_cursor(editor.document.end)

    def action_save(self) -> None:
        self.dismiss(self.query_one(TextArea).text)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.action_cancel()


class ErrorDialog(ModalScreen[None]):
    """An error a person can act on: what happened, and below it what to do."""

    AUTO_FOCUS = "#ok"

    BINDINGS = [Binding("escape,enter", "close", "Close", show=False)]

    def __init__(self, title: str, message: str, extra: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.message = message
        self.extra = extra

    def compose(self) -> ComposeResult:
        cause, fix = split_cause_fix(self.message)
        with Vertical(classes="dialog error-dialog"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            yield Static(cause, classes="error-cause", markup=False)
            if fix:
                yield Static(f"What to do: {fix}", classes="error-fix", markup=False)
            if self.extra:
                yield Static(self.extra, classes="dialog-detail", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK", variant="primary", id="ok")

    def action_close(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)
