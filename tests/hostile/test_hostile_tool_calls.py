"""Issue 22.10: tool calls are capped per reply and per run ([agent] max_calls); the rest are reported skipped."""

from __future__ import annotations

import json

import pytest

from assistant import Assistant
from assistant.store import Store
from assistant.testing import ScriptedBackend
from tests.hostile.kit import cli, integrity_ok


@pytest.fixture
def model(monkeypatch):
    backend = ScriptedBackend([])
    monkeypatch.setattr(Assistant, "load", lambda self, progress=None: backend)
    return backend


def _calls(count: int) -> str:
    return " ".join(
        "<tool_call>" + json.dumps({"name": "nothing_here", "arguments": {"n": n}}) + "</tool_call>" for n in range(count)
    )


def _tool_messages() -> int:
    with Store.open_default() as store:
        return sum(1 for m in store.get_conversation(1).messages if m.role == "tool")


def test_a_thousand_calls_in_one_reply_run_only_the_per_reply_cap(capsys, model):
    model.replies += [_calls(1000), _calls(1000)]
    result = cli(capsys, "ask", "--profile", "tiny-smolvlm", "--agent", "--yes", "--max-steps", "1", "go")
    assert result.code == 0, result.err
    assert "[step 1] 992 more tool calls skipped: at most 8 tool calls per reply" in result.err
    assert _tool_messages() == 16  # 8 run in step 1, 8 answered "step limit" in step 2; never 2,000
    with Store.open_default() as store:
        first_reply = store.get_conversation(1).messages[1]
    assert len(first_reply.tool_calls) == 8 and "992 tool calls skipped" in first_reply.meta.extra["notes"][-1]
    assert integrity_ok()


def test_the_run_cap_comes_from_the_profile_and_ends_the_run(capsys, model, tmp_path):
    from assistant.profiles import shipped_profiles_dir

    profile = tmp_path / "capped.toml"
    profile.write_text((shipped_profiles_dir() / "tiny-smolvlm.toml").read_text() + "\n[agent]\nmax_calls = 10\n")
    model.replies += [_calls(5), _calls(5), _calls(5), "never asked"]
    result = cli(capsys, "ask", "--profile", str(profile), "--agent", "--yes", "--max-steps", "10", "go")
    assert result.code == 0, result.err
    assert "[step 3] 5 more tool calls skipped: at most 10 tool calls per question" in result.err
    assert "tool-call limit" in result.err
    assert _tool_messages() == 10 and model.replies == ["never asked"]


def test_a_negative_cap_in_a_profile_is_refused_naming_the_key(capsys, tmp_path):
    from assistant.profiles import shipped_profiles_dir

    profile = tmp_path / "bad.toml"
    profile.write_text((shipped_profiles_dir() / "tiny-smolvlm.toml").read_text() + "\n[agent]\nmax_calls = -1\n")
    result = cli(capsys, "ask", "--profile", str(profile), "--agent", "go")
    assert result.code == 2 and "agent.max_calls" in result.one_line()
