"""ReplyText: however the model's text is cut into pieces, clients get the same content, no raw tool-call tags,
and nothing after a stop string."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from assistant_plugins.serve.openai_reply import ReplyText

CALL = '<tool_call>{"name": "weather", "arguments": {"city": "Paris"}}</tool_call>'
plain_text = st.text(alphabet=st.characters(blacklist_characters="{<`", blacklist_categories=("Cs",)), max_size=60)


def feed(reply: ReplyText, text: str, cuts: list[int]) -> list[str]:
    points = sorted({cut % (len(text) + 1) for cut in cuts})
    pieces = [text[start:end] for start, end in zip([0, *points], [*points, len(text)])]
    return [reply.feed(piece) for piece in pieces]


@given(plain_text, st.lists(st.integers(min_value=0), max_size=8))
def test_plain_text_passes_through_whole(text: str, cuts: list[int]) -> None:
    reply = ReplyText(watch_calls=True)
    shown = feed(reply, text, cuts)
    rest, calls = reply.finish()
    assert "".join(shown) + rest == text and calls == []


@given(plain_text, plain_text, st.lists(st.integers(min_value=0), max_size=12))
def test_a_tool_call_is_never_shown_as_text(before: str, after: str, cuts: list[int]) -> None:
    reply = ReplyText(watch_calls=True)
    shown = "".join(feed(reply, before + CALL + after, cuts))
    rest, calls = reply.finish()
    assert "<" not in shown and shown == before[: len(shown)]
    assert [(call.name, call.arguments) for call in calls] == [("weather", {"city": "Paris"})]
    assert "".join((shown + rest).split()) == "".join((before + after).split())  # the text around it, kept


def test_the_json_fallback_is_a_call_too() -> None:
    reply = ReplyText(watch_calls=True)
    shown = reply.feed('Sure. {"tool": "weather", "arguments": {"city": "Rome"}}')
    rest, calls = reply.finish()
    assert shown == "Sure. " and rest == "" and calls[0].arguments == {"city": "Rome"}


def test_json_that_is_not_a_call_is_content() -> None:
    reply = ReplyText(watch_calls=True)
    text = json.dumps({"answer": 42})
    shown = reply.feed(text)
    assert reply.finish() == (text[len(shown):], [])


def test_without_tools_tags_are_plain_text() -> None:
    reply = ReplyText(watch_calls=False)
    assert reply.feed(CALL) == CALL and reply.finish() == ("", [])


@given(plain_text, st.sampled_from(["STOP", "\n\n", "é!"]), plain_text, st.lists(st.integers(min_value=0), max_size=10))
def test_text_ends_before_the_first_stop_string(before: str, stop: str, after: str, cuts: list[int]) -> None:
    text = before + stop + after
    reply = ReplyText(watch_calls=False, stops=[stop, "never-there"])
    shown = "".join(feed(reply, text, cuts))
    rest, _ = reply.finish()
    assert shown + rest == text[: text.find(stop)] and reply.stopped
