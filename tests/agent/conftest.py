"""Fixtures shared by the agent tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def one_thread(monkeypatch):
    """Tiny models gain nothing from more threads; on a busy 2-core runner they lose a lot (oversubscription)."""
    import torch

    previous = torch.get_num_threads()
    monkeypatch.setenv("ASSISTANT_THREADS", "1")
    yield
    torch.set_num_threads(previous)
