"""Videos through the tiny models: the prompt each processor builds, defaults read from the processor, storage by
content, replay of a saved chat without the original file, follow-ups, and the one-line refusals."""

from __future__ import annotations

import re

import pytest

from assistant import Assistant
from assistant.conversation import VideoPart
from assistant.engine.inputs import build_inputs
from assistant.engine.video_inputs import default_sampling
from assistant.errors import AssistantError
from tests.helpers import make_image
from tests.video.videos import make_video

VIDEO_PROFILES = ["tiny-smolvlm2", "tiny-qwen2vl"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """3 s at 10 fps: 1 frame a second gives frames 0, 10, 20 at 0 s, 1 s, 2 s."""
    return make_video(tmp_path_factory.mktemp("videos") / "clip.mp4")


def test_defaults_come_from_the_video_processor():
    smol = default_sampling(Assistant.from_profile("tiny-smolvlm2").engine.loaded.processor)
    assert (smol.fps, smol.max_frames, smol.multiple) == (1.0, 64, 1)  # SmolVLM2's video_sampling
    qwen = default_sampling(Assistant.from_profile("tiny-qwen2vl").engine.loaded.processor)
    assert (qwen.fps, qwen.min_frames, qwen.max_frames, qwen.multiple) == (2.0, 4, 768, 2)


def test_smolvlm2_prompt_has_each_frame_with_its_time(clip):
    bot = Assistant.from_profile("tiny-smolvlm2")
    chat = bot.chat()
    part = bot.load_video(clip)  # defaults: 1 frame a second
    assert part.frame_indices == [0, 10, 20] and part.timestamps == [0.0, 1.0, 2.0]
    chat.ask("What changes?", video=part, max_new_tokens=2)
    loaded = bot.engine.loaded
    inputs = build_inputs(loaded, chat.messages[:1], bot.store.open_image)
    intro = "You are provided the following series of three frames from a 0:00:03 [H:MM:SS] video.\n"
    assert inputs.prompt.startswith("<|im_start|>User: <video>What changes?")  # the template's video placeholder
    text = loaded.tokenizer.decode(inputs.tensors["input_ids"][0])
    assert intro in text
    assert re.findall(r"Frame from (\d\d:\d\d):", text) == ["00:00", "00:01", "00:02"]
    tensors = inputs.tensors
    assert tuple(tensors["pixel_values"].shape[:2]) == (1, 3)  # three frames, no tiling
    image_tokens = int((tensors["input_ids"] == loaded.model.config.image_token_id).sum())
    assert image_tokens == 3 * loaded.processor.image_seq_len


def test_qwen2vl_prompt_has_video_pads_and_a_grid(clip):
    bot = Assistant.from_profile("tiny-qwen2vl")
    chat = bot.chat()
    chat.ask("What changes?", video=clip, max_new_tokens=2)  # defaults: 2 a second over 3 s = 6 frames
    part = chat.messages[0].videos[0]
    assert part.frame_indices == [0, 5, 10, 15, 20, 25]
    loaded = bot.engine.loaded
    inputs = build_inputs(loaded, chat.messages[:1], bot.store.open_image)
    grid = inputs.tensors["video_grid_thw"].tolist()
    assert len(grid) == 1 and grid[0][0] == 3  # 6 frames in pairs
    pads = int((inputs.tensors["input_ids"] == loaded.model.config.video_token_id).sum())
    assert pads == grid[0][0] * grid[0][1] * grid[0][2] // 4  # merge 2x2
    assert "<|vision_start|><|video_pad|>" in loaded.tokenizer.decode(inputs.tensors["input_ids"][0])
    assert "pixel_values" not in inputs.tensors  # no images: the video has its own inputs


@pytest.mark.parametrize("profile", VIDEO_PROFILES)
def test_saved_chat_replays_without_the_original_file(profile, tmp_path):
    original = make_video(tmp_path / "gone.mp4", seconds=2, fps=8)
    bot = Assistant.from_profile(profile)
    chat = bot.chat()
    first = chat.ask("Describe it.", video=original, max_frames=4, max_new_tokens=4)
    part = chat.messages[0].videos[0]
    assert part.source == "gone.mp4" and len(part.frames) == 4
    assert all(bot.store.image_path(sha).is_file() for sha in part.frames)  # stored by content, like images
    original.unlink()
    again = Assistant.from_profile(profile, store=bot.store)
    replay = again.chat(chat.id)
    assert replay.messages[0].videos == [part]
    reply = replay.regenerate(max_new_tokens=4)
    assert (reply.text, reply.prompt_tokens) == (first.text, first.prompt_tokens)


def test_deleting_the_chat_deletes_its_frames(clip):
    bot = Assistant.from_profile("tiny-smolvlm2")
    chat = bot.chat()
    chat.ask("Hi", video=clip, max_new_tokens=1)
    paths = [bot.store.image_path(sha) for sha in chat.messages[0].videos[0].frames]
    assert all(path.is_file() for path in paths)
    bot.store.delete_conversation(chat.id)
    assert not any(path.exists() for path in paths)


@pytest.mark.parametrize("profile", VIDEO_PROFILES)
def test_follow_ups_reuse_the_video_and_answer_as_a_full_recompute(profile, clip, tmp_path):
    """A text follow-up reuses the video's cached tokens; a second, shorter video in a later turn goes in with the
    first (SmolVLM2: one row of real frames; Qwen2-VL: a full prefill); greedy replies match a full recompute."""
    import torch

    other = make_video(tmp_path / "other.mp4", seconds=2, fps=5)

    def conversation(reuse: bool):
        bot = Assistant.from_profile(profile)
        bot.engine.loaded.model.to(torch.float64)
        bot.engine.cache.enabled = reuse
        chat = bot.chat()
        replies = [chat.ask("What happens?", video=clip, max_frames=4, max_new_tokens=5)]
        replies.append(chat.ask("And then?", max_new_tokens=5))
        reused = chat.messages[-1].meta.extra.get("reused_tokens", 0)
        replies.append(chat.ask("And in this one?", video=other, max_frames=2, max_new_tokens=5))
        inputs = build_inputs(bot.engine.loaded, chat.messages[:-1], bot.store.open_image)
        return [r.text for r in replies], reused, inputs.tensors

    texts, reused, tensors = conversation(True)
    plain, _, _ = conversation(False)
    assert texts == plain
    assert reused > 0
    if profile == "tiny-smolvlm2":
        assert tuple(tensors["pixel_values"].shape[:2]) == (1, 6)  # 4 + 2 frames, no blank padding frames
    else:
        assert tensors["video_grid_thw"][:, 0].tolist() == [2, 1]


def test_a_model_without_video_says_so_and_stores_nothing(clip):
    bot = Assistant.from_profile("tiny-smolvlm")
    chat = bot.chat()
    with pytest.raises(AssistantError) as error:
        chat.ask("What happens?", video=clip)
    assert str(error.value) == (
        "the model of profile tiny-smolvlm does not take videos; use a SmolVLM2 or Qwen2-VL profile"
    )
    assert bot.store.list_conversations() == []  # the new chat is not kept empty or all(not bot.chat(c.id).messages for c in bot.store.list_conversations())
    assert not any(bot.store.images_dir.rglob("*.jpg"))


def test_a_remote_backend_refuses_videos_in_one_line(clip):
    from assistant.hooktypes import BackendCapabilities

    class Remote:
        name = "openai"
        capabilities = BackendCapabilities(video=False, remote="127.0.0.1:8000")

    bot = Assistant.from_profile("tiny-smolvlm2")
    bot._backend = Remote()
    with pytest.raises(AssistantError, match=r"^the openai backend of profile tiny-smolvlm2 does not take videos \(its "
                       r"frames are not sent as images\); use a local SmolVLM2 or Qwen2-VL profile$"):
        bot.load_video(clip)


def test_smolvlm2_takes_images_and_videos_in_separate_chats(clip, tmp_path):
    """Refused before the question is saved, in the same turn and when an image follows a video in a later turn."""
    bot = Assistant.from_profile("tiny-smolvlm2")
    chat = bot.chat()
    with pytest.raises(AssistantError, match="takes images and videos in separate chats"):
        chat.ask("Compare", images=[make_image(tmp_path / "a.png")], video=clip, max_new_tokens=2)
    assert bot.store.list_conversations() == []  # the new chat is not kept empty
    chat.ask("What happens?", video=clip, max_new_tokens=2)
    saved = len(bot.store.get_conversation(chat.id).messages)
    with pytest.raises(AssistantError, match="start a new chat for the video"):
        chat.ask("And this picture?", images=[make_image(tmp_path / "b.png")], max_new_tokens=2)
    assert len(bot.store.get_conversation(chat.id).messages) == saved == 2
    assert bot.backend.capabilities.video_with_images is False
    assert Assistant.from_profile("tiny-qwen2vl").backend.capabilities.video_with_images is True


def test_fps_without_a_video_is_refused():
    chat = Assistant.from_profile("tiny-smolvlm2").chat()
    with pytest.raises(AssistantError, match="give the video with --video FILE"):
        chat.ask("Hi", fps=2)


def test_qwen2vl_takes_an_image_and_a_video_together(clip, tmp_path):
    bot = Assistant.from_profile("tiny-qwen2vl")
    chat = bot.chat()
    reply = chat.ask("Compare", images=[make_image(tmp_path / "a.png")], video=clip, max_frames=4, max_new_tokens=2)
    assert reply.status == "ok"
    inputs = build_inputs(bot.engine.loaded, chat.messages[:1], bot.store.open_image)
    assert {"pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw"} <= set(inputs.tensors)
    assert isinstance(chat.messages[0].parts[1], VideoPart)


def test_the_openai_backend_refuses_a_chat_with_a_video():
    from assistant.conversation import Message, TextPart
    from assistant.profiles import load_profile
    from plugins.openai_backend.messages import to_openai

    video = VideoPart("clip.mp4", ["0" * 64], [0.0], [0], 64, 48, 10.0, 3.0, 30)
    messages = [Message(role="user", parts=[video, TextPart("What happens?")])]
    with pytest.raises(AssistantError) as error:
        to_openai(messages, lambda part: None, load_profile("tiny-smolvlm2").image)
    assert str(error.value) == (
        "this chat has a video (clip.mp4) and the openai backend does not send videos (their frames are not sent "
        "as images); continue it with a local SmolVLM2 or Qwen2-VL profile"
    )


def test_video_support_is_what_the_template_renders():
    """SmolVLMProcessor swaps in its video template for a chat with a video, whatever template a checkpoint ships;
    a Qwen2-VL processor whose template has no video branch takes no videos."""
    from assistant.engine import tiny
    from assistant.engine.video_inputs import supports_video

    smol = tiny.build_processor("tiny-smolvlm2")
    assert supports_video(smol)
    smol.chat_template = tiny.SMOLVLM_CHAT_TEMPLATE  # images only, as SmolVLM (1) shipped it
    assert supports_video(smol)
    qwen = tiny.build_processor("tiny-qwen2vl")
    assert supports_video(qwen)
    qwen.chat_template = qwen.chat_template.replace("<|video_pad|>", "")
    assert not supports_video(qwen)
    assert not supports_video(tiny.build_processor("tiny-smolvlm"))  # Idefics3: no video processor


def test_a_missing_num2words_is_one_line(monkeypatch):
    """SmolVLMProcessor refuses to start without num2words (a dependency since SmolVLM2): one line, no traceback."""
    import transformers.models.smolvlm.processing_smolvlm as processing

    from assistant.engine.loading import model_source

    model_source(Assistant.from_profile("tiny-smolvlm2").profile)  # built (or found) before the package goes
    monkeypatch.setattr(processing, "num2words", None)
    with pytest.raises(AssistantError) as error:
        Assistant.from_profile("tiny-smolvlm2").load()
    assert "cannot load model" in str(error.value) and "num2words" in str(error.value)
    assert "\n" not in str(error.value)


def test_a_truncated_video_is_answered_with_a_note(tmp_path):
    from tests.video.videos import make_truncated

    cut = make_truncated(make_video(tmp_path / "whole.mkv", seconds=4, fps=10), tmp_path / "cut.mkv", keep=0.5)
    reply = Assistant.from_profile("tiny-smolvlm2").chat().ask("What happens?", video=cut, max_new_tokens=2)
    assert reply.status == "ok"
    assert any(note.startswith("cut.mkv ends early at ") and "(truncated)" in note for note in reply.extra["notes"])
    assert "cut.mkv ends early" in reply.footer()


def test_a_qwen2vl_video_is_shrunk_to_half_the_context(clip, tmp_path):
    """The processor's total-pixel cap (qwen-vl-utils' bound) with the budget set from the profile's context."""
    import dataclasses

    big = make_video(tmp_path / "big.mp4", seconds=2, fps=4, size=(640, 480))
    bot = Assistant.from_profile("tiny-qwen2vl")
    part = bot.load_video(big, max_frames=4)
    from assistant.conversation import Message, TextPart

    messages = [Message(role="user", parts=[part, TextPart("What happens?")])]
    wide = build_inputs(bot.engine.loaded, messages, bot.store.open_image)
    loaded = bot.engine.loaded
    narrow_profile = dataclasses.replace(loaded.profile, chat=dataclasses.replace(loaded.profile.chat, context_limit=128))
    narrow_loaded = dataclasses.replace(loaded, profile=narrow_profile, context_limit=128)
    narrow = build_inputs(narrow_loaded, messages, bot.store.open_image)
    tokens = lambda inputs: int((inputs.tensors["input_ids"] == loaded.model.config.video_token_id).sum())  # noqa: E731
    assert tokens(narrow) <= 64 < tokens(wide)  # half of 128
