"""The confirmation policy and the remembered allow-list in the shared user config file."""

from __future__ import annotations

import tomllib

import pytest

from assistant.errors import AssistantError
from assistant.permissions import (
    Answer,
    Permissions,
    add_to_allow_list,
    confirmation_reason,
    question_tools,
    read_allow_list,
    remove_from_allow_list,
)

OTHER_SETTINGS = """# my settings
[keys]
send = "enter"   # keep this comment

[tui]
theme = "nord"
"""


def test_who_needs_confirmation():
    assert confirmation_reason("screenshot", side_effects=False) == "it captures your screen"
    assert confirmation_reason("click", side_effects=True) == "it has side effects"
    assert confirmation_reason("zoom", side_effects=False) is None


def test_no_confirmation_needed_never_asks():
    def never(request):
        raise AssertionError("asked")

    decision = Permissions(approver=never).check("zoom", "", False, {})
    assert decision.approved and decision.how == "not-needed" and not decision.asked


def test_pre_approval_and_the_approvers_answers(tmp_path):
    config = tmp_path / "config.toml"
    assert Permissions(pre_approved=True, config_file=config).check("screenshot", "", False, {}).how == "pre-approved"
    assert Permissions(config_file=config).check("screenshot", "", False, {}).how == "no-approver"
    once = Permissions(approver=lambda r: Answer.ONCE, config_file=config)
    assert once.check("screenshot", "", False, {}).how == "approved"
    assert not config.exists()  # "once" remembers nothing
    deny = Permissions(approver=lambda r: Answer.DENY, config_file=config)
    assert not deny.check("screenshot", "", False, {}).approved


def test_an_approver_that_raises_denies(tmp_path):
    def broken(request):
        raise EOFError

    decision = Permissions(approver=broken, config_file=tmp_path / "c.toml").check("rm", "", True, {})
    assert not decision.approved and decision.asked


def test_always_writes_the_agent_table_and_keeps_the_rest_of_the_file(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(OTHER_SETTINGS, encoding="utf-8")
    permissions = Permissions(approver=lambda r: Answer.ALWAYS, config_file=config)
    assert permissions.check("screenshot", "", False, {}).how == "approved-always"
    text = config.read_text(encoding="utf-8")
    assert text.startswith(OTHER_SETTINGS)  # byte for byte
    assert tomllib.loads(text)["agent"] == {"always_allow": ["screenshot"]}
    assert Permissions(config_file=config).check("screenshot", "", False, {}).how == "always-allowed"


def test_existing_agent_table_is_updated_in_place(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(
        OTHER_SETTINGS + '\n[agent]\nmax_steps = 4\nalways_allow = [\n  "zoom",\n  "ground",\n]\n\n[later]\nx = 1\n',
        encoding="utf-8",
    )
    assert add_to_allow_list(config, "screenshot") == ["zoom", "ground", "screenshot"]
    data = tomllib.loads(config.read_text(encoding="utf-8"))
    assert data["agent"] == {"max_steps": 4, "always_allow": ["zoom", "ground", "screenshot"]}
    assert data["later"] == {"x": 1} and data["tui"] == {"theme": "nord"}
    assert remove_from_allow_list(config, "zoom") == ["ground", "screenshot"]
    assert read_allow_list(config) == ["ground", "screenshot"]
    assert "keep this comment" in config.read_text(encoding="utf-8")


def test_agent_table_without_the_key_gets_it(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[agent]\nmax_steps = 3\n[tui]\ntheme = "x"\n', encoding="utf-8")
    add_to_allow_list(config, "rm")
    assert tomllib.loads(config.read_text(encoding="utf-8"))["agent"] == {"max_steps": 3, "always_allow": ["rm"]}


def test_names_are_escaped_so_they_cannot_inject_toml(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(OTHER_SETTINGS, encoding="utf-8")
    evil = 'x"]\n[tui]\ntheme = "pwned'
    add_to_allow_list(config, evil)
    data = tomllib.loads(config.read_text(encoding="utf-8"))
    assert data["agent"]["always_allow"] == [evil] and data["tui"] == {"theme": "nord"}


def test_a_broken_config_is_never_overwritten(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[tui\ntheme = ", encoding="utf-8")
    with pytest.raises(AssistantError, match="not valid TOML"):
        add_to_allow_list(config, "zoom")
    assert config.read_text(encoding="utf-8") == "[tui\ntheme = "
    with pytest.raises(AssistantError, match="must be a list of tool names"):
        config.write_text('[agent]\nalways_allow = "zoom"\n', encoding="utf-8")
        read_allow_list(config)


def test_an_unusual_layout_is_refused_instead_of_guessed(tmp_path):
    config = tmp_path / "config.toml"
    original = 'agent.always_allow = ["zoom"]\n'
    config.write_text(original, encoding="utf-8")
    assert read_allow_list(config) == ["zoom"]
    with pytest.raises(AssistantError, match="edit it by hand"):
        add_to_allow_list(config, "ground")
    assert config.read_text(encoding="utf-8") == original


def test_a_broken_config_means_asking_again_and_the_user_is_told(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[agent\n", encoding="utf-8")
    asked = []
    decision = Permissions(approver=lambda r: asked.append(r) or Answer.ALWAYS, config_file=config).check("rm", "", True, {})
    assert asked and decision.approved and decision.how == "approved"
    assert "not remembered" in decision.describe() and "not valid TOML" in decision.describe()
    assert config.read_text(encoding="utf-8") == "[agent\n"
    denied = Permissions(config_file=config).check("rm", "", True, {})
    assert not denied.approved and "not valid TOML" in denied.describe()


def test_a_scoped_pre_approval_covers_only_its_tools(tmp_path):
    policy = Permissions(pre_approved=frozenset({"screenshot"}), config_file=tmp_path / "config.toml")
    assert policy.check("screenshot", "", False, {}).how == "pre-approved"
    denied = policy.check("type_text", "", True, {"text": "x"})
    assert not denied.approved and denied.how == "no-approver"
    assert denied.describe() == ("denied: confirmation needed but nobody can answer "
                                 "(--yes covers screenshot; pass --yes screenshot,type_text to pre-approve it)")
    asked = []
    with_prompt = Permissions(approver=lambda r: asked.append(r.tool) or Answer.DENY, pre_approved=frozenset({"zoom"}),
                              config_file=tmp_path / "config.toml")
    assert not with_prompt.check("click", "", True, {}).approved and asked == ["click"]  # outside the scope: asked


def test_the_tools_a_question_names():
    names = ["screenshot", "click", "type_text", "zoom", "press_keys", "move"]
    assert question_tools("What is on my screen?", names) == {"screenshot"}
    assert question_tools("Click OK, then type text 'hi' and press keys ctrl+s", names) == {"click", "type_text", "press_keys"}
    assert question_tools("Zooming into the chart", names) == {"zoom"}
    assert question_tools("a cat sitting on a clickbait article that was removed", names) == frozenset()
