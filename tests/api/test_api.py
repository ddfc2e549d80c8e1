"""The public Python API on both tiny architectures: ask, stream, multi-turn with images, cancel, failures."""

from __future__ import annotations

import threading

import pytest

from assistant import Assistant, AssistantError
from assistant.store import Store
from tests.helpers import make_image

TINY = ["tiny-smolvlm", "tiny-qwen2vl"]


@pytest.fixture(params=TINY)
def bot(request):
    assistant = Assistant.from_profile(request.param)
    yield assistant
    assistant.close()


def test_readme_example_works_as_written(tmp_path):
    photo = make_image(tmp_path / "photo.png")
    bot = Assistant.from_profile("tiny-smolvlm")
    chat = bot.chat()
    reply = chat.ask("What is in this image?", images=[str(photo)], max_new_tokens=8)
    assert reply.status == "ok"
    assert reply.completion_tokens > 0
    assert reply.ttft_s is not None and reply.ttft_s > 0
    assert isinstance(reply.text, str)
    pieces = list(chat.stream("And what colour is it?"))
    follow_up = chat.messages[-1]
    assert "".join(pieces) == follow_up.text
    assert [m.role for m in chat.messages] == ["user", "assistant", "user", "assistant"]


def test_multi_turn_with_images_in_two_turns_is_saved(bot, tmp_path):
    first = make_image(tmp_path / "a.png", (300, 200), "red")
    second = make_image(tmp_path / "b.png", (200, 300), "blue")
    chat = bot.chat()
    r1 = chat.ask("Describe the first image.", images=[first], max_new_tokens=5)
    r2 = chat.ask("Compare it with this one.", images=[second], max_new_tokens=5)
    assert r1.status == r2.status == "ok"
    # The second prompt holds both images: more prompt tokens than the first turn plus its question.
    assert r2.prompt_tokens > r1.prompt_tokens + r1.completion_tokens
    saved = bot.store.get_conversation(chat.id)
    assert len(saved.images) == 2
    assert saved.images[0].sha256 != saved.images[1].sha256
    assert [m.status for m in saved.messages] == ["ok", "ok", "ok", "ok"]
    assert saved.messages[1].meta.profile == bot.profile.name
    assert saved.messages[1].meta.completion_tokens == r1.completion_tokens


def test_images_survive_moving_the_original(bot, tmp_path):
    photo = make_image(tmp_path / "moved.png")
    chat = bot.chat()
    chat.ask("What is this?", images=[photo], max_new_tokens=3)
    photo.unlink()
    reply = chat.ask("And now?", max_new_tokens=3)  # the prompt re-reads the image from the store
    assert reply.status == "ok"


def test_greedy_generation_is_deterministic(bot, tmp_path):
    photo = make_image(tmp_path / "p.png")
    a = bot.chat().ask("Same question", images=[photo], max_new_tokens=6)
    b = bot.chat().ask("Same question", images=[photo], max_new_tokens=6)
    assert a.text == b.text


def test_cancel_mid_stream_keeps_partial_reply(bot):
    chat = bot.chat()
    stream = chat.stream("Tell me a long story.", max_new_tokens=400)
    received = []
    for piece in stream:
        received.append(piece)
        if len(received) == 2:
            stream.cancel()
    reply = stream.reply
    assert reply.status == "stopped"
    assert reply.completion_tokens < 400
    saved = bot.store.get_conversation(chat.id).messages[-1]
    assert saved.status == "stopped"
    assert saved.text == "".join(received)


def test_cancel_from_another_thread(bot):
    chat = bot.chat()
    stream = chat.stream("Go on and on.", max_new_tokens=400)
    iterator = iter(stream)
    next(iterator)
    threading.Thread(target=stream.cancel).start()
    for _ in iterator:
        pass
    assert stream.reply.status == "stopped"


def test_regenerate_and_edit_replace_the_last_reply(bot):
    chat = bot.chat()
    chat.ask("First question", max_new_tokens=3)
    list(chat.regenerate(max_new_tokens=3))
    assert [m.role for m in chat.messages] == ["user", "assistant"]
    list(chat.edit_last("Edited question", max_new_tokens=3))
    saved = bot.store.get_conversation(chat.id)
    assert [m.role for m in saved.messages] == ["user", "assistant"]
    assert saved.messages[0].text == "Edited question"


