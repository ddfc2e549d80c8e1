"""/video in the TUI: a chip with what was sampled, sent with the question, drawn again from the store; bad files
and models without video are a notice, and nothing is attached."""

from __future__ import annotations

from tests.tui.conftest import make_app, store  # noqa: F401  (the TUI tests' fixtures: an app, its store)
from tests.tui.tuihelpers import SIZE, async_test, notes, type_and_send, wait_for, wait_ready, wait_reply
from tests.video.videos import make_audio_only, make_video


@async_test
async def test_video_command_attaches_a_chip_and_the_question_sends_it(make_app, store, tmp_path):
    clip = make_video(tmp_path / "clip.mp4", seconds=3, fps=10)
    app = make_app("tiny-smolvlm2")
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await type_and_send(pilot, f"/video {clip}")
        await wait_for(pilot, lambda: app.chips.labels, "the chip")
        assert app.chips.labels == ["[Video #1 clip.mp4, 3 frames at 0.0-2.0 s of 3.0 s]"]
        await type_and_send(pilot, "what happens?")
        await wait_reply(pilot)
        assert app.chips.labels == []
        user = store.get_conversation(app.chat.id).messages[0]
        assert user.text == "what happens?"
        assert [(part.source, part.frame_indices) for part in user.videos] == [("clip.mp4", [0, 10, 20])]
        assert not notes(app, "error")


@async_test
async def test_a_bad_video_or_a_model_without_video_is_a_notice(make_app, tmp_path):
    sound = make_audio_only(tmp_path / "sound.m4a")
    clip = make_video(tmp_path / "clip.mp4", seconds=1)
    app = make_app("tiny-smolvlm")
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await type_and_send(pilot, f"/video {sound}")
        await wait_for(pilot, lambda: notes(app, "error"), "the first notice")
        await type_and_send(pilot, f"/video {clip}")
        await wait_for(pilot, lambda: len(notes(app, "error")) == 2, "the second notice")
        first, second = notes(app, "error")
        assert "has no video stream (only audio)" in first and "\n" not in first
        assert second == "the model of profile tiny-smolvlm does not take videos; use a SmolVLM2 or Qwen2-VL profile"
        assert app.chips.labels == []


@async_test
async def test_a_saved_video_chat_shows_the_first_frame_with_what_was_sampled(make_app, store, tmp_path):
    from assistant import Assistant
    from assistant.tui.widgets.thumbnail import Thumbnail

    clip = make_video(tmp_path / "clip.mp4", seconds=3, fps=10)
    chat = Assistant.from_profile("tiny-smolvlm2", store=store).chat()
    chat.ask("what happens?", video=clip, max_new_tokens=2)
    app = make_app("tiny-smolvlm2", autoload=False, chat_id=chat.id)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.chat_log.questions, "the saved question")
        [question] = app.chat_log.questions
        thumbnails = question.query(Thumbnail)
        assert len(thumbnails) == 1
        caption = str(thumbnails.first().query_one(".thumbnail-caption").render())
        assert "clip.mp4, 3 frames at 0.0-2.0 s of 3.0 s" in caption
