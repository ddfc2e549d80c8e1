"""transformers' private API the engine relies on is still there, and only engine/hf_private.py reaches it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from assistant.engine import hf_private

ROOT = Path(__file__).resolve().parents[2]
PRIVATE_USES = {
    r"(?<!self)\._prefill\(": "GenerationMixin._prefill",  # (the TUI has a _prefill of its own)
    r"(model|inner)\.rope_deltas\b|[\"']rope_deltas[\"']": "Qwen2-VL's rope_deltas",  # (CachedTurn has one)
    r"\.get_rope_index\(": "Qwen2-VL's get_rope_index",
    r"[\"']custom_generate[\"']": "generate(custom_generate=...)",
    r"\blayers?\.(keys|values)\b": "DynamicCache layer storage",
    r"GenerateDecoderOnlyOutput": "generate's output class",
}


def test_this_transformers_still_has_what_the_engine_relies_on():
    """When this fails, transformers changed a private API: adapt engine/hf_private.py (the fast decode step is
    off until then, so replies stay right, only slower)."""
    assert hf_private.problems() == []


def test_a_change_in_transformers_is_named(monkeypatch):
    from transformers import DynamicCache, GenerationMixin

    monkeypatch.delattr(GenerationMixin, "_prefill")
    monkeypatch.setattr(DynamicCache, "layers", property(lambda self: [object()]), raising=False)
    found = hf_private.problems()
    assert any("GenerationMixin._prefill is gone" in line for line in found), found
    assert any("DynamicCache no longer keeps layers with .keys/.values" in line for line in found), found
    assert all(line.startswith("transformers ") for line in found)


def test_the_fast_step_steps_aside_when_transformers_changed(monkeypatch):
    from assistant.engine import decoding

    monkeypatch.setattr(decoding, "_private_api_problems", lambda: ("transformers 9.9: GenerationMixin._prefill is gone",))
    assert decoding.unsupported_reason(object(), "cpu") == "transformers 9.9: GenerationMixin._prefill is gone"


@pytest.mark.parametrize("pattern", sorted(PRIVATE_USES))
def test_no_other_module_reaches_the_private_api(pattern):
    own = ROOT / "assistant" / "engine" / "hf_private.py"
    offenders = []
    for path in sorted([*(ROOT / "assistant").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]):
        if path == own:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(pattern, code) and not code.lstrip().startswith(('"', "'")):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == [], f"{PRIVATE_USES[pattern]} outside engine/hf_private.py"
