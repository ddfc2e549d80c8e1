"""Issue 22.6: a reply whose process is killed mid-stream keeps its text; the next start marks it `interrupted`."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from assistant.paths import user_paths
from assistant.store import Store
from tests.hostile.kit import integrity_ok

# A reader that stops in the middle of the reply once its text so far is saved, so the test kills it mid-reply
# whatever the reply's length (a short greedy reply of the tiny model once finished before the signal came).
SLOW_READER = textwrap.dedent(
    """
    import sys, time
    from assistant import Assistant

    chat = Assistant.from_profile("tiny-smolvlm").chat()
    stream = chat.stream("tell me a very long story", max_new_tokens=1500)
    for piece in stream:
        sys.stdout.write(piece)
        sys.stdout.flush()
        if stream.message.parts and stream.message.parts[0].text:  # saved as `streaming`: wait to be killed
            time.sleep(600)
    """
)


def _streaming_text() -> str | None:
    """The text saved so far of a reply still marked streaming (None while there is none with text)."""
    path = user_paths().store_file
    if not path.exists():
        return None
    conn = sqlite3.connect(path, timeout=10)
    try:
        row = conn.execute(
            "SELECT text FROM messages WHERE role = 'assistant' AND status = 'streaming' AND text != ''"
        ).fetchone()
    except sqlite3.OperationalError:  # the store is being created
        return None
    finally:
        conn.close()
    return row[0] if row else None


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP])
def test_a_killed_reply_keeps_its_streamed_text_and_is_marked_interrupted(sig):
    child = subprocess.Popen(
        [sys.executable, "-c", SLOW_READER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=dict(os.environ),
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL),  # a runner under nohup ignores SIGHUP
    )
    try:
        deadline = time.monotonic() + 240
        while _streaming_text() is None:
            assert child.poll() is None, child.stderr.read().decode()
            assert time.monotonic() < deadline, "no partial reply was saved while streaming"
            time.sleep(0.2)
        with Store.open_default() as store:  # a store opened meanwhile leaves a live writer's reply alone
            assert store.get_conversation(1).messages[-1].status == "streaming"
        child.send_signal(sig)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    printed = child.stdout.read().decode()
    assert child.returncode == -sig
    assert integrity_ok()
    with Store.open_default() as store:  # the next start
        question, reply = store.get_conversation(1).messages
    assert question.text == "tell me a very long story"
    assert reply.status == "interrupted"
    assert reply.text and (printed.startswith(reply.text) or reply.text.startswith(printed))  # saved before printed
    assert reply.meta.extra["finish_reason"] == "interrupted" and "writer_pid" not in reply.meta.extra


# `assistant ask` writing to a terminal that reads slowly, so Ctrl+C comes while the reply streams whatever its length.
SLOW_TERMINAL_ASK = textwrap.dedent(
    """
    import sys, time
    from assistant.cli import entry_point

    class SlowTerminal:
        def __init__(self, stream):
            self.stream = stream

        def write(self, text):
            time.sleep(0.3)
            return self.stream.write(text)

        def __getattr__(self, name):
            return getattr(self.stream, name)

    sys.stdout = SlowTerminal(sys.stdout)
    sys.argv = ["assistant", "ask", "--profile", "tiny-smolvlm", "--max-tokens", "1500", "tell me"]
    entry_point()
    """
)


def test_ctrl_c_in_ask_keeps_the_text_as_stopped_and_exits_130():
    child = subprocess.Popen(
        [sys.executable, "-c", SLOW_TERMINAL_ASK],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=dict(os.environ),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a background runner may ignore SIGINT
    )
    try:
        deadline = time.monotonic() + 240
        while _streaming_text() is None:
            assert child.poll() is None, child.stderr.read().decode()
            assert time.monotonic() < deadline, "no partial reply was saved while streaming"
            time.sleep(0.2)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130, err.decode()
    assert "stopped" in err.decode() and "Traceback" not in err.decode()
    assert integrity_ok()
    with Store.open_default() as store:
        question, reply = store.get_conversation(1).messages
    assert question.text == "tell me"
    printed = out.decode().rstrip("\n")  # what reached the terminal; the stored text may hold a piece more
    assert reply.status == "stopped" and reply.text
    assert reply.text.startswith(printed) or printed.startswith(reply.text)
