"""Streaming generation on a background thread, with cancel and honest timing (TTFT, tokens/s)."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable, Iterator

from ..hooktypes import GenerationStats  # noqa: F401 - the stats type lives with the Backend protocol
from ..profiles import GenerationSettings
from .memory import trim_freed_memory


def sampling_kwargs(settings: GenerationSettings, max_new_tokens: int | None = None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"max_new_tokens": int(max_new_tokens or settings.max_new_tokens)}
    if settings.temperature > 0:
        kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    if settings.min_new_tokens:
        kwargs["min_new_tokens"] = min(int(settings.min_new_tokens), kwargs["max_new_tokens"])
    if settings.repetition_penalty != 1.0:
        kwargs["repetition_penalty"] = settings.repetition_penalty
    return kwargs


class _Clock:
    """A StoppingCriteria that timestamps every generated token and stops when asked to."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.first: float | None = None
        self.last: float | None = None

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.last = now
        return torch.full((input_ids.shape[0],), self.stop.is_set(), dtype=torch.bool, device=input_ids.device)


class TextStream:
    """Iterate to receive text pieces as they are generated; `stats` is complete once iteration ends.

    Generation runs on the engine thread (see engine.executor); with a `decoder` (engine.decoding) its
    one-token steps run through the fused step. `cancel()` (any thread) stops it after the current token;
    the text produced so far is kept and `stats.stopped` is True. Errors raised by generate are re-raised
    from the iterator.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        inputs: Any,
        generate_kwargs: dict[str, Any],
        started_at: float | None = None,
        on_finish: Callable[["TextStream"], None] | None = None,
        decoder: Any = None,
    ) -> None:
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        self._stop = threading.Event()
        self._clock = _Clock(self._stop)
        self._streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self._tokenizer = tokenizer
        self._error: BaseException | None = None
        self._output: Any = None
        self._on_finish = on_finish
        self.finished = False
        self.past_key_values: Any = None
        """The KV cache after generation (for the conversation cache), once iteration ends."""
        self.sequences: list[int] = []
        """Prompt + generated token ids, once iteration ends."""
        self.stats = GenerationStats(prompt_tokens=int(inputs["input_ids"].shape[-1]))
        self.text = ""
        self._max_new_tokens = int(generate_kwargs.get("max_new_tokens", 0))
        self._start = started_at if started_at is not None else time.perf_counter()
        kwargs = dict(inputs)
        kwargs.update(generate_kwargs)
        kwargs["return_dict_in_generate"] = True
        kwargs["streamer"] = self._streamer
        kwargs["stopping_criteria"] = StoppingCriteriaList([self._clock])
        self.fast_loop: Any = None
        """The fused decode loop generating this reply, or None for transformers' own (engine.decoding)."""
        if decoder is not None:
            from .decoding import FastDecodeLoop
            from .hf_private import CUSTOM_GENERATE

            self.fast_loop = FastDecodeLoop(decoder, self._streamer)
            kwargs[CUSTOM_GENERATE] = self.fast_loop
        from .executor import submit

        self._done = threading.Event()
        submit(self._run, model, kwargs)

    def _run(self, model: Any, kwargs: dict[str, Any]) -> None:
        import torch

        try:
            with torch.inference_mode():
                self._output = model.generate(**kwargs)
        except BaseException as error:  # noqa: BLE001 - re-raised on the consumer's thread
            self._error = error
            self._streamer.end()
        finally:
            trim_freed_memory()  # the prefill's freed activations would otherwise stay resident
            self._done.set()

    @property
    def running(self) -> bool:
        """True while the generate thread works (an abandoned stream stops counting once its thread ends)."""
        return not self.finished and not self._done.is_set()

    def cancel(self) -> None:
        self._stop.set()

    @property
    def cancelled(self) -> bool:
        return self._stop.is_set()

    def __iter__(self) -> Iterator[str]:
        queue_get_timeout = 0.1
        while True:
            try:
                piece = self._streamer.text_queue.get(timeout=queue_get_timeout)
            except queue.Empty:
                if self._done.is_set() and self._streamer.text_queue.empty():
                    break
                continue
            if piece is self._streamer.stop_signal:
                break
            if piece:
                self.text += piece
                yield piece
        self._done.wait()
        self._finish()
        self.finished = True
        if self._error is not None:
            raise self._error
        if self._on_finish is not None:
            self._on_finish(self)

    def _finish(self) -> None:
        stats = self.stats
        stats.total_s = time.perf_counter() - self._start
        if self._output is not None:
            sequences = self._output.sequences if hasattr(self._output, "sequences") else self._output
            self.past_key_values = getattr(self._output, "past_key_values", None)
            self.sequences = sequences[0].tolist()
            ids = sequences[0, stats.prompt_tokens :].tolist()
            stats.output_ids = ids
            stats.completion_tokens = len(ids)
            stats.raw_text = self._tokenizer.decode(ids, skip_special_tokens=False)
        if self._clock.first is not None:
            stats.ttft_s = self._clock.first - self._start
            stats.decode_s = (self._clock.last or self._clock.first) - self._clock.first
        if self.fast_loop is not None:
            stats.fast_steps = self.fast_loop.steps
        stats.stopped = self._stop.is_set()
        if stats.stopped:
            stats.finish_reason = "stopped"
        elif self._max_new_tokens and stats.completion_tokens >= self._max_new_tokens:
            stats.finish_reason = "length"
        else:
            stats.finish_reason = "eos"
