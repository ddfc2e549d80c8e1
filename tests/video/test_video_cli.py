"""`assistant ask --video` end to end on the tiny SmolVLM2 through the CLI; bad videos and options are one line."""

from __future__ import annotations

import json

import pytest

from assistant.store import Store
from tests.helpers import one_line_error
from tests.helpers import run_cli as run
from tests.video.videos import make_audio_only, make_video


def test_ask_about_a_video_then_show_the_chat(capsys, tmp_path):
    clip = make_video(tmp_path / "clip.mp4", seconds=4, fps=5)
    code, out, err = run(
        capsys, "ask", "--profile", "tiny-smolvlm2", "--video", str(clip), "--fps", "0.5", "--max-tokens", "3",
        "--json", "what happens in the video?",
    )
    assert code == 0, err
    record = json.loads(out)
    assert record["status"] == "ok" and record["profile"] == "tiny-smolvlm2"
    assert record["videos"] == [{"source": "clip.mp4", "frame_indices": [0, 10], "timestamps": [0.0, 2.0], "fps": 5.0,
                                 "duration": 4.0, "sample_fps": 0.5, "truncated": False}]
    with Store.open_default() as store:
        conversation = store.get_conversation(record["chat_id"])
    part = conversation.messages[0].videos[0]
    assert (part.source, part.frame_indices, part.timestamps, part.sample_fps) == ("clip.mp4", [0, 10], [0.0, 2.0], 0.5)
    assert conversation.title.endswith("clip.mp4")
    code, out, _ = run(capsys, "chats", "show", str(record["chat_id"]))
    assert code == 0 and "Video: clip.mp4, 2 frames at 0.0-2.0 s of 4.0 s" in out
    code, out, err = run(capsys, "ask", "--profile", "tiny-smolvlm2", "--video", str(clip), "--max-frames", "10",
                         "--max-tokens", "2", "evenly?")
    assert code == 0, err
    assert "[video clip.mp4: frames 1, 3, 5, 7, 9, 11, 13, 15 … (+2) at 0.2, 0.6, 1.0, 1.4, 1.8, 2.2, 2.6, 3.0 … (+2) s " \
        "of 4.0 s]" in err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--profile", "tiny-smolvlm2", "--video", "{audio}"], "has no video stream (only audio)"),
        (["--profile", "tiny-smolvlm2", "--video", "{missing}"], "video not found"),
        (["--profile", "tiny-smolvlm2", "--video", "{garbage}"], "not a video, or truncated or corrupt"),
        (["--profile", "tiny-smolvlm", "--video", "{clip}"], "the model of profile tiny-smolvlm does not take videos"),
        (["--profile", "tiny-smolvlm2", "--fps", "2"], "give the video with --video FILE"),
        (["--profile", "tiny-smolvlm2", "--video", "{clip}", "--max-frames", "0"], "--max-frames 0 must be between"),
    ],
    ids=["audio-only", "missing", "garbage", "no-video-model", "fps-alone", "zero-frames"],
)
def test_bad_video_asks_exit_2_with_one_line_and_keep_no_chat(capsys, tmp_path, args, expected):
    paths = {
        "audio": str(make_audio_only(tmp_path / "sound.m4a")),
        "missing": str(tmp_path / "missing.mp4"),
        "clip": str(make_video(tmp_path / "clip.mp4", seconds=1)),
        "garbage": str(tmp_path / "garbage.mp4"),
    }
    (tmp_path / "garbage.mp4").write_text("not a video\n")
    code, out, err = run(capsys, "ask", *[arg.format(**paths) for arg in args], "what happens?")
    assert code == 2
    assert expected in one_line_error(err)
    with Store.open_default() as store:
        assert store.list_conversations() == []  # not even an empty "(untitled)" chat
