"""Video intake: open a video file with PyAV, sample frames uniformly or at a frame rate, keep them as images.

Why PyAV: its wheels ship FFmpeg's own libraries (no system FFmpeg to install), it seeks by timestamp, and it
reports the stream metadata (duration, frame rate, frame count, codec) that sampling needs. torchcodec would tie
the install to one exact torch version. No torch here: a chat can be decoded, stored and shown without the model.

The sampled frames become content-addressed JPEG images (assistant.images.LoadedImage): the store keeps them like
any attached image, so a saved chat replays without the original file.
"""

from __future__ import annotations

import io
import math
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import AssistantError

if TYPE_CHECKING:
    from PIL.Image import Image

    from .conversation import ImagePart, VideoPart
    from .images import LoadedImage

MAX_VIDEO_PIXELS = 8192 * 4320
"""Refuse videos with larger frames than 8K (each decoded frame would be over 100 MB of RGB)."""
MAX_FRAMES_LIMIT = 1024
"""No more frames than this from one video, whatever --max-frames says (each becomes a stored image)."""
STORED_FRAME_EDGE = 768
"""Frames are kept with at most this longest edge (SmolVLM2 squares frames to 384-512 px and Qwen2-VL's video
budget is smaller than its image one): storing full-size 4K frames would cost megabytes each for nothing."""
JPEG_QUALITY = 90
SEEK_AHEAD_S = 2.0
"""A sampled frame further than this after the last decoded one is reached by seeking, not by decoding through."""
VIDEO_ADVICE = "convert it to an H.264 MP4 (e.g. ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p OUT.mp4)"
PLAYS_ADVICE = "check that the file plays, or " + VIDEO_ADVICE


