"""Short test videos made with PyAV: solid frames whose colour encodes the frame number, audio-only and broken files."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def colour(index: int) -> tuple[int, int, int]:
    """The colour of frame `index`: a grey 6 levels brighter each frame (to 246 at frame 41). Grey, because
    YUV 4:2:0 keeps brightness nearly exact while it blurs and shifts hues."""
    level = min(6 * index, 250)
    return level, level, level


def frame_number(rgb: tuple[int, int, int]) -> int:
    """The frame a decoded colour belongs to (lossy codecs move levels by a point or two: nearest frame wins)."""
    return round(sum(rgb) / 3 / 6)


def make_video(
    path: Path, seconds: float = 3, fps: int = 10, size: tuple[int, int] = (64, 48), codec: str = "mpeg4",
    colours=colour, options: dict[str, str] | None = None,
) -> Path:
    """A real video file: `seconds * fps` solid frames coloured by `colours(frame number)`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps, options=options or {})
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for index in range(round(seconds * fps)):
            pixels = np.empty((size[1], size[0], 3), np.uint8)
            pixels[...] = colours(index)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_audio_only(path: Path) -> Path:
    """An AAC file with a second of silence and no video stream."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for number in range(16):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 16000
            frame.pts = number * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_truncated(source: Path, path: Path, keep: float = 0.5) -> Path:
    """The first `keep` of a video file's bytes (an MP4 cut before its index: a download that stopped)."""
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def make_unknown_codec(path: Path) -> Path:
    """An AVI whose video stream names a codec (fourcc ZZZZ) no FFmpeg build decodes."""
    avi = make_video(path.with_name(path.stem + "-source.avi"), seconds=1)
    data = avi.read_bytes()
    assert data.count(b"FMP4") >= 1
    path.write_bytes(data.replace(b"FMP4", b"ZZZZ"))
    return path
