"""The prompt: multi-line, with history and /command completion; the completion menu; the attachment chips."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from rich.text import Text
from textual import events
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import OptionList, Static, TextArea
from textual.widgets.option_list import Option

from ..attachments import Attachment
from ..completion import Completion, image_paths_in_paste
from ..config import TuiConfig

HISTORY_LIMIT = 500


class CompletionMenu(OptionList, can_focus=False):
    """Completions for the prompt: /commands, then paths or choices for the argument."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.completions: list[Completion] = []

    def show(self, completions: list[Completion]) -> None:
        self.completions = completions
        self.set_options([Option(Text.assemble(item.label, ("  " + item.detail, "dim"))) for item in completions])
        self.highlighted = 0 if completions else None
        self.display = bool(completions)

    def hide(self) -> None:
        self.completions = []
        self.clear_options()
        self.display = False

    @property
    def visible(self) -> bool:
        return bool(self.display and self.completions)

    @property
    def current(self) -> Completion | None:
        if not self.visible or self.highlighted is None:
            return None
        return self.completions[self.highlighted]


class Chip(Static, can_focus=True):
    """An attachment waiting to be sent; Delete, Backspace or a click removes it."""

    BINDINGS = [("delete,backspace", "remove", "Remove")]

    class RemoveRequested(Message):
        def __init__(self, chip: "Chip") -> None:
            super().__init__()
            self.chip = chip

    def __init__(self, attachment: Attachment) -> None:
        super().__init__(f"{attachment.label} ✕", markup=False, classes=f"chip chip-{attachment.kind}")
        self.attachment = attachment
        self.tooltip = "Delete, Backspace or click: remove"

    def action_remove(self) -> None:
        self.post_message(self.RemoveRequested(self))

    def on_click(self, event: events.Click) -> None:
        event.stop()
        self.action_remove()


class ChipBar(Horizontal):
    """The row of attachment chips above the prompt (hidden when empty)."""

    def add_chip(self, attachment: Attachment) -> Chip:
        chip = Chip(attachment)
        self.mount(chip)
        self.display = True
        return chip

    def remove_chip(self, attachment: Attachment) -> None:
        for chip in self.query(Chip):
            if chip.attachment is attachment:
                chip.remove()
        self.display = any(chip.attachment is not attachment for chip in self.query(Chip))

    def clear_chips(self) -> None:
        self.remove_children()
        self.display = False

    @property
    def labels(self) -> list[str]:
        return [chip.attachment.label for chip in self.query(Chip)]


