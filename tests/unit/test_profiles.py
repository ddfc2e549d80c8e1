"""Profiles: every shipped profile loads; bad files are rejected with the file, the key and what is allowed."""

from __future__ import annotations

import pytest

from assistant import AssistantError
from assistant.paths import user_paths
from assistant.profiles import DEFAULT_PROFILE, available_profiles, load_profile

REQUIRED = {"smolvlm-256m", "smolvlm2-2.2b", "qwen2.5-vl-3b", "tiny-smolvlm", "tiny-qwen2vl", "bench-smolvlm-256m"}


def test_required_profiles_ship_and_load():
    names = set(available_profiles())
    assert REQUIRED <= names
    for name in names:
        profile = load_profile(name)
        assert profile.name == name
        assert profile.model.trust_remote_code is False


def test_default_profile_is_smolvlm_256m():
    profile = load_profile(None)
    assert profile.name == DEFAULT_PROFILE == "smolvlm-256m"
    assert profile.model.id == "HuggingFaceTB/SmolVLM-256M-Instruct"


def test_bench_profile_is_marked_random():
    assert load_profile("bench-smolvlm-256m").model.random_weights is True
    assert "RANDOM WEIGHTS" in load_profile("bench-smolvlm-256m").description


def write(tmp_path, text, name="custom.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_unknown_key_names_file_key_and_allowed(tmp_path):
    path = write(tmp_path, '[model]\nid = "x"\ncolour = "blue"\n')
    with pytest.raises(AssistantError) as info:
        load_profile(str(path))
    message = str(info.value)
    assert str(path) in message and "'colour'" in message and "allowed keys" in message and "revision" in message


def test_unknown_table(tmp_path):
    path = write(tmp_path, '[model]\nid = "x"\n[sampling]\ntemperature = 1\n')
    with pytest.raises(AssistantError, match="unknown key 'sampling' in the top level"):
        load_profile(str(path))


def test_bad_choice_lists_allowed_values(tmp_path):
    path = write(tmp_path, '[model]\nid = "x"\ndevice = "tpu"\n')
    with pytest.raises(AssistantError, match=r"model.device = 'tpu' is not allowed; use one of 'auto', 'cpu'"):
        load_profile(str(path))


@pytest.mark.parametrize(
    "body, expected",
    [
        ('[model]\nid = "x"\n[generation]\nmax_new_tokens = "many"\n', "generation.max_new_tokens = 'many' must be int"),
        ('[model]\nid = "x"\n[generation]\ntemperature = -1\n', "must not be negative"),
        ('[model]\nid = "x"\ntrust_remote_code = "yes"\n', "model.trust_remote_code = 'yes' must be bool"),
        ('[model]\nid = "x"\n[lora]\ntarget_modules = "q_proj"\n', "lora.target_modules must be a list of str"),
        ("[model]\n", "needs `id`"),
        ("model = [\n", "not valid TOML"),
    ],
)
def test_bad_values(tmp_path, body, expected):
    with pytest.raises(AssistantError, match=expected.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        load_profile(str(write(tmp_path, body)))


def test_unknown_profile_lists_known_ones():
    with pytest.raises(AssistantError, match="unknown profile 'nope'; known profiles: .*tiny-smolvlm"):
        load_profile("nope")


def test_user_profile_dir_overrides_and_adds():
    directory = user_paths().profiles_dir
    directory.mkdir(parents=True)
    (directory / "mine.toml").write_text('description = "my own"\n[model]\nid = "/models/mine"\n')
    (directory / "tiny-smolvlm.toml").write_text('description = "override"\n[model]\nlocal_build = "tiny-smolvlm"\n')
    assert load_profile("mine").model.id == "/models/mine"
    assert load_profile("tiny-smolvlm").description == "override"


def test_with_model_swaps_only_the_model():
    profile = load_profile("tiny-smolvlm").with_model("/some/dir")
    assert profile.model.id == "/some/dir" and profile.model.local_build == ""
    assert profile.generation.max_new_tokens == 24
