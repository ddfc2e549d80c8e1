"""Snapshots of the main screen, the sidebar and the help screen (pytest-textual-snapshot, fixed 120x40 terminal).

Everything on screen is fixed: chats are written to the store with fixed timings, chat-list dates come from a
fixed clock, the cursor does not blink. Update with `pytest tests/tui --snapshot-update` after a deliberate change.
"""

from __future__ import annotations

import pytest

from assistant import hookimpl
from assistant.hooktypes import SlashCommand
from assistant.plugins import create_plugin_manager
from assistant.tui import format as tui_format
from tests.helpers import make_image
from tests.tui.tuihelpers import SIZE, saved_chat, wait_ready

ANSWER = """The picture shows **an orange square** on a white background.

- centred, about half the image wide
- no other objects

```
colour: orange
```"""


class SnapshotPlugin:
    """Stands in for third-party plugins, so the screens do not change when the built-in plugins do."""

    @hookimpl
    def register_slash_commands(self, register):
        register(SlashCommand("weather", "Attach a weather map (example plugin)", self.weather))

    def weather(self, context, argument):
        context.notify("sunny")


@pytest.fixture
def fixed_clock(monkeypatch):
    monkeypatch.setattr(tui_format, "format_when", lambda timestamp, now=None: "Mon 09:30")


@pytest.fixture
def plugins():
    # Only the model backend of the built-ins (it adds no command or screen): the tiny model loads through it.
    manager = create_plugin_manager(builtins=("assistant_plugins.transformers_backend",), load_entry_points=False)
    manager.register(SnapshotPlugin(), name="weather")
    return manager


async def steady(pilot) -> None:
    pilot.app.prompt.cursor_blink = False
    await pilot.pause()


def test_main_screen(snap_compare, make_app, store, tmp_path, fixed_clock, plugins):
    image = make_image(tmp_path / "square.png", (160, 120), "orange")
    chat_id = saved_chat(store, "Orange square", "What is in this picture?", ANSWER, image=image, rating=1)
    app = make_app(chat_id=chat_id, plugins=plugins)

    async def run_before(pilot) -> None:
        await wait_ready(pilot)
        pilot.app.prompt.insert("And what colour is the background?")
        await steady(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_sidebar(snap_compare, make_app, store, fixed_clock, plugins):
    saved_chat(store, "Receipt totals", "What is the total on this receipt?", "42.50 EUR")
    current = saved_chat(store, "Screenshot of the settings page", "Where is the dark mode switch?", "Top right.")
    saved_chat(store, "Quarterly report p.3", "Summarise page 3", "Revenue grew 4%.")
    app = make_app(chat_id=current, autoload=False, plugins=plugins)

    async def run_before(pilot) -> None:
        await pilot.press("ctrl+b")
        await steady(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_help_screen(snap_compare, make_app, plugins):
    app = make_app(autoload=False, plugins=plugins)
    app.config_file_display = "~/.config/vlm-assistant/config.toml"

    async def run_before(pilot) -> None:
        await steady(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
