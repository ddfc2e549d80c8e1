"""Issue 22.15: key bindings no keyboard can send, or that would fire while the user types, are refused (the
default is kept and the problem shown once at start-up)."""

from __future__ import annotations

import pytest

from assistant.tui.config import KEY_SPECS, load_tui_config, parse_tui_config


@pytest.mark.parametrize(
    "binding, key, why",
    [
        ("quit", "banana", "not a key name"),
        ("send", "nonsense+key", "nonsense is not ctrl"),
        ("quit", "e", "types text"),  # typing "hello" would quit and lose the text
        ("new_chat", "shift+n", "types text"),
        ("toggle_sidebar", "space", "types text"),
        ("delete_chat", "x", "types text"),  # the chat list's letters go to its search box
        ("stop", "escape,q", "types text"),  # one bad key in a list refuses the list
    ],
)
def test_impossible_or_typing_keys_are_refused_and_the_default_kept(binding, key, why):
    config = parse_tui_config({"keys": {binding: key}})
    assert binding not in config.keys
    (problem,) = config.problems
    assert why in problem and binding in problem and "default is kept" in problem


@pytest.mark.parametrize(
    "binding, key", [("quit", "ctrl+w"), ("send", "ctrl+enter"), ("toggle_sidebar", "f9"), ("copy_reply", "y"),
                     ("palette", "ctrl+comma"), ("new_chat", "alt+n")]
)
def test_real_keys_are_accepted(binding, key):
    config = parse_tui_config({"keys": {binding: key}})
    assert config.keys[binding] == key and config.problems == []


def test_every_default_binding_passes_its_own_check():
    assert parse_tui_config({"keys": {spec.id: spec.keys for spec in KEY_SPECS}}).problems == []


def test_a_config_file_with_a_typing_key_still_loads(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[keys]\nquit = "e"\n[tui]\ntheme = "nord"\n')
    config = load_tui_config(path)
    assert config.keys_for("quit") == "ctrl+q" and config.theme == "nord" and len(config.problems) == 1
