"""The public Python API on both tiny architectures: ask, stream, multi-turn with images, cancel, failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from assistant import Assistant, AssistantError, Reply
from assistant.api import UNSAVED_QUESTIONS_FILE
from assistant.paths import user_paths
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
    assert reply.text == chat.messages[1].text == bot.store.get_conversation(chat.id).messages[1].text
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
    again = chat.regenerate(max_new_tokens=3)
    assert isinstance(again, Reply) and again.status == "ok"
    assert [m.role for m in chat.messages] == ["user", "assistant"]
    edited = chat.edit_last("Edited question", max_new_tokens=3)
    assert isinstance(edited, Reply) and edited.status == "ok"
    saved = bot.store.get_conversation(chat.id)
    assert [m.role for m in saved.messages] == ["user", "assistant"]
    assert [m.status for m in saved.messages] == ["ok", "ok"]
    assert saved.messages[0].text == "Edited question"
    assert saved.messages[1].id == edited.message_id
    chat.rate(edited.message_id, 1)  # the reply they returned is the one in the chat


def test_streamed_regenerate_and_edit(bot):
    chat = bot.chat()
    chat.ask("First question", max_new_tokens=3)
    pieces = list(chat.stream_regenerate(max_new_tokens=3))
    assert "".join(pieces) == chat.messages[-1].text
    stream = chat.stream_edit_last("Edited", max_new_tokens=3)
    reply = stream.wait()
    assert reply.status == "ok" and bot.store.get_conversation(chat.id).messages[0].text == "Edited"


def test_unread_regenerate_stream_does_not_leave_a_reply_streaming(bot):
    """The old trap: a lazy regenerate left an empty reply at `streaming`; the next call then failed."""
    chat = bot.chat()
    chat.ask("First question", max_new_tokens=3)
    chat.stream_regenerate(max_new_tokens=3)  # never read, dropped at once
    assert [m.status for m in bot.store.get_conversation(chat.id).messages] == ["ok", "stopped"]
    kept = chat.stream_edit_last("Second try", max_new_tokens=3)  # held, but the chat moves on
    reply = chat.ask("Next question", max_new_tokens=3)
    assert kept.reply is not None and kept.reply.status == "stopped"
    chat.rate(reply.message_id, 1)
    statuses = [m.status for m in bot.store.get_conversation(chat.id).messages]
    assert "streaming" not in statuses and statuses[-1] == "ok"


def test_breaking_out_of_a_stream_stops_generation_and_stores_it(bot):
    chat = bot.chat()
    received = []
    for piece in chat.stream("Tell me a long story.", max_new_tokens=400):
        received.append(piece)
        break
    saved = bot.store.get_conversation(chat.id).messages[-1]
    assert saved.status == "stopped"
    assert saved.text.startswith("".join(received))
    assert saved.meta.completion_tokens < 400
    # generation ended: a reply still running would make the engine refuse the next one
    assert bot.chat().ask("Another chat now", max_new_tokens=3).status == "ok"
    assert chat.ask("And this one", max_new_tokens=3).status == "ok"


def test_closed_and_context_managed_streams_are_stored_as_stopped(bot):
    chat = bot.chat()
    stream = chat.stream("One", max_new_tokens=400)
    reader = iter(stream)
    next(reader)
    stream.close()
    assert list(reader) == [] and stream.reply.status == "stopped"
    with chat.stream("Two", max_new_tokens=400) as stream:
        next(iter(stream))
    assert stream.reply.status == "stopped"
    with chat.stream("Three", max_new_tokens=3) as stream:
        pass  # never read
    assert stream.reply.status == "stopped" and stream.reply.text == ""
    assert [m.status for m in bot.store.get_conversation(chat.id).messages if m.role == "assistant"] == [
        "stopped", "stopped", "stopped"
    ]


def test_ask_takes_images_none(bot):
    assert bot.chat().ask("No pictures", images=None, max_new_tokens=2).status == "ok"


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
    assert bot.store.list_conversations() == []  # the new chat is not left behind empty


def test_bad_image_is_refused_before_anything_is_saved(bot, tmp_path):
    chat = bot.chat()
    not_image = tmp_path / "notes.png"
    not_image.write_text("just text")
    with pytest.raises(AssistantError, match="not an image"):
        chat.ask("What is this?", images=[not_image])
    with pytest.raises(AssistantError, match="not found"):
        chat.ask("What is this?", images=[tmp_path / "missing.png"])
    assert bot.store.list_conversations() == []  # no empty "(untitled)" chat, as after a bad video
    reply = chat.ask("What is this?", images=[make_image(tmp_path / "fine.png")], max_new_tokens=2)
    (summary,) = bot.store.list_conversations()  # the same Chat object goes on, saved at its first question
    assert summary.id == chat.id == reply.conversation_id and [m.role for m in chat.messages] == ["user", "assistant"]


def test_a_bad_image_in_a_chat_with_messages_keeps_them(bot, tmp_path):
    chat = bot.chat()
    chat.ask("Hello?", max_new_tokens=2)
    with pytest.raises(AssistantError, match="not found"):
        chat.ask("And this?", images=[tmp_path / "missing.png"])
    assert [m.role for m in bot.store.get_conversation(chat.id).messages] == ["user", "assistant"]


def unsaved_questions() -> list[dict]:
    path = user_paths().data / UNSAVED_QUESTIONS_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_new_chat_whose_first_reply_fails_is_not_kept(tmp_path):
    """A model that cannot load: no empty chat is left behind; the question is written down and the error says where."""
    profile_file = tmp_path / "broken.toml"
    profile_file.write_text('[model]\nid = "someone/not-downloaded-model"\n')
    bot = Assistant.from_profile(str(profile_file))
    chat = bot.chat()
    with pytest.raises(AssistantError, match="tiny-smolvlm") as caught:
        chat.ask("Will this work?")
    assert "not kept" in str(caught.value) and UNSAVED_QUESTIONS_FILE in str(caught.value)
    assert bot.store.list_conversations() == []
    assert [entry["question"] for entry in unsaved_questions()] == ["Will this work?"]
    assert chat.id == 0 and chat.messages == []


def test_a_failure_in_a_chat_with_history_keeps_question_and_marks_reply_failed():
    bot = Assistant.from_profile("tiny-smolvlm")
    chat = bot.chat()
    chat.ask("A first question", max_new_tokens=2)
    bot.engine.loaded.context_limit = 8
    with pytest.raises(AssistantError, match="tokens of context") as caught:
        chat.ask("a question that does not fit", max_new_tokens=2)
    assert "not kept" not in str(caught.value)
    saved = bot.store.get_conversation(chat.id).messages
    assert [m.role for m in saved] == ["user", "assistant", "user", "assistant"]
    assert saved[2].text == "a question that does not fit"
    assert saved[3].status == "failed" and saved[3].meta.error
    assert unsaved_questions() == []


def test_the_same_chat_object_works_again_after_its_first_reply_failed():
    bot = Assistant.from_profile("tiny-smolvlm")
    engine = bot.engine
    limit = engine.loaded.context_limit
    engine.loaded.context_limit = 8
    chat = bot.chat()
    with pytest.raises(AssistantError, match="not kept"):
        chat.ask("too long for the context", max_new_tokens=2)
    engine.loaded.context_limit = limit
    reply = chat.ask("Shorter", max_new_tokens=2)
    (summary,) = bot.store.list_conversations()
    assert summary.id == chat.id == reply.conversation_id and summary.title == "Shorter"


def test_title_comes_from_the_question_and_file_name_not_the_document_text():
    bot = Assistant.from_profile("tiny-smolvlm")
    chat = bot.chat()
    chat.ask(
        "What does the Lambert W function compute?",
        context_text="--- manual.pdf page 1 --- gnuplot manual, chapter one " * 5,
        extra={"attached": ["/docs/manual.pdf"]},
        max_new_tokens=2,
    )
    assert bot.store.get_conversation(chat.id).title == "What does the Lambert W function compute? — manual.pdf"


def test_a_missing_model_directory_is_named_before_anything_is_saved(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(AssistantError, match=f"no such model directory: {missing}"):
        Assistant.from_profile("tiny-smolvlm", model=str(missing))
    profile_file = tmp_path / "broken.toml"
    profile_file.write_text(f'[model]\nid = "{missing}"\n')
    bot = Assistant.from_profile(str(profile_file))
    with pytest.raises(AssistantError, match="no such model directory"):
        bot.chat().ask("Hello?")
    assert bot.store.list_conversations() == []


def test_sampling_options_per_reply(bot):
    first = bot.chat().ask("Pick words", temperature=1.5, top_p=0.9, seed=11, max_new_tokens=12)
    second = bot.chat().ask("Pick words", temperature=1.5, top_p=0.9, seed=11, max_new_tokens=12)
    assert first.text == second.text  # the seed makes a sampled reply repeatable
    plain = bot.chat().ask("Pick words", max_new_tokens=2)
    with_system = bot.chat().ask("Pick words", system="You answer in exactly one word, always.", max_new_tokens=2)
    assert with_system.prompt_tokens > plain.prompt_tokens  # the system prompt reached the model
    with pytest.raises(AssistantError, match="top_p"):
        bot.chat().ask("x", top_p=0)
    with pytest.raises(AssistantError, match="temperature"):
        bot.chat().ask("x", temperature=-1)


def test_library_warnings_go_to_the_log_not_stderr(tmp_path):
    """transformers' FutureWarnings (e.g. from training code) must not show up in API or CLI output."""
    script = (
        "import logging, warnings\n"
        "from assistant import Assistant\n"
        "logging.basicConfig(filename=%r, level=logging.INFO)\n"
        "bot = Assistant.from_profile('tiny-smolvlm')\n"
        "bot.engine.loaded.model.is_gradient_checkpointing\n"  # deprecated in transformers 5: a FutureWarning
        "warnings.warn('a warning of our own', UserWarning)\n"
    ) % str(tmp_path / "log.txt")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            stdin=subprocess.DEVNULL, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert "FutureWarning" not in result.stderr and "a warning of our own" in result.stderr
    assert "is_gradient_checkpointing" in (tmp_path / "log.txt").read_text()


