"""The fused decode loop runs with engine/threads.py's count and gives torch's back afterwards.

What would break it: the int8 step decoding with both threads of a 2-core machine (its default is one), a float
step or a larger machine cut to one, a setting that is not honoured, a bad setting that fails the reply instead of
keeping the default with a notice, or the next question's prefill left with one thread.
"""

from __future__ import annotations

import pytest

from assistant import Assistant
from assistant.engine import executor
from assistant.engine.decoding import FastDecoder
from assistant.guard import add_notice_listener, reset_notices


@pytest.fixture
def step_threads(monkeypatch):
    """torch's thread count at each fused decode step (they run on the engine thread)."""
    import torch

    seen: list[int] = []
    step = FastDecoder.step

    def recording(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return step(self, *args, **kwargs)

    monkeypatch.setattr(FastDecoder, "step", recording)
    return seen


@pytest.fixture
def engine_threads():
    """Set the engine thread's torch count for a test, and put it back."""
    import torch

    before = executor.run(torch.get_num_threads)
    yield lambda count: executor.run(torch.set_num_threads, count)
    executor.run(torch.set_num_threads, before)


def _ask(bot: Assistant) -> None:
    bot.profile.generation.min_new_tokens = 6
    reply = bot.chat().ask("Say something long", max_new_tokens=6)
    assert reply.text is not None


INT8_PROFILE = '[model]\nlocal_build = "tiny-smolvlm"\ndtype = "int8"\ndevice = "cpu"\nrandom_weights = true\n'


def _bot(quantized: bool) -> Assistant:
    if not quantized:
        return Assistant.from_profile("tiny-smolvlm")
    from assistant.paths import user_paths

    profiles = user_paths().profiles_dir
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / "tiny-int8.toml").write_text(INT8_PROFILE)
    return Assistant.from_profile("tiny-int8")


@pytest.mark.parametrize(
    "engine, setting, quantized, decoding",
    [(2, None, True, 1), (1, None, True, 1), (4, None, True, 4), (2, None, False, 2), (2, "1", False, 1),
     (2, "2", True, 2)],
)
def test_decoding_uses_the_decode_count_and_gives_torchs_back(engine, setting, quantized, decoding, step_threads,
                                                              engine_threads, monkeypatch):
    import torch

    if setting is None:
        monkeypatch.delenv("ASSISTANT_DECODE_THREADS", raising=False)
    else:
        monkeypatch.setenv("ASSISTANT_DECODE_THREADS", setting)
    bot = _bot(quantized)
    bot.load()
    assert bot.engine.decoder.quantized is quantized
    engine_threads(engine)
    _ask(bot)
    assert step_threads and set(step_threads) == {decoding}
    assert executor.run(torch.get_num_threads) == engine  # the prefill of the next question has them all


def test_a_bad_setting_keeps_the_default_and_says_so(step_threads, engine_threads, monkeypatch):
    monkeypatch.setenv("ASSISTANT_DECODE_THREADS", "two")
    reset_notices()
    lines: list[str] = []
    remove = add_notice_listener(lines.append)
    try:
        bot = _bot(quantized=True)
        bot.load()
        engine_threads(2)
        _ask(bot)
    finally:
        remove()
    assert set(step_threads) == {1}
    assert any("ASSISTANT_DECODE_THREADS='two' is not a whole number of threads" in line and "so 1 is used" in line
               for line in lines)
