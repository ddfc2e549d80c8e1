"""Engine: one loaded model serving conversations (inputs, streaming, context budget, adapters)."""

from __future__ import annotations

import gc

import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

from ..conversation import Message
from ..errors import AssistantError
from ..profiles import GenerationSettings, Profile
from . import executor
from .cache import ConversationCache
from .decoding import FastDecoder, build_fast_decoder
from .generation import TextStream, sampling_kwargs
from .inputs import ImageOpener, PromptInputs, build_inputs
from .loading import LoadedModel, Progress, load_model
from .vision_cache import VisionCache, install_vision_cache
from .vision_disk import DiskFeatures, model_identity


@dataclass
class EngineInfo:
    """What the status bar shows."""

    profile: str
    model: str
    device: str
    dtype: str
    adapter: str | None
    context_limit: int
    random_weights: bool


class Engine:
    """A loaded model plus the logic to answer a conversation with it. One generation at a time."""

    def __init__(self, loaded: LoadedModel, reuse_cache: bool = True) -> None:
        self.loaded = loaded
        self.cache = ConversationCache(enabled=reuse_cache)
        self.vision_cache = VisionCache(device=str(loaded.device))
        """Encoded image features by content (engine/vision_cache.py): a known screen skips the encoder."""
        self._attach_disk_tier()
        install_vision_cache(loaded.model, self.vision_cache)
        self._active: TextStream | None = None
        self._lock = threading.Lock()
        self._decoder: FastDecoder | None = None
        self._decoder_pending = bool(loaded.profile.generation.fast_decode)
        """The fused step is built on first use, not at load: fusing copies the q/k/v and gate/up weights
        (0.7 s of CPU in bf16, 1.2 s in fp32 for SmolVLM-256M, docs/performance.md) and start-up should not wait."""

    def _attach_disk_tier(self) -> None:
        """The vision cache's on-disk tier, when ASSISTANT_VISION_DISK_MB asks for it (engine/vision_disk.py)."""
        from ..paths import user_paths

        disk = DiskFeatures.from_environment(user_paths().cache)
        if disk is not None:
            self.vision_cache.disk = disk
            self.vision_cache.disk_identity = model_identity(self.loaded.source, self.loaded.model)

    @classmethod
    def load(cls, profile: Profile, progress: Progress | None = None) -> "Engine":
        return cls(executor.run(load_model, profile, progress))

    @property
    def info(self) -> EngineInfo:
        loaded = self.loaded
        return EngineInfo(
            profile=loaded.profile.name,
            model=loaded.profile.model_label if loaded.profile.model.local_build else loaded.source,
            device=loaded.device,
            dtype=("int8/" if loaded.profile.model.dtype == "int8" else "") + str(loaded.dtype).replace("torch.", ""),
            adapter=loaded.adapter,
            context_limit=loaded.context_limit,
            random_weights=loaded.profile.model.random_weights,
        )

    def prepare(
        self,
        messages: Sequence[Message],
        open_image: ImageOpener,
        max_new_tokens: int,
        system_prompt: str = "",
        tools: Sequence[dict] | None = None,
    ) -> tuple[PromptInputs, int]:
        """Inputs for the next reply, dropping the oldest turns when the context would overflow.

        Returns the inputs and how many leading messages were dropped. A single turn that alone does not fit
        is an error the user can fix (fewer images, quick image mode, a shorter document).
        """
        limit = self.loaded.context_limit
        if max_new_tokens >= limit:  # no message could ever fit: the reply length is the cause, say so
            raise AssistantError(
                f"the reply may be up to {max_new_tokens} new tokens, but this model's context holds {limit} tokens "
                "in all (question and reply); lower --max-tokens (or max_new_tokens in the profile) well below that"
            )
        dropped = 0
        candidates = list(messages)
        while True:
            inputs = build_inputs(self.loaded, candidates, open_image, system_prompt, tools)
            if inputs.prompt_tokens + max_new_tokens <= limit:
                return inputs, dropped
            cut = _next_turn_start(candidates)
            if cut is None and inputs.prompt_tokens < limit:
                raise AssistantError(
                    f"this message needs {inputs.prompt_tokens} tokens and the reply may be up to {max_new_tokens} "
                    f"more, over this model's context of {limit} tokens; lower --max-tokens to at most "
                    f"{limit - inputs.prompt_tokens}, or shorten the message"
                )
            if cut is None:
                raise AssistantError(
                    f"this message needs {inputs.prompt_tokens} tokens of context but the limit is {limit}; "
                    "attach fewer or smaller images, use a quick image profile, ask about fewer pages, or take fewer "
                    "video frames (--max-frames)"
                )
            candidates = candidates[cut:]
            dropped += cut

    def stream(
        self,
        messages: Sequence[Message],
        open_image: ImageOpener,
        settings: GenerationSettings,
        max_new_tokens: int | None = None,
        system_prompt: str = "",
        started_at: float | None = None,
        tools: Sequence[dict] | None = None,
    ) -> tuple[TextStream, PromptInputs, int]:
        """Start generating the next assistant reply; iterate the returned stream for text.

        `tools`: function specs the model may call (the agent passes them; see engine.inputs.render_chat).
        """
        started_at = started_at if started_at is not None else time.perf_counter()
        with self._lock:
            if self._active is not None and self._active.running:
                raise AssistantError("a reply is still being generated; wait for it or stop it (Esc) first")
            stream, inputs, dropped = executor.run(
                self._start, messages, open_image, settings, max_new_tokens, system_prompt, started_at, tools
            )
            self._active = stream
        return stream, inputs, dropped

    def _start(
        self,
        messages: Sequence[Message],
        open_image: ImageOpener,
        settings: GenerationSettings,
        max_new_tokens: int | None,
        system_prompt: str,
        started_at: float,
        tools: Sequence[dict] | None,
    ) -> tuple[TextStream, PromptInputs, int]:
        """On the engine thread: build the inputs, plan cache reuse and queue generation."""
        kwargs = sampling_kwargs(settings, max_new_tokens)
        if settings.seed >= 0 and kwargs.get("do_sample"):
            import torch

            torch.manual_seed(settings.seed)  # generation runs next on this same thread: nothing else draws first
        inputs, dropped = self.prepare(messages, open_image, kwargs["max_new_tokens"], system_prompt, tools)
        plan = self._reuse_plan(inputs, kwargs)
        tokenizer = self.loaded.tokenizer
        adapter = self.loaded.adapter

        def remember(stream: TextStream) -> None:
            self.cache.remember(self.loaded, stream.sequences, stream.past_key_values, inputs.image_keys, adapter)

        decoder = self._fast_decoder()
        stream = TextStream(
            self.loaded.model,
            tokenizer,
            plan.model_inputs,
            kwargs,
            started_at=started_at,
            on_finish=remember,
            decoder=decoder,
        )
        stream.stats.reused_tokens = plan.prefix
        return stream, inputs, dropped

    def _reuse_plan(self, inputs: PromptInputs, kwargs: dict[str, Any]) -> Any:
        """What of the cached conversation this prompt reuses (cache.ConversationCache.plan); `kwargs` for
        `generate` get the padding id and the cache to continue from."""
        tokenizer = self.loaded.tokenizer
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        kwargs.setdefault("pad_token_id", pad)
        plan = self.cache.plan(self.loaded, inputs.tensors, inputs.image_keys, self.loaded.adapter)
        self.vision_cache.scope = self.loaded.adapter
        if plan.past_key_values is not None:
            kwargs["past_key_values"] = plan.past_key_values
        return plan

    def generate_batch(self, requests: Sequence[Any], stop: threading.Event | None = None) -> list[Any]:
        """Answer several one-turn GenerationRequests with one `generate` call (engine.batching); the chat's KV
        cache is left as it is. `stop` (set from any thread) ends the call early."""
        from .batching import generate_batch

        with self._lock:
            if self._active is not None and self._active.running:
                raise AssistantError("a reply is still being generated; wait for it or stop it (Esc) first")
            return executor.run(generate_batch, self.loaded, requests, stop)

    @property
    def decoder(self) -> FastDecoder | None:
        """The fused one-token decode step, built on first use (None: the model's family or device is not
        supported, or the profile turned it off)."""
        if self._decoder_pending:
            self._decoder_pending = False
            self._decoder = executor.run(self._build_decoder)
        return self._decoder

    def _build_decoder(self) -> FastDecoder | None:
        """The fused step; with `dtype = "int8"` its matrices quantized (engine/int8.py)."""
        decoder = build_fast_decoder(self.loaded.model, self.loaded.device)
        if decoder is not None and self.loaded.profile.model.dtype == "int8":
            from .int8 import quantize_decoder

            decoder = quantize_decoder(decoder)
        return decoder

    @decoder.setter
    def decoder(self, value: FastDecoder | None) -> None:
        self._decoder_pending = False
        self._decoder = value

    def _fast_decoder(self) -> FastDecoder | None:
        """The fused step for this reply: none under an active LoRA adapter (it changes the projections);
        rebuilt when the model's weights were replaced since (e.g. `model.to(dtype)`)."""
        if self.loaded.adapter is not None or self.decoder is None:
            return None
        if not self.decoder.matches(self.loaded.model):
            self.decoder = self._build_decoder()
        return self.decoder

    def invalidate_cache(self) -> None:
        """Forget the cached conversation and image features (after an adapter switch or a model change)."""
        self.cache.clear()
        self.vision_cache.clear()

    def close(self) -> None:
        """Release the model so its memory can be freed while the process goes on (a script done with it, a
        profile switch): a running reply is stopped, queued engine work finishes first, the caches and the fused
        step go. The engine cannot answer afterwards; load a new one."""
        active = self._active
        if active is not None and active.running:
            active.cancel()
        executor.run(self._release)

    def _release(self) -> None:
        from .memory import trim_freed_memory

        self.invalidate_cache()
        self._decoder, self._decoder_pending, self._active = None, False, None
        del self.loaded
        gc.collect()
        trim_freed_memory()

    def encode_ahead(self, image: Any) -> Any:
        """Queue the vision encoding of `image` (a PIL image) on the engine thread and return its Future (the
        number of units the encoder ran): a UI calls it when an image is attached, so the question typed
        meanwhile finds the features in the vision cache. Replies queued later run after it, in order."""
        return executor.submit(self._encode_ahead, image)

    def prefill_ahead(
        self, messages: Sequence[Message], open_image: ImageOpener, system_prompt: str = "",
        tools: Sequence[dict] | None = None,
    ) -> Any:
        """Queue the prefill of a question not typed yet (its Future: the prompt tokens computed).

        `messages` end with the user message being written: its images and an empty text. Its prompt up to the
        end of the images is the prefix of the real question's prompt, so the conversation KV cache keeps it and
        the question sent later only prefills its own words (encode-while-typing, one step further: the image
        tokens' attention is computed too, not only the vision encoder). Queued work: replies queued later run
        after it; a question that differs earlier (an image removed) reuses what still matches."""
        return executor.submit(self._prefill_ahead, list(messages), open_image, system_prompt, tools)

    def _prefill_ahead(
        self, messages: list[Message], open_image: ImageOpener, system_prompt: str, tools: Sequence[dict] | None
    ) -> int:
        import torch

        from .memory import trim_freed_memory

        if not self.cache.enabled:
            return 0
        inputs, _ = self.prepare(messages, open_image, 1, system_prompt, tools)
        loaded = self.loaded
        kwargs: dict[str, Any] = {"max_new_tokens": 1, "do_sample": False, "return_dict_in_generate": True}
        plan = self._reuse_plan(inputs, kwargs)
        with torch.inference_mode():
            output = loaded.model.generate(**plan.model_inputs, **kwargs)
        self.cache.remember(loaded, output.sequences[0].tolist(), output.past_key_values, inputs.image_keys,
                            loaded.adapter)
        trim_freed_memory()
        return inputs.prompt_tokens - plan.prefix

    def _encode_ahead(self, image: Any) -> int:
        import torch

        from .inputs import image_kwargs
        from .memory import trim_freed_memory

        loaded, cache = self.loaded, self.vision_cache
        if not cache.enabled:
            return 0
        processor = loaded.processor
        chat = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "?"}]}]
        prompt = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        tensors = processor(text=[prompt], images=[[image]], return_tensors="pt", **image_kwargs(loaded)).to(loaded.device)
        cache.scope = loaded.adapter
        misses = cache.misses
        with torch.inference_mode():
            if "image_grid_thw" in tensors:
                loaded.model.model.get_image_features(tensors["pixel_values"], tensors["image_grid_thw"])
            elif "pixel_values" in tensors:
                loaded.model.model.get_image_features(tensors["pixel_values"], tensors.get("pixel_attention_mask"))
        trim_freed_memory()
        return cache.misses - misses

    def count_tokens(
        self,
        messages: Sequence[Message],
        open_image: ImageOpener,
        system_prompt: str = "",
        tools: Sequence[dict] | None = None,
    ) -> int:
        inputs = executor.run(build_inputs, self.loaded, messages, open_image, system_prompt, tools)
        return inputs.prompt_tokens


def _next_turn_start(messages: Sequence[Message]) -> int | None:
    """Index of the second user turn (dropping everything before it), or None when only one turn is left."""
    user_turns = [index for index, message in enumerate(messages) if message.role == "user"]
    if len(user_turns) < 2:
        return None
    return user_turns[1]

