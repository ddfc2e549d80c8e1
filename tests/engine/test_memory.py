"""The allocator setting that returns freed activations to the system (engine.memory)."""

from __future__ import annotations

import sys

import pytest

from assistant.engine import memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_threshold_is_applied_on_linux(monkeypatch):
    monkeypatch.delenv("ASSISTANT_MALLOC_MMAP_THRESHOLD", raising=False)
    assert memory.release_large_blocks() is True


def test_zero_leaves_the_allocator_alone(monkeypatch):
    monkeypatch.setenv("ASSISTANT_MALLOC_MMAP_THRESHOLD", "0")
    assert memory.release_large_blocks() is False


def test_loading_a_model_applies_it(monkeypatch):
    from assistant import Assistant

    calls = []
    real = memory.release_large_blocks
    monkeypatch.setattr("assistant.engine.loading.release_large_blocks", lambda: calls.append(real()) or calls[-1])
    Assistant.from_profile("tiny-smolvlm").load()
    assert calls and (calls[0] is True or not sys.platform.startswith("linux"))
