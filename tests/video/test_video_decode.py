"""Video decoding and frame sampling (assistant/video.py) on real files made with PyAV; bad files are one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import av
import pytest

from assistant import video as video_module
from assistant.conversation import VideoPart, part_from_dict, part_to_dict
from assistant.errors import AssistantError
from assistant.video import VideoSampling, probe_video, sample_indices, sample_video, video_part
from tests.video.videos import (
    colour,
    frame_number,
    make_audio_only,
    make_truncated,
    make_unknown_codec,
    make_video,
)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """3 s at 10 fps, 64x48: 30 frames, each its own colour."""
    return make_video(tmp_path_factory.mktemp("videos") / "clip.mp4")


def decoded_numbers(sampled):
    return [frame_number(frame.image.getpixel((8, 8))) for frame in sampled.frames]


def test_probe_reads_the_stream_metadata(clip):
    info = probe_video(clip)
    assert (info.width, info.height, info.fps, info.total_frames, info.codec) == (64, 48, 10.0, 30, "mpeg4")
    assert info.duration == pytest.approx(3.0)
    assert info.source == "clip.mp4"


def test_one_frame_a_second_takes_the_frame_at_each_second(clip):
    sampled = sample_video(clip, VideoSampling(fps=1, max_frames=64))
    assert sampled.indices == [0, 10, 20]
    assert sampled.timestamps == pytest.approx([0.0, 1.0, 2.0])
    assert decoded_numbers(sampled) == [0, 10, 20]  # the pixels are those frames', not neighbours'


def test_uniform_sampling_takes_the_middle_of_equal_shares(clip):
    sampled = sample_video(clip, VideoSampling(fps=None, max_frames=4))
    assert sampled.indices == [3, 11, 18, 26]  # floor((k + 0.5) * 30 / 4)
    assert sampled.timestamps == pytest.approx([0.3, 1.1, 1.8, 2.6])
    assert decoded_numbers(sampled) == sampled.indices


def test_a_rate_over_max_frames_falls_back_to_uniform(clip):
    assert sample_video(clip, VideoSampling(fps=5, max_frames=4)).indices == [3, 11, 18, 26]


def test_qwen_style_minimum_and_pairs():
    info = video_module.VideoInfo("x.mp4", 64, 48, fps=10.0, total_frames=30, duration=3.0, codec="mpeg4")
    # 2 fps over 3 s is 6 frames: kept (a multiple of 2)
    assert sample_indices(info, VideoSampling(fps=2, max_frames=768, min_frames=4, multiple=2)) == [0, 5, 10, 15, 20, 25]
    # 0.5 fps would be 1 frame: the processor's minimum of 4 is spread uniformly instead
    assert sample_indices(info, VideoSampling(fps=0.5, max_frames=768, min_frames=4, multiple=2)) == [3, 11, 18, 26]
    # 3 uniform frames become 2: frames go to Qwen2-VL in pairs
    assert sample_indices(info, VideoSampling(max_frames=3, multiple=2)) == [5, 15]
    # never more frames than the video has
    assert sample_indices(info, VideoSampling(max_frames=500)) == list(range(30))


ONE_KEY_FRAME = ("libx264", {"g": "1000", "sc_threshold": "0"})


@pytest.mark.parametrize(("codec", "options"), [("mpeg4", {}), ONE_KEY_FRAME], ids=["key-frames", "one-key-frame"])
def test_far_apart_frames_are_reached_by_seeking(tmp_path, codec, options):
    """A 40 s clip at 1 frame every 8 s: the decoder seeks between them (or, when a seek cannot skip anything,
    decodes straight through) and lands on the right frames either way."""
    long = make_video(tmp_path / "long.mp4", seconds=40, fps=2, size=(32, 32), colours=lambda i: colour(i // 2),
                      codec=codec, options=options)
    container = av.open(str(long))
    key_frames = sum(packet.is_keyframe for packet in container.demux(video=0))
    container.close()
    assert (key_frames == 1) == (codec == "libx264")  # both paths are really taken
    sampled = sample_video(long, VideoSampling(fps=0.125, max_frames=64))
    assert sampled.indices == [0, 16, 32, 48, 64]
    assert sampled.timestamps == pytest.approx([0, 8, 16, 24, 32])
    assert [frame_number(frame.image.getpixel((8, 8))) for frame in sampled.frames] == [0, 8, 16, 24, 32]


def test_frames_are_stored_as_content_addressed_jpegs(clip):
    first = sample_video(clip, VideoSampling(fps=1))
    again = sample_video(clip, VideoSampling(fps=1))
    assert [f.sha256 for f in first.frames] == [f.sha256 for f in again.frames]  # same file, same frames, same names
    assert len({f.sha256 for f in first.frames}) == 3
    assert all(f.extension == "jpg" for f in first.frames)
    assert first.frames[1].source == "clip.mp4 @ 1.00s"


def test_large_frames_are_kept_downscaled(tmp_path):
    big = make_video(tmp_path / "big.mp4", seconds=1, fps=2, size=(1600, 900))
    sampled = sample_video(big, VideoSampling(max_frames=1))
    assert (sampled.frames[0].width, sampled.frames[0].height) == (768, 432)


def test_video_part_round_trips_through_json(clip):
    from assistant.images import LoadedImage
    from assistant.conversation import ImagePart

    sampled = sample_video(clip, VideoSampling(fps=1))
    frames = [ImagePart(f.sha256, f.width, f.height, f.source) for f in sampled.frames if isinstance(f, LoadedImage)]
    part = video_part(sampled, frames)
    assert part.frames == [f.sha256 for f in sampled.frames]
    assert (part.fps, part.duration, part.total_frames, part.sample_fps) == (10.0, 3.0, 30, 1.0)
    again = part_from_dict(json.loads(json.dumps(part_to_dict(part))))
    assert isinstance(again, VideoPart) and again == part


def write(path, data):
    path.write_bytes(data)
    return path


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    return message


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d, clip: write(d / "empty.mp4", b""), "the file is empty"),
        (lambda d, clip: write(d / "junk.mp4", b"not a video " * 50), "not a video, or truncated or corrupt"),
        (lambda d, clip: make_truncated(clip, d / "cut.mp4"), "not a video, or truncated or corrupt"),
        (lambda d, clip: make_audio_only(d / "sound.m4a"), "no video stream (only audio)"),
        (lambda d, clip: make_unknown_codec(d / "odd.avi"), "codec"),
        (lambda d, clip: d / "missing.mp4", "video not found"),
        (lambda d, clip: d, "is a directory"),
    ],
    ids=["empty", "corrupt", "truncated", "audio-only", "unknown-codec", "missing", "directory"],
)
def test_bad_files_are_one_line_that_says_what_to_do(tmp_path, clip, make, expected):
    path = make(tmp_path, clip)
    with pytest.raises(AssistantError) as probed:
        probe_video(path)
    assert expected in one_line(probed)
    with pytest.raises(AssistantError) as sampled:
        sample_video(path, VideoSampling())
    message = one_line(sampled)
    assert expected in message and "; " in message  # what happened; what to do


def test_huge_resolution_is_refused_before_decoding(clip, monkeypatch):
    monkeypatch.setattr(video_module, "MAX_VIDEO_PIXELS", 64 * 48 - 1)
    with pytest.raises(AssistantError) as error:
        sample_video(clip, VideoSampling())
    assert "video too large: " in one_line(error) and "64x48" in str(error.value) and "downscale" in str(error.value)


@pytest.mark.parametrize(("sampling", "expected"), [
    (VideoSampling(fps=0), "--fps 0 must be above 0"),
    (VideoSampling(max_frames=0), "--max-frames 0 must be between 1"),
])
def test_impossible_sampling_is_one_line(clip, sampling, expected):
    with pytest.raises(AssistantError, match=expected):
        sample_video(clip, sampling)


def test_decoding_needs_no_torch(clip):
    code = (
        "import json, sys\n"
        "from assistant.video import VideoSampling, sample_video\n"
        f"sampled = sample_video({str(clip)!r}, VideoSampling(fps=1))\n"
        "print(json.dumps([len(sampled.frames), [m for m in ('torch', 'transformers') if m in sys.modules]]))\n"
    )
    env = dict(os.environ)
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert json.loads(output.strip().splitlines()[-1]) == [3, []]


def test_a_cut_download_gives_the_frames_that_are_there_and_says_so(tmp_path):
    """A Matroska file cut in half (its header is at the start, so it still opens): the frames up to the cut,
    marked truncated, with the length they cover."""
    whole = make_video(tmp_path / "whole.mkv", seconds=4, fps=10)
    cut = make_truncated(whole, tmp_path / "cut.mkv", keep=0.5)
    assert probe_video(cut).duration == pytest.approx(4.0)  # the container still claims the whole length
    sampled = sample_video(cut, VideoSampling(fps=1))
    assert sampled.truncated and 1 <= len(sampled.frames) < 4
    assert decoded_numbers(sampled) == sampled.indices
    assert sampled.duration < 4.0
    part = video_part(sampled, [])
    assert part.truncated and "(the file ends early: truncated)" in video_module.describe(
        VideoPart(**{**part_to_dict(part), "frames": ["x"] * len(sampled.frames)})
    )
    assert not sample_video(whole, VideoSampling(fps=1)).truncated
