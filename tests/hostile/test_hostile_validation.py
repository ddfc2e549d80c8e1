"""Issue 22.15: impossible profile values are refused naming the key; --max-tokens beyond the context and a broken
adapter file say the real cause and what to do."""

from __future__ import annotations

import json

import pytest

from assistant.api import UNSAVED_QUESTIONS_FILE
from assistant.paths import user_paths
from assistant.profiles import shipped_profiles_dir
from tests.hostile.kit import cli, integrity_ok, stored_messages


def _profile(tmp_path, generation: str):
    text = (shipped_profiles_dir() / "tiny-smolvlm.toml").read_text()
    path = tmp_path / "bad.toml"
    path.write_text(text.replace("[generation]\n", f"[generation]\n{generation}\n"))
    return path


@pytest.mark.parametrize(
    "line, key",
    [
        ("temperature = inf", "generation.temperature"),
        ("temperature = nan", "generation.temperature"),
        ("temperature = -inf", "generation.temperature"),
        ("top_p = 5.0", "generation.top_p"),
        ("top_p = nan", "generation.top_p"),
        ("top_p = 0.0", "generation.top_p"),
        ("repetition_penalty = 0", "generation.repetition_penalty"),
        ("repetition_penalty = 0.0", "generation.repetition_penalty"),
        ("repetition_penalty = nan", "generation.repetition_penalty"),
    ],
)
def test_impossible_generation_values_are_refused_naming_the_key(capsys, tmp_path, line, key):
    result = cli(capsys, "ask", "--profile", str(_profile(tmp_path, line)), "hello")
    assert result.code == 2
    assert key in result.one_line()
    assert stored_messages() == []  # refused before anything was saved


def test_max_tokens_beyond_the_context_says_so(capsys):
    result = cli(capsys, "ask", "--profile", "tiny-smolvlm", "--max-tokens", "1000000", "hello there")
    assert result.code == 2
    line = result.one_line()
    assert "--max-tokens" in line and "1000000" in line and "this message needs" not in line
    kept = (user_paths().data / UNSAVED_QUESTIONS_FILE).read_text()  # the question is not lost
    assert json.loads(kept.splitlines()[-1])["question"] == "hello there"
    assert integrity_ok()


@pytest.mark.parametrize("damage", ["weights", "config"])
def test_a_damaged_adapter_file_says_the_adapter_is_broken_and_how_to_fix_it(capsys, damage):
    folder = user_paths().ensure().adapters_dir / "mine"
    folder.mkdir(parents=True)
    config = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"], "task_type": None}
    (folder / "adapter_config.json").write_text("{ not json" if damage == "config" else json.dumps(config))
    (folder / "adapter_model.safetensors").write_bytes(b"\x00garbage, not safetensors" * 10)
    result = cli(capsys, "ask", "--profile", "tiny-smolvlm", "--adapter", "mine", "hello")
    assert result.code == 2
    line = result.one_line()
    assert "adapter 'mine' is broken" in line
    assert "assistant train --name mine --overwrite" in line and "assistant adapters delete mine" in line
    assert "/regenerate" not in line