def test_rate_and_correct_are_stored(bot):
    chat = bot.chat()
    reply = chat.ask("Question", max_new_tokens=3)
    chat.rate(reply.message_id, 1)
    chat.correct(reply.message_id, "The right answer.")
    saved = bot.store.get_conversation(chat.id).messages[-1]
    assert saved.rating == 1
    assert saved.correction == "The right answer."


def test_empty_question_is_refused_and_nothing_saved(bot):
    chat = bot.chat()
    with pytest.raises(AssistantError, match="empty"):
        chat.ask("   ")
    assert bot.store.get_conversation(chat.id).messages == []


def test_bad_image_is_refused_before_anything_is_saved(bot, tmp_path):
    chat = bot.chat()
    not_image = tmp_path / "notes.png"
    not_image.write_text("just text")
    with pytest.raises(AssistantError, match="not an image"):
        chat.ask("What is this?", images=[not_image])
    with pytest.raises(AssistantError, match="not found"):
        chat.ask("What is this?", images=[tmp_path / "missing.png"])
    assert bot.store.get_conversation(chat.id).messages == []


def test_generation_failure_keeps_question_and_marks_reply_failed(tmp_path):
    """A model that cannot load: the question stays saved, the reply is stored as failed with the reason."""
    profile_file = tmp_path / "broken.toml"
    profile_file.write_text(f'[model]\nid = "{tmp_path / "no-such-model"}"\n')
    bot = Assistant.from_profile(str(profile_file))
    chat = bot.chat()
    with pytest.raises(AssistantError, match="tiny-smolvlm"):
        chat.ask("Will this work?")
    saved = bot.store.get_conversation(chat.id).messages
    assert [m.role for m in saved] == ["user", "assistant"]
    assert saved[0].text == "Will this work?"
    assert saved[1].status == "failed"
    assert saved[1].meta.error


def test_context_overflow_drops_oldest_turns(tmp_path):
    bot = Assistant.from_profile("tiny-smolvlm")
    bot.profile.chat.context_limit = 0
    engine = bot.load()
    chat = bot.chat()
    chat.ask("one " * 20, max_new_tokens=2)
    chat.ask("two " * 20, max_new_tokens=2)
    engine.loaded.context_limit = chat.messages[-1].meta.prompt_tokens  # too small for three turns
    reply = chat.ask("three", max_new_tokens=2)
    assert reply.status == "ok"
    assert any("context full" in note for note in reply.extra.get("notes", []))


def test_a_single_turn_too_big_for_the_context_is_an_error():
    bot = Assistant.from_profile("tiny-smolvlm")
    engine = bot.load()
    engine.loaded.context_limit = 8
    chat = bot.chat()
    with pytest.raises(AssistantError, match="tokens of context"):
        chat.ask("a question that does not fit", max_new_tokens=2)
    assert bot.store.get_conversation(chat.id).messages[-1].status == "failed"


def test_reopen_chat_in_new_assistant_continues_it(tmp_path):
    first = Assistant.from_profile("tiny-qwen2vl")
    chat = first.chat()
    chat.ask("Remember me", max_new_tokens=3)
    first.close()
    second = Assistant.from_profile("tiny-qwen2vl", store=Store.open_default())
    again = second.chat(chat.id)
    assert again.messages[0].text == "Remember me"
    again.ask("Still there?", max_new_tokens=3)
    assert len(second.store.get_conversation(chat.id).messages) == 4


def test_follow_up_after_an_empty_reply(bot):
    """A reply that decoded to no text (e.g. a stopped one) must not break the next prompt's template."""
    from assistant.conversation import Message, TextPart

    chat = bot.chat()
    chat.ask("First", max_new_tokens=2)
    last = chat.messages[-1]
    last.parts = [TextPart("")]
    bot.store.update_message(last)
    reply = chat.ask("Second", max_new_tokens=2)
    assert reply.status == "ok"
