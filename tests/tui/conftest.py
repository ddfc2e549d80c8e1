"""Fixtures for the TUI tests: an app on the tiny offline profile with recorded notifications, a store, an image."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from assistant.store import Store
from assistant.tui.app import AssistantApp
from assistant.tui.config import TuiConfig
from tests.helpers import make_image


@pytest.fixture
def make_app() -> Callable[..., AssistantApp]:
    """An app on tiny-smolvlm with the default keys, half-block thumbnails and recorded notifications."""

    def factory(profile: str | Path = "tiny-smolvlm", **kwargs: Any) -> AssistantApp:
        kwargs.setdefault("config", TuiConfig())
        kwargs.setdefault("image_renderer", "halfcell")
        kwargs.setdefault("max_new_tokens", 8)  # short replies keep the suite fast
        app = AssistantApp(profile, **kwargs)
        app.notes = []  # type: ignore[attr-defined]
        original = app.notify

        def recording_notify(message: str, **options: Any) -> None:
            app.notes.append((message, options.get("severity", "information")))  # type: ignore[attr-defined]
            original(message, **options)

        app.notify = recording_notify  # type: ignore[method-assign]
        return app

    return factory


@pytest.fixture
def store() -> Store:
    """The test's own store (ASSISTANT_HOME is per test): what the app opens by default."""
    opened = Store.open_default()
    yield opened
    opened.close()


@pytest.fixture
def cat_png(tmp_path: Path) -> Path:
    return make_image(tmp_path / "pics" / "cat.png", (64, 48), "orange")


@pytest.fixture
def gated_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    """After its first piece, generation waits until the reply is cancelled: Esc always lands mid-stream."""
    import time

    from assistant.engine import generation

    original = generation.TextStream.__iter__

    def gated(self: Any) -> Any:
        for index, piece in enumerate(original(self)):
            yield piece
            if index == 0:
                deadline = time.monotonic() + 30
                while not self.cancelled and time.monotonic() < deadline:
                    time.sleep(0.01)

    monkeypatch.setattr(generation.TextStream, "__iter__", gated)