@dataclass(frozen=True)
class VideoSampling:
    """How many frames to take from a video and where: `fps` frames a second (None: spread uniformly over the
    whole video), never more than `max_frames` (a longer video is sampled uniformly instead), at least
    `min_frames` when the video has them, and a multiple of `multiple` frames (Qwen2-VL pairs frames)."""

    fps: float | None = None
    max_frames: int = 32
    min_frames: int = 1
    multiple: int = 1

    def check(self) -> "VideoSampling":
        """Refuse values that cannot sample anything, with what to use instead."""
        if self.fps is not None and not (0 < self.fps <= 120):
            raise AssistantError(f"--fps {self.fps:g} must be above 0 and at most 120 frames a second")
        if not 1 <= self.max_frames <= MAX_FRAMES_LIMIT:
            raise AssistantError(f"--max-frames {self.max_frames} must be between 1 and {MAX_FRAMES_LIMIT}")
        return self


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about the first video stream."""

    source: str
    """Display name (the file name); never used to read the file again."""
    width: int
    height: int
    fps: float
    """Average frame rate of the stream."""
    total_frames: int
    """Frames in the stream (from the container, or duration x fps when it does not say)."""
    duration: float
    """Seconds."""
    codec: str


@dataclass
class SampledVideo:
    """Frames taken from a video, ready to store: the images plus where each one comes from."""

    info: VideoInfo
    frames: list["LoadedImage"]
    indices: list[int]
    """Frame number of each sampled frame in the stream (0-based, from its timestamp and the frame rate)."""
    timestamps: list[float]
    """Seconds from the start of the stream, of each sampled frame as decoded."""
    sampling: VideoSampling = field(default_factory=VideoSampling)
    truncated: bool = False
    """The stream ended (or broke off) before the length its container states: the frames cover what is there."""

    @property
    def duration(self) -> float:
        """Seconds the frames cover: the stated length, or up to the last decodable frame of a truncated file."""
        if self.truncated and self.timestamps:
            return min(self.info.duration, self.timestamps[-1] + 1 / self.info.fps)
        return self.info.duration


def _bad_video(label: str, what: str, advice: str = VIDEO_ADVICE) -> AssistantError:
    return AssistantError(f"cannot use video {label}: {what}; {advice}")


def _check_file(file: Path, label: str) -> None:
    if not file.exists():
        raise AssistantError(f"video not found: {label}; check the path")
    if file.is_dir():
        raise AssistantError(f"not a video: {label} is a directory; give a video file (MP4, MKV, WebM, MOV, AVI)")
    mode = file.stat().st_mode
    if not stat.S_ISREG(mode):  # a FIFO or a device could block or never end
        raise AssistantError(f"not a video: {label} is not a regular file; give a video file")
    if file.stat().st_size == 0:
        raise AssistantError(f"cannot use video {label}: the file is empty (0 bytes); record or export it again")


def _open(file: Path, label: str) -> Any:
    import av

    try:
        return av.open(str(file), mode="r", metadata_errors="ignore")
    except PermissionError:
        raise AssistantError(f"cannot read video {label}: permission denied; check the file's permissions") from None
    except av.error.FFmpegError as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise _bad_video(label, f"not a video, or truncated or corrupt ({reason})", PLAYS_ADVICE) from None
    except OSError as error:
        raise AssistantError(f"cannot read video {label}: {error.strerror or error}; check the path") from None


def _stream_info(container: Any, label: str, source: str) -> tuple[Any, VideoInfo]:
    streams = list(container.streams.video)
    if not streams:
        others = [s.type for s in container.streams]
        what = "it has no video stream" + (f" (only {', '.join(sorted(set(others)))})" if others else "")
        raise _bad_video(label, what, "give a file with pictures in it")
    stream = streams[0]
    if stream.codec_context is None:  # FFmpeg knows no decoder for the stream's codec
        raise _bad_video(label, "its video codec is not one this FFmpeg build can decode", VIDEO_ADVICE)
    width, height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
    if width <= 0 or height <= 0:
        raise _bad_video(label, f"its video stream claims a size of {width}x{height}")
    if width * height > MAX_VIDEO_PIXELS:
        limit = MAX_VIDEO_PIXELS / 1_000_000
        raise AssistantError(
            f"video too large: {label} is {width}x{height} ({width * height / 1_000_000:.0f} megapixels a frame), "
            f"the limit is {limit:.0f} megapixels (8K); downscale it first "
            "(e.g. ffmpeg -i IN -vf scale=1920:-2 OUT.mp4)"
        )
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    duration = 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    total = int(stream.frames or 0)
    if fps <= 0 and total and duration > 0:
        fps = total / duration
    if not total and fps > 0 and duration > 0:
        total = max(1, round(duration * fps))
    if duration <= 0 and total and fps > 0:
        duration = total / fps
    if fps <= 0 or total <= 0:
        raise _bad_video(label, "its video stream has no frame rate or length (a broken or still-image file)")
    info = VideoInfo(source=source, width=width, height=height, fps=fps, total_frames=total, duration=duration,
                     codec=stream.codec_context.name)
    return stream, info


def probe_video(path: str | Path) -> VideoInfo:
    """The metadata of a video file, or a one-line AssistantError saying why it cannot be used."""
    file = Path(path).expanduser()
    label = str(path)
    _check_file(file, label)
    container = _open(file, label)
    try:
        return _stream_info(container, label, file.name)[1]
    finally:
        container.close()


def sample_indices(info: VideoInfo, sampling: VideoSampling) -> list[int]:
    """Which frames to take, in order.

    With `fps`: one frame every 1/fps seconds from the start (frame numbers from the stream's frame rate), as
    long as that is at most `max_frames`; otherwise (and without `fps`) `max_frames` frames spread uniformly,
    each from the middle of its equal share of the video. Never more frames than the video has.
    """
    total = info.total_frames
    wanted = min(sampling.max_frames, total)
    if sampling.fps is not None:
        count = max(1, math.floor(info.duration * sampling.fps + 1e-6))
        if count <= sampling.max_frames:
            indices = sorted({min(total - 1, round(k / sampling.fps * info.fps)) for k in range(count)})
            if len(indices) >= min(sampling.min_frames, total):
                return _to_multiple(indices, sampling.multiple)
            wanted = min(sampling.min_frames, total)
    indices = sorted({min(total - 1, math.floor((k + 0.5) * total / wanted)) for k in range(wanted)})
    return _to_multiple(indices, sampling.multiple)


def _to_multiple(indices: list[int], multiple: int) -> list[int]:
    if multiple <= 1 or len(indices) < multiple:
        return indices
    return indices[: len(indices) - len(indices) % multiple]


def _frame_image(frame: Any, max_edge: int) -> "Image":
    """The frame as an RGB PIL image, scaled by FFmpeg (swscale, bicubic) to `max_edge` when larger."""
    width, height = int(frame.width), int(frame.height)
    longest = max(width, height)
    if longest <= max_edge:
        return frame.to_image()
    scale = max_edge / longest
    size = {"width": max(1, round(width * scale)), "height": max(1, round(height * scale))}
    return frame.to_image(interpolation="BICUBIC", **size)


def _decode_at(
    container: Any, stream: Any, info: VideoInfo, indices: list[int], label: str, max_edge: int
) -> tuple[list[tuple[float, "Image"]], bool]:
    """The frames at (or just after) each wanted index's time: decoding forward, seeking for far jumps. Also
    whether the stream ended before the last wanted time (a truncated file: the frames are from what is there)."""
    import av

    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    half = 0.5 / info.fps
    targets = [index / info.fps for index in indices]
    found: list[tuple[float, Image]] = []
    frames = None
    last_time = -math.inf
    last_frame = None
    seeking = True
    ended_early = False
    """Off once a seek lands no later than where decoding already was (key frames further apart than the
    sampled frames): from then on decoding straight through is cheaper."""
    try:
        for target in targets:
            seeked_from = None
            if frames is None or (seeking and target - last_time > SEEK_AHEAD_S):
                if frames is not None or target > SEEK_AHEAD_S:
                    offset = int((start + target) / stream.time_base)
                    container.seek(offset, stream=stream, backward=True, any_frame=False)
                    seeked_from = last_time
                frames = container.decode(stream)
                last_frame = None
            chosen = None
            for frame in frames:
                if frame.time is None:
                    continue
                last_time = float(frame.time) - start
                if seeked_from is not None:
                    seeking = last_time > seeked_from + half
                    seeked_from = None
                last_frame = frame
                if last_time >= target - half:
                    chosen = frame
                    break
            if chosen is None:  # the stream ended early (truncated): keep what the end gave
                if last_frame is None:
                    break
                chosen = last_frame
            found.append((float(chosen.time) - start, _frame_image(chosen, max_edge)))
            if chosen is last_frame and last_time < target - half:
                ended_early = last_time < targets[-1] - max(2 / info.fps, 1.0)  # not a frame count off by one
                break
    except av.error.FFmpegError as error:
        ended_early = True
        if not found:
            reason = getattr(error, "strerror", None) or str(error)
            raise _bad_video(label, f"its frames cannot be decoded ({reason})", PLAYS_ADVICE) from None
    except (ValueError, MemoryError) as error:
        ended_early = True
        if not found:
            raise _bad_video(label, f"its frames cannot be decoded ({error})") from None
    if not found:
        raise _bad_video(label, "no frame could be decoded (truncated or corrupt)", PLAYS_ADVICE)
    return found, ended_early


def _to_loaded(image: "Image", source: str) -> "LoadedImage":
    from .images import load_image_bytes

    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return load_image_bytes(buffer.getvalue(), source=source)


def sample_video(path: str | Path, sampling: VideoSampling, max_edge: int = STORED_FRAME_EDGE) -> SampledVideo:
    """Decode the sampled frames of a video file; every way it can be unusable is a one-line AssistantError.

    Each frame is downscaled to `max_edge` and encoded as JPEG (the stored bytes); its `image` is decoded from
    those bytes, so the model sees the same pixels now and when the saved chat is replayed.
    """
    sampling.check()
    file = Path(path).expanduser()
    label = str(path)
    _check_file(file, label)
    container = _open(file, label)
    try:
        stream, info = _stream_info(container, label, file.name)
        stream.thread_type = "AUTO"
        indices = sample_indices(info, sampling)
        decoded, truncated = _decode_at(container, stream, info, indices, label, max_edge)
    finally:
        container.close()
    timestamps: list[float] = []
    kept_indices: list[int] = []
    frames: list[LoadedImage] = []
    for time_s, image in decoded:
        index = min(info.total_frames - 1, max(0, round(time_s * info.fps)))
        if kept_indices and index <= kept_indices[-1]:
            continue  # two targets landed on the same frame (a variable frame rate): keep it once
        timestamps.append(round(max(0.0, time_s), 3))
        kept_indices.append(index)
        frames.append(_to_loaded(image, f"{file.name} @ {time_s:.2f}s"))
    return SampledVideo(
        info=info, frames=frames, indices=kept_indices, timestamps=timestamps, sampling=sampling, truncated=truncated
    )


def video_part(video: SampledVideo, frames: "list[ImagePart]") -> "VideoPart":
    """The message part of a sampled video whose frames are stored (`frames`: the stored image parts, in order)."""
    from .conversation import VideoPart

    return VideoPart(
        source=video.info.source,
        frames=[frame.sha256 for frame in frames],
        timestamps=list(video.timestamps),
        frame_indices=list(video.indices),
        width=frames[0].width if frames else 0,
        height=frames[0].height if frames else 0,
        fps=round(video.info.fps, 3),
        duration=round(video.duration, 3),
        total_frames=video.info.total_frames,
        sample_fps=video.sampling.fps,
        truncated=video.truncated,
    )


def describe(part: "VideoPart") -> str:
    """One line for a person: `clip.mp4, 8 frames at 0.0-7.0 s of 7.5 s`."""
    if not part.timestamps:
        return f"{part.source}, no frames"
    span = f"{part.timestamps[0]:.1f}-{part.timestamps[-1]:.1f} s"
    ending = " (the file ends early: truncated)" if part.truncated else ""
    return f"{part.source}, {len(part.frames)} frames at {span} of {part.duration:.1f} s{ending}"


def frames_record(part: "VideoPart") -> dict[str, Any]:
    """What was sampled, for `ask --json`: the file, frame numbers, times, the stream's rate and length."""
    return {
        "source": part.source,
        "frame_indices": list(part.frame_indices),
        "timestamps": list(part.timestamps),
        "fps": part.fps,
        "duration": part.duration,
        "sample_fps": part.sample_fps,
        "truncated": part.truncated,
    }


def frames_line(part: "VideoPart", limit: int = 8) -> str:
    """One line for `ask`'s stats: `clip.mp4: frames 0, 10, 20 at 0.0, 1.0, 2.0 s` (the first `limit`, then a count)."""
    shown = min(limit, len(part.frame_indices))
    more = f" … (+{len(part.frame_indices) - shown})" if len(part.frame_indices) > shown else ""
    numbers = ", ".join(str(index) for index in part.frame_indices[:shown])
    times = ", ".join(f"{time:.1f}" for time in part.timestamps[:shown])
    return f"{part.source}: frames {numbers}{more} at {times}{more} s of {part.duration:.1f} s"