class PromptArea(TextArea):
    """Enter sends; Ctrl+J / Shift+Enter / Alt+Enter insert a new line; ↑/↓ on the first/last line walk the history."""

    class Submitted(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class PathsPasted(Message):
        """A paste that names image files (a dropped file is pasted as its path)."""

        def __init__(self, paths: list[Path]) -> None:
            super().__init__()
            self.paths = paths

    class RemoveLastAttachment(Message):
        pass

    class PasteRequested(Message):
        """Ctrl+V: the app reads the system clipboard (an image becomes a chip, text goes into the prompt)."""

    def __init__(self, menu: CompletionMenu, **kwargs: object) -> None:
        super().__init__(
            soft_wrap=True,
            tab_behavior="focus",
            show_line_numbers=False,
            highlight_cursor_line=False,
            compact=True,
            placeholder="Ask anything · paste an image path or /image PATH · Ctrl+J new line · F1 help",
            **kwargs,  # type: ignore[arg-type]
        )
        self.menu = menu
        self.keys: dict[str, set[str]] = {}
        self.use_keys(TuiConfig())
        self.completer: Callable[[str], list[Completion]] = lambda text: []
        self.prompt_history: list[str] = []
        self._history_index: int | None = None
        self._draft = ""
        self._navigated = False
        self._menu_text = ""
        self._loaded_text = ""
        """The last text put in by the program (history, completion): a Changed event for it is not typing."""

    def use_keys(self, config: TuiConfig) -> None:
        """Take the send / newline / complete keys from the config (they are handled here, not as Bindings)."""
        self.keys = {binding_id: set(config.keys_for(binding_id).split(",")) for binding_id in ("send", "newline", "complete")}

    # --- text ----------------------------------------------------------------------------------

    def set_prompt(self, text: str) -> None:
        """Replace the text and put the cursor at its end."""
        self._loaded_text = text
        self.load_text(text)
        self.move_cursor(self.document.end)
        self._refresh_menu()

    def remember(self, text: str) -> None:
        """Add a sent prompt to the history (no immediate repeats)."""
        if text.strip() and (not self.prompt_history or self.prompt_history[-1] != text):
            self.prompt_history.append(text)
            del self.prompt_history[:-HISTORY_LIMIT]
        self._history_index = None

    # --- actions ---------------------------------------------------------------------------------

    def action_submit(self) -> None:
        self._sync_menu()
        current = self.menu.current
        if current is not None and self._should_accept_on_enter(current):
            self._accept(current)
            return
        text = self.text
        self.menu.hide()
        if text.strip():
            # Cleared here, at once: keys typed after Enter must land in an empty prompt, not in the sent text.
            self.remember(text)
            self.set_prompt("")
        self.post_message(self.Submitted(text))

    def action_newline(self) -> None:
        self.insert("\n")

    def action_complete(self) -> None:
        self._sync_menu()
        current = self.menu.current
        if current is not None:
            self._accept(current)

    def action_cursor_up(self, select: bool = False) -> None:
        if self.menu.visible and not select:
            self.menu.action_cursor_up()
            self._navigated = True
            return
        if select or self.cursor_location[0] != 0 or not self.selection.is_empty:
            super().action_cursor_up(select)
            return
        if not self.prompt_history:
            super().action_cursor_up(select)
            return
        if self._history_index is None:
            self._draft = self.text
            self._history_index = len(self.prompt_history)
        if self._history_index > 0:
            self._history_index -= 1
            self._show_history(self.prompt_history[self._history_index], at_start=True)

    def action_cursor_down(self, select: bool = False) -> None:
        if self.menu.visible and not select:
            self.menu.action_cursor_down()
            self._navigated = True
            return
        last_row = self.document.line_count - 1
        if select or self.cursor_location[0] != last_row or self._history_index is None:
            super().action_cursor_down(select)
            return
        self._history_index += 1
        if self._history_index >= len(self.prompt_history):
            self._history_index = None
            self._show_history(self._draft)
        else:
            self._show_history(self.prompt_history[self._history_index])

    def action_paste(self) -> None:
        """Ctrl+V (TextArea's paste key): ask the app for the system clipboard, which may hold an image.

        TextArea would paste only text the app itself copied; the terminal's own paste (Ctrl+Shift+V) still
        arrives as a Paste event with the text.
        """
        self.post_message(self.PasteRequested())

    def action_delete_left(self) -> None:
        if self.cursor_location == (0, 0) and self.selection.is_empty:
            self.post_message(self.RemoveLastAttachment())
            return
        super().action_delete_left()

    def close_menu(self) -> bool:
        """Hide the completion menu; True when it was open."""
        if self.menu.visible:
            self.menu.hide()
            return True
        return False

    # --- events ----------------------------------------------------------------------------------

    def _on_key(self, event: events.Key) -> None:
        # Handled here rather than by Bindings: a key is processed in order with the text typed before it
        # (a priority Binding would run before queued characters reach the prompt, e.g. in a fast paste-like burst).
        names = {event.key, *event.aliases}
        if names & self.keys["send"]:
            action: Callable[[], None] = self.action_submit
        elif names & self.keys["newline"]:
            action = self.action_newline
        elif names & self.keys["complete"]:
            self._sync_menu()
            if not self.menu.visible:
                return  # Tab moves the focus as usual
            action = self.action_complete
        else:
            return  # TextArea's own handler runs next
        event.stop()
        event.prevent_default()
        action()

    def _on_paste(self, event: events.Paste) -> None:
        # Textual also runs TextArea's own paste handler (it walks the class hierarchy) unless prevented.
        paths = image_paths_in_paste(event.text)
        if paths:
            event.stop()
            event.prevent_default()
            self.post_message(self.PathsPasted(paths))

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        if self.text != self._loaded_text:
            self._history_index = None  # the user typed: history browsing starts again from the newest entry
        if self._history_index is None:
            self._refresh_menu()

    # --- internals -------------------------------------------------------------------------------

    def _show_history(self, text: str, at_start: bool = False) -> None:
        self._loaded_text = text
        self.load_text(text)
        self.move_cursor((0, len(self.document[0])) if at_start else self.document.end)
        self.menu.hide()

    def _sync_menu(self) -> None:
        """Bring the menu up to date with the text now (its Changed event may still be on its way)."""
        if self._menu_text != self.text:
            self._refresh_menu()

    def _refresh_menu(self) -> None:
        text = self.text
        self._menu_text = text
        if not text.startswith("/") or "\n" in text:
            self.menu.hide()
            return
        completions = self.completer(text)
        if len(completions) == 1 and completions[0].replacement.rstrip() == text.rstrip():
            completions = []  # nothing left to complete
        self._navigated = False
        self.menu.show(completions)

    def _should_accept_on_enter(self, completion: Completion) -> bool:
        """Enter takes an entry picked with the arrows, or a highlighted command or choice the text is not yet.

        A typed path is sent as it is (it may name a folder or a new file); Tab completes it.
        """
        if self._navigated:
            return True
        return completion.kind != "path" and completion.replacement.rstrip() != self.text.rstrip()

    def _accept(self, completion: Completion) -> None:
        self.set_prompt(completion.replacement)
        if completion.final and not completion.replacement.endswith(" "):
            self.menu.hide()
