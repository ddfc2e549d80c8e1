"""reply_finished: every finished reply reaches the observers once, already saved; a failing observer changes nothing."""

from __future__ import annotations

from typing import Any

from assistant import hookimpl
from assistant.testing import scripted_assistant


class Recorder:
    """Keeps what each reply_finished call saw, including what the store held at that moment."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str, str, str]] = []

    @hookimpl
    def reply_finished(self, chat: Any, reply: Any) -> None:
        saved = chat.assistant.store.get_conversation(chat.id).messages
        stored = next(message for message in saved if message.id == reply.message_id)
        self.calls.append((chat.id, reply.text, reply.status, stored.text))


class Exploding:
    @hookimpl
    def reply_finished(self, chat: Any, reply: Any) -> None:
        raise RuntimeError("observer bug")


def test_each_finished_reply_is_sent_once_after_it_is_saved() -> None:
    recorder = Recorder()
    bot, _backend = scripted_assistant(["first answer", "second answer", "another take"], recorder=recorder)
    chat = bot.chat()
    chat.ask("one?")
    chat.ask("two?")
    chat.regenerate()
    assert recorder.calls == [
        (chat.id, "first answer", "ok", "first answer"),
        (chat.id, "second answer", "ok", "second answer"),
        (chat.id, "another take", "ok", "another take"),
    ]


def test_a_stopped_reply_is_sent_with_its_text_so_far() -> None:
    recorder = Recorder()
    bot, _backend = scripted_assistant(["one two three four five"], recorder=recorder)
    chat = bot.chat()
    stream = chat.stream("count")
    pieces = [next(iter(stream))]
    stream.cancel()
    pieces.extend(stream)
    text = "".join(pieces)
    assert recorder.calls == [(chat.id, text, "stopped", text)]
    assert text.split() == ["one", "two", "three", "four", "five"][: len(text.split())] and len(text.split()) < 5


def test_a_failing_observer_neither_breaks_the_reply_nor_silences_the_others() -> None:
    recorder = Recorder()
    bot, _backend = scripted_assistant(["fine", "still fine"], exploding=Exploding(), recorder=recorder)
    chat = bot.chat()
    assert chat.ask("a?").status == "ok"
    assert chat.ask("b?").text == "still fine"
    assert [call[1] for call in recorder.calls] == ["fine", "still fine"]
    assert [(failure.name, failure.stage) for failure in bot.plugins.failures] == [("exploding", "reply_finished")] * 2