def test_context_overflow_drops_oldest_turns(tmp_path):
    bot = Assistant.from_profile("tiny-smolvlm")
    bot.profile.chat.context_limit = 0
    engine = bot.engine
    chat = bot.chat()
    chat.ask("one " * 20, max_new_tokens=2)
    chat.ask("two " * 20, max_new_tokens=2)
    engine.loaded.context_limit = chat.messages[-1].meta.prompt_tokens  # too small for three turns
    reply = chat.ask("three", max_new_tokens=2)
    assert reply.status == "ok"
    assert any("context full" in note for note in reply.extra.get("notes", []))


def test_a_single_turn_too_big_for_the_context_is_an_error():
    bot = Assistant.from_profile("tiny-smolvlm")
    engine = bot.engine
    engine.loaded.context_limit = 8
    chat = bot.chat()
    with pytest.raises(AssistantError, match="tokens of context"):
        chat.ask("a question that does not fit", max_new_tokens=2)
    assert bot.store.list_conversations() == []  # a new chat that never got an answer is not kept


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


def test_close_frees_the_model_and_the_next_reply_loads_it_again(bot):
    """Assistant.close() releases the weights (a script or a profile switch gets the memory back), keeps the saved
    chats, and the assistant still answers afterwards with a freshly loaded model."""
    import gc
    import weakref

    chat = bot.chat()
    first = chat.ask("Say something.", max_new_tokens=4).text
    model = weakref.ref(bot.engine.loaded.model)
    bot.close()
    gc.collect()
    assert model() is None, "the closed assistant still holds the model"
    assert not bot.loaded
    again = bot.chat(chat.id)
    assert [m.text for m in again.messages][1] == first
    assert bot.chat().ask("Say something.", max_new_tokens=4).text == first
