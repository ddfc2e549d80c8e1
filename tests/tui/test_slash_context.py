"""The SlashContext plugins' /commands receive is one narrow interface: the TUI's and the testing kit's both
implement all of it, with the protocol's own parameters."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from assistant.hooktypes import SlashContext
from assistant.testing import SlashRecorder
from assistant.tui.context import AppSlashContext

METHODS = sorted(name for name, value in vars(SlashContext).items() if inspect.isfunction(value) and not name.startswith("_"))
ATTRIBUTES = sorted(SlashContext.__annotations__)


def test_the_protocol_is_what_the_docs_promise():
    assert ATTRIBUTES == ["chat", "plugin_manager", "profile"]
    assert METHODS == ["ask_password", "attach_document", "attach_image", "attach_text", "notify", "run_in_background",
                       "send", "show_progress"]


@pytest.mark.parametrize("implementation", [AppSlashContext, SlashRecorder])
def test_every_member_is_implemented_with_the_protocols_parameters(implementation):
    fields = {field.name for field in dataclasses.fields(implementation)} if dataclasses.is_dataclass(implementation) else set()
    for name in ATTRIBUTES:
        assert name in fields or isinstance(getattr(implementation, name, None), property), name
    for name in METHODS:
        ours = list(inspect.signature(getattr(implementation, name)).parameters)
        theirs = list(inspect.signature(getattr(SlashContext, name)).parameters)
        assert ours == theirs, name
