"""The built-in `transformers` backend: the in-process Engine behind the ModelBackend protocol.

The engine's conversation KV cache, fused decode step and LoRA adapters stay behind this seam; callers get
text pieces, stats and the image sizes the model saw.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..hooktypes import BackendCapabilities, BackendInfo, GenerationRequest, GenerationStats

if TYPE_CHECKING:
    from ..profiles import Profile
    from .engine import Engine
    from .generation import TextStream

NAME = "transformers"


class EngineReply:
    """One reply from the engine (ReplyEvents): its TextStream plus the prompt's image sizes and dropped turns."""

    def __init__(self, stream: "TextStream", input_sizes: dict[str, tuple[int, int]], dropped: int) -> None:
        self._stream = stream
        self.input_sizes = input_sizes
        self.dropped = dropped

    @property
    def stats(self) -> GenerationStats:
        return self._stream.stats

    @property
    def finished(self) -> bool:
        return self._stream.finished

    def __iter__(self) -> Iterator[str]:
        return iter(self._stream)

    def cancel(self) -> None:
        self._stream.cancel()


class TransformersBackend:
    """A transformers model loaded in this process (CPU, CUDA or MPS)."""

    name = NAME

    def __init__(self, engine: "Engine") -> None:
        self.engine = engine

    @classmethod
    def load(cls, profile: "Profile", progress: Callable[[str, float | None], None] | None = None) -> "TransformersBackend":
        from .engine import Engine

        return cls(Engine.load(profile, progress))

    @property
    def capabilities(self) -> BackendCapabilities:
        from .video_inputs import supports_video, videos_share_image_input

        processor = self.engine.loaded.processor
        return BackendCapabilities(
            adapters=True,
            kv_reuse=self.engine.cache.enabled,
            tools=True,
            video=supports_video(processor),
            video_with_images=not videos_share_image_input(processor),
            max_context=self.engine.loaded.context_limit,
        )

    @property
    def info(self) -> BackendInfo:
        info = self.engine.info
        return BackendInfo(
            profile=info.profile,
            model=info.model,
            device=info.device,
            dtype=info.dtype,
            adapter=info.adapter,
            context_limit=info.context_limit,
            random_weights=info.random_weights,
        )

    def stream(self, request: GenerationRequest) -> EngineReply:
        options: dict[str, Any] = {"tools": list(request.tools)} if request.tools else {}
        stream, inputs, dropped = self.engine.stream(
            request.messages,
            request.open_image,
            request.settings,
            max_new_tokens=request.max_new_tokens,
            system_prompt=request.system_prompt,
            started_at=request.started_at,
            **options,
        )
        return EngineReply(stream, inputs.input_sizes, dropped)

    def answer_batch(self, requests: list[GenerationRequest], stop: Any = None) -> list[Any]:
        """Several one-turn requests through one `generate` call (engine.batching.BatchedReply each); `stop`, a
        threading.Event, ends it early. Optional: `assistant batch --batch-size` looks for it, other backends
        answer one request at a time."""
        return self.engine.generate_batch(requests, stop)

    def encode_ahead(self, image: Any) -> Any:
        """Start encoding an attached image (PIL) before the question is sent; a Future. Optional: a UI looks
        for it with getattr (engine.Engine.encode_ahead, docs/performance.md)."""
        return self.engine.encode_ahead(image)

    def video_sampling(self) -> Any:
        """How the model's video processor samples frames by default (assistant.video.VideoSampling). Optional:
        the API looks for it with getattr when a video is attached (engine/video_inputs.default_sampling)."""
        from .video_inputs import default_sampling

        return default_sampling(self.engine.loaded.processor)

    def prefill_ahead(self, request: GenerationRequest) -> Any:
        """Start prefilling the question being written (request.messages end with its images and an empty text)
        before it is sent; a Future. Optional: `Assistant.prefill_ahead` looks for it (engine.Engine.prefill_ahead)."""
        return self.engine.prefill_ahead(request.messages, request.open_image, request.system_prompt, request.tools)

    def set_adapter(self, name: str | None) -> None:
        from ..adapters import activate_adapter

        activate_adapter(self.engine, name)

    def close(self) -> None:
        """Free the model (Engine.close): a closed backend answers no more."""
        self.engine.close()
