"""Videos into the model's inputs: which processors take videos, their default sampling, and the processor call.

The frames were sampled and stored when the video was attached (assistant.video); here they go to the model's own
video processor as pre-sampled frames (`do_sample_frames=False`) with their metadata, so the processor and the chat
template do the rest the model's way: SmolVLM2 writes "Frame from 00:01:" before each frame, Qwen2-VL packs frame
pairs into `pixel_values_videos` with a `video_grid_thw` row per video.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..conversation import ImagePart, Message, VideoPart
from ..errors import AssistantError
from ..video import VideoSampling

if TYPE_CHECKING:
    from PIL.Image import Image

    from .loading import LoadedModel

QWEN_REFERENCE_FPS = 2.0
"""Qwen2-VL's processors leave `fps` unset; its reference pipeline (qwen-vl-utils) samples 2 frames a second."""
FALLBACK_MAX_FRAMES = 32
VIDEO_MIN_TOKENS = 64
"""The smallest token budget a Qwen2-VL video is shrunk to, however short the context."""


def video_processor(processor: Any) -> Any:
    """The processor's video processor when its model takes videos, else None.

    Taking videos means having a video processor and a chat template that writes the processor's video token for
    a {"type": "video"} part (rendered to check: SmolVLMProcessor swaps in its video template itself when a chat
    has a video, whatever template the checkpoint ships)."""
    video = getattr(processor, "video_processor", None)
    if video is None:
        return None
    token = getattr(processor, "video_token", None)
    chat = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "?"}]}]
    try:
        rendered = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    except Exception:  # noqa: BLE001 - a template that cannot render a video part: no videos for this model
        return None
    if isinstance(token, str) and token and token not in str(rendered):
        return None
    return video


def supports_video(processor: Any) -> bool:
    return video_processor(processor) is not None


def videos_share_image_input(processor: Any) -> bool:
    """Whether the model's video frames and images arrive under one input name (SmolVLM2: `pixel_values`), so a
    prompt cannot hold both."""
    video = video_processor(processor)
    return video is not None and "pixel_values" in getattr(video, "model_input_names", ())


MIXED_MEDIA = (
    "this model takes images and videos in separate chats (its processor gives both the same input); "
    "start a new chat for the video"
)


def default_sampling(processor: Any) -> VideoSampling:
    """The frame rate and frame count the model's video processor is configured for (its preprocessor config:
    SmolVLM2's `video_sampling` gives fps 1 and up to 64 frames); Qwen2-VL's, which sets none, get the reference
    2 frames a second, within its `min_frames`/`max_frames`, in pairs (`temporal_patch_size`)."""
    video = video_processor(processor)
    if video is None:
        raise AssistantError("this model does not take videos; use a SmolVLM2 or Qwen2-VL profile")
    fps = getattr(video, "fps", None)
    num_frames = getattr(video, "num_frames", None)
    temporal = getattr(video, "temporal_patch_size", None)
    if temporal:  # Qwen2-VL family
        max_frames = int(num_frames or getattr(video, "max_frames", None) or FALLBACK_MAX_FRAMES)
        return VideoSampling(
            fps=float(fps) if fps else QWEN_REFERENCE_FPS,
            max_frames=max_frames,
            min_frames=int(getattr(video, "min_frames", None) or 1),
            multiple=int(temporal),
        )
    return VideoSampling(fps=float(fps) if fps else None, max_frames=int(num_frames or FALLBACK_MAX_FRAMES))


def conversation_video_parts(messages: Sequence[Message]) -> list[VideoPart]:
    """The video parts of the conversation, in the order their placeholders appear in the prompt."""
    parts: list[VideoPart] = []
    for message in messages:
        if message.role in ("assistant", "tool"):
            continue
        parts.extend(part for part in message.parts if isinstance(part, VideoPart))
    return parts


def frame_parts(video: VideoPart) -> list[ImagePart]:
    """The stored frames of a video as image parts (to open them from the store like any image)."""
    return [
        ImagePart(sha256=sha, width=video.width, height=video.height, source=f"{video.source} frame {number}")
        for number, sha in enumerate(video.frames, 1)
    ]


def _metadata(video: VideoPart) -> dict[str, Any]:
    """transformers' VideoMetadata fields: frame numbers over the stream's rate give each frame's time."""
    return {
        "total_num_frames": int(video.total_frames or (video.frame_indices[-1] + 1 if video.frame_indices else 0)),
        "fps": float(video.fps),
        "duration": float(video.duration),
        "frames_indices": list(video.frame_indices),
        "width": video.width,
        "height": video.height,
        "video_backend": "pyav",
    }


def video_call(
    loaded: "LoadedModel", videos: Sequence[VideoPart], open_image: Callable[[ImagePart], "Image"], has_images: bool
) -> dict[str, Any]:
    """Processor keywords for the conversation's videos (frames opened from the store, their metadata)."""
    processor = loaded.processor
    video = video_processor(processor)
    if video is None:
        raise AssistantError(
            f"the model of profile {loaded.profile.name} does not take videos; use a SmolVLM2 or Qwen2-VL profile"
        )
    if has_images and videos_share_image_input(processor):
        raise AssistantError(MIXED_MEDIA)
    for part in videos:
        if not part.frames or len(part.frames) != len(part.frame_indices):
            raise AssistantError(f"the video {part.source} in this chat has no usable frames; attach it again")
    kwargs: dict[str, Any] = {
        "videos": [[open_image(frame) for frame in frame_parts(part)] for part in videos],
        "video_metadata": [_metadata(part) for part in videos],
        "do_sample_frames": False,
    }
    if hasattr(video, "cap_pixels_per_frame") and getattr(video, "cap_pixels_per_frame") is None:
        kwargs["cap_pixels_per_frame"] = True  # the reference pipeline's bound on a video's total pixels
    if hasattr(video, "max_video_tokens"):
        # Qwen2-VL: frames shrink so that one video takes at most half of this model's context (the processor
        # reads the budget from itself, not from a call keyword); the class default (128k) when the context is larger.
        budget = max(VIDEO_MIN_TOKENS, loaded.context_limit // 2)
        video.max_video_tokens = min(int(type(video).max_video_tokens), budget)
    return kwargs


def frame_keys(videos: Sequence[VideoPart]) -> list[str]:
    """Content keys of every frame, for the KV cache's check that earlier visual inputs are unchanged."""
    return [f"video:{sha}" for part in videos for sha in part.frames]


def flatten_video_frames(tensors: Any, videos: Sequence[VideoPart]) -> Any:
    """SmolVLM-style outputs (`pixel_values` of shape videos x frames x C x H x W, shorter videos padded with
    blank frames) as one row of real frames, the layout images have: the model and the KV cache then count frames
    like image tiles. Qwen-style outputs (`pixel_values_videos`) are left as they are."""
    pixels = tensors.get("pixel_values") if hasattr(tensors, "get") else None
    if pixels is None or getattr(pixels, "ndim", 0) != 5 or pixels.shape[0] == 1 or pixels.shape[0] != len(videos):
        return tensors
    import torch

    counts = [len(part.frames) for part in videos]
    tensors["pixel_values"] = torch.cat([pixels[row, :count] for row, count in enumerate(counts)]).unsqueeze(0)
    mask = tensors.get("pixel_attention_mask")
    if mask is not None:
        rows = [mask[row, :count] for row, count in enumerate(counts)]
        tensors["pixel_attention_mask"] = torch.cat(rows).unsqueeze(0)
    return tensors
