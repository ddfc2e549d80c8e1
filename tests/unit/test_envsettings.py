"""ASSISTANT_* numbers (assistant/envsettings.py): a usable value is returned, anything else keeps the default and
says so once, naming the variable, what it should be and what is used instead."""

from __future__ import annotations

import pytest

from assistant.envsettings import read_number
from assistant.guard import add_notice_listener, reset_notices


@pytest.fixture
def notices():
    reset_notices()
    lines: list[str] = []
    remove = add_notice_listener(lines.append)
    yield lines
    remove()
    reset_notices()


def test_usable_values_are_returned_and_unset_is_none(monkeypatch, notices):
    monkeypatch.delenv("ASSISTANT_X", raising=False)
    assert read_number("ASSISTANT_X", "a number", "7") is None
    monkeypatch.setenv("ASSISTANT_X", " 2.5 ")
    assert read_number("ASSISTANT_X", "a number", "7") == 2.5
    monkeypatch.setenv("ASSISTANT_X", "3")
    assert read_number("ASSISTANT_X", "a whole number", "7", whole=True, minimum=1) == 3
    assert notices == []


@pytest.mark.parametrize("value", ["two", "1.5", "0", "-1", "3 MB"])
def test_anything_else_keeps_the_default_and_says_so_once(monkeypatch, notices, value):
    monkeypatch.setenv("ASSISTANT_X", value)
    for _ in range(2):
        assert read_number("ASSISTANT_X", "a whole number of threads, 1 or more", "the default (4)",
                           whole=True, minimum=1) is None
    assert notices == [f"warning: ASSISTANT_X={value!r} is not a whole number of threads, 1 or more, "
                       "so the default (4) is used"]


def test_the_allocator_knobs_say_so_too(monkeypatch, notices):
    from assistant.engine.memory import apply_mmap_threshold, limit_malloc_arenas

    monkeypatch.setenv("ASSISTANT_MALLOC_MMAP_THRESHOLD", "1M")
    assert apply_mmap_threshold() is False  # glibc's own threshold stays
    monkeypatch.setenv("ASSISTANT_MALLOC_ARENAS", "one")
    limit_malloc_arenas()  # the default (1) applies
    assert notices == [
        "warning: ASSISTANT_MALLOC_MMAP_THRESHOLD='1M' is not a whole number of bytes, 0 or more, so glibc's own "
        "threshold is used",
        "warning: ASSISTANT_MALLOC_ARENAS='one' is not a whole number of arenas, 0 or more, so 1 is used",
    ]
