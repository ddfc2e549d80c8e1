"""The confirmation policy and the remembered allow-list in the shared user config file."""

from __future__ import annotations

import tomllib

import pytest

from assistant.errors import AssistantError
from assistant.permissions import (
    Answer,
    Permissions,
    add_to_allow_list,
    add_window_rule,
    confirmation_reason,
    question_tools,
    read_allow_list,
    read_window_rules,
    remove_from_allow_list,
    remove_window_rules,
    window_label,
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


# --- "always" for pointer actions: one tool in one application window ------------------------------------------------


def test_always_for_a_click_is_a_rule_for_that_window_only(tmp_path):
    rules, config = tmp_path / "always-allow.json", tmp_path / "config.toml"
    asked = []

    def approver(request):
        asked.append(request)
        return Answer.ALWAYS

    permissions = Permissions(approver=approver, config_file=config, rules_file=rules)
    made = permissions.check("click", "", True, {"x": 1, "y": 2}, scope="Calculator")
    assert (made.how, made.reason, made.rule) == ("approved-always", "always", 'click in "Calculator"')
    assert asked[-1].always == 'click in "Calculator"'
    assert [(r.tool, r.window) for r in read_window_rules(rules)] == [("click", "Calculator")]
    assert read_allow_list(config) == []  # never a tool-wide allow for a pointer action
    quiet = Permissions(approver=lambda r: pytest.fail("asked although a rule allows it"), config_file=config, rules_file=rules)
    allowed = quiet.check("click", "", True, {"x": 5, "y": 5}, scope="Calculator")
    assert (allowed.how, allowed.reason) == ("always-allowed", "always")
    assert allowed.describe() == 'always allowed (click in "Calculator")'
    # another window, another tool, an unknown window: asked again
    for name, scope in (("click", "Terminal"), ("click", "calculator"), ("scroll", "Calculator"), ("click", "")):
        decision = Permissions(approver=lambda r: Answer.DENY, config_file=config, rules_file=rules).check(
            name, "", True, {}, scope=scope)
        assert decision.how == "denied", (name, scope)


def test_keys_and_text_are_never_always_allowed(tmp_path):
    rules, config = tmp_path / "always-allow.json", tmp_path / "config.toml"
    config.write_text('[agent]\nalways_allow = ["type_text", "press_keys", "click"]\n', encoding="utf-8")
    asked = []
    permissions = Permissions(approver=lambda r: asked.append(r) or Answer.ALWAYS, config_file=config, rules_file=rules)
    for name in ("type_text", "press_keys"):
        decision = permissions.check(name, "", True, {}, scope="Calculator")
        assert (decision.how, decision.reason) == ("approved", "once") and "one call at a time" in decision.note
    assert [r.always for r in asked] == ["", ""]  # "always" is not even offered
    assert not rules.exists()
    with pytest.raises(AssistantError, match="never always allowed"):
        add_window_rule(rules, "type_text", "Calculator")
    # a tool-wide config entry never covers a pointer action either: it asks
    assert permissions.check("click", "", True, {}, scope="").how == "approved"
    assert asked[-1].always == ""  # no window title: "once" only
    assert permissions.check("zoom", "", True, {}).how == "approved-always" and asked[-1].always == "zoom"


def test_yes_allows_one_run_and_writes_no_rule(tmp_path):
    rules = tmp_path / "always-allow.json"
    decision = Permissions(pre_approved=True, rules_file=rules, config_file=tmp_path / "c.toml").check(
        "click", "", True, {}, scope="Calculator")
    assert (decision.how, decision.reason) == ("pre-approved", "yes")
    assert not rules.exists()
    assert Permissions(rules_file=rules, config_file=tmp_path / "c.toml").check(
        "click", "", True, {}, scope="Calculator").how == "no-approver"


def test_rules_are_removed_and_a_broken_rules_file_means_asking(tmp_path):
    rules = tmp_path / "always-allow.json"
    add_window_rule(rules, "click", "Calculator")
    add_window_rule(rules, "click", "Editor")
    add_window_rule(rules, "scroll", "Editor")
    add_window_rule(rules, "click", "Editor")  # twice: kept once
    assert len(read_window_rules(rules)) == 3
    assert (rules.stat().st_mode & 0o777) == 0o600
    assert [r.window for r in remove_window_rules(rules, "click", "Editor")] == ["Editor"]
    assert [r.label() for r in remove_window_rules(rules, "click")] == ['click in "Calculator"']
    assert [r.label() for r in read_window_rules(rules)] == ['scroll in "Editor"']
    rules.write_text('{"rules": [{"tool": "click"}]}', encoding="utf-8")
    decision = Permissions(approver=lambda r: Answer.ONCE, rules_file=rules, config_file=tmp_path / "c.toml").check(
        "click", "", True, {}, scope="Calculator")
    assert decision.how == "approved" and "not a rules file written by the assistant" in decision.note


def test_a_window_title_is_shown_escaped():
    assert window_label("click", 'Evil\x1b]52;c;x\x07 "app"') == 'click in "Evil\\u001b]52;c;x\\u0007 \\"app\\""'
