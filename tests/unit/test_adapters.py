"""Adapters on disk and switching them on a loaded tiny model without reloading the base."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from assistant.adapters import (
    CHECKPOINTS_DIR,
    META_FILE,
    BaseModelRef,
    activate_adapter,
    adapter_dir,
    check_compatible,
    delete_adapter,
    list_adapters,
    new_meta,
    read_adapter,
    validate_adapter_name,
    write_meta,
)
from assistant.engine.engine import Engine
from assistant.engine.loading import load_model
from assistant.errors import AssistantError
from assistant.profiles import load_profile


def make_adapter(name: str, seed: int = 0, trained_on: str = "tiny-smolvlm") -> Path:
    """A real peft LoRA adapter (random, non-zero B so it changes the output) with our metadata."""
    from peft import LoraConfig, get_peft_model

    loaded = load_model(load_profile("tiny-smolvlm"))
    torch.manual_seed(seed)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(loaded.model, lora)
    path = adapter_dir(name)
    model.save_pretrained(str(path))
    meta = new_meta(name, BaseModelRef.from_profile(load_profile(trained_on), loaded.family))
    meta["status"] = "complete"
    write_meta(path, meta)
    return path


def logits(engine: Engine) -> torch.Tensor:
    tokenizer = engine.loaded.processor.tokenizer
    ids = tokenizer("What colour is the square?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return engine.loaded.model(input_ids=ids).logits


@pytest.mark.parametrize("name", ["style", "my-style_2", "A" * 64])
def test_good_names(name: str) -> None:
    assert validate_adapter_name(name) == name


@pytest.mark.parametrize("name", ["", "../up", "a b", "a.b", "-lead", "A" * 65, "é"])
def test_bad_names(name: str) -> None:
    with pytest.raises(AssistantError, match="not a usable adapter name"):
        validate_adapter_name(name)


def test_list_read_delete_and_statuses() -> None:
    assert list_adapters() == []
    make_adapter("done")
    unfinished = adapter_dir("unfinished")
    (unfinished / CHECKPOINTS_DIR / "step-000004").mkdir(parents=True)
    (unfinished / CHECKPOINTS_DIR / "step-000004" / "trainer_state.json").write_text("{}")
    (unfinished / CHECKPOINTS_DIR / ".step-000006.incomplete").mkdir()
    adapter_dir("empty").mkdir(parents=True)
    infos = {info.name: info for info in list_adapters()}
    assert {name: info.status for name, info in infos.items()} == {
        "done": "complete", "unfinished": "training", "empty": "broken"}
    assert infos["unfinished"].last_checkpoint == 4
    done = read_adapter("done")
    assert done.base.label == "tiny-smolvlm" and done.base.family == "idefics3" and done.size_bytes > 0
    assert json.loads(json.dumps(done.to_dict()))["name"] == "done"
    with pytest.raises(AssistantError, match=r"no adapter named 'nope' \(known: done, empty, unfinished\)"):
        read_adapter("nope")
    delete_adapter("done")
    assert not adapter_dir("done").exists()
    with pytest.raises(AssistantError, match="no adapter named 'done'"):
        delete_adapter("done")


def test_compatibility_names_the_base_it_needs() -> None:
    make_adapter("for-smol")
    info = read_adapter("for-smol")
    check_compatible(info, load_profile("tiny-smolvlm"))
    with pytest.raises(AssistantError, match=r"trained on tiny-smolvlm, but the loaded model is tiny-qwen2vl; "
                                             r"use a profile that runs tiny-smolvlm, e.g. `--profile tiny-smolvlm`"):
        check_compatible(info, load_profile("tiny-qwen2vl"))
    hub = load_profile("smolvlm-256m")
    hub_info = dataclasses.replace(info, base=BaseModelRef.from_profile(hub))
    check_compatible(hub_info, hub)
    pinned = dataclasses.replace(hub, model=dataclasses.replace(hub.model, revision="abc123"))
    with pytest.raises(AssistantError, match=r"loaded model is HuggingFaceTB/SmolVLM-256M-Instruct \(revision abc123\)"):
        check_compatible(hub_info, pinned)
    check_compatible(dataclasses.replace(info, base=BaseModelRef()), hub)  # no metadata: nothing to check


def test_switching_adapters_without_reloading_the_base(monkeypatch: pytest.MonkeyPatch) -> None:
    from peft import PeftModel

    first_path = make_adapter("first", seed=1)
    make_adapter("second", seed=2)
    engine = Engine(load_model(load_profile("tiny-smolvlm")))
    base_weights = engine.loaded.model.get_input_embeddings().weight
    invalidations = []
    monkeypatch.setattr(engine, "invalidate_cache", lambda: invalidations.append(1))
    base = logits(engine)

    activate_adapter(engine, "first")
    first = logits(engine)
    assert engine.loaded.adapter == "first" and not torch.allclose(first, base)
    # the same weights peft itself loads
    reference = PeftModel.from_pretrained(load_model(load_profile("tiny-smolvlm")).model, str(first_path))
    ids = engine.loaded.processor.tokenizer("What colour is the square?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(reference(input_ids=ids).logits, first)

    activate_adapter(engine, None)
    assert engine.loaded.adapter is None
    torch.testing.assert_close(logits(engine), base, rtol=0, atol=0)

    activate_adapter(engine, "second")
    second = logits(engine)
    assert not torch.allclose(second, first) and not torch.allclose(second, base)

    from assistant.engine import lora

    loads = []
    original = lora.load
    monkeypatch.setattr(lora, "load", lambda *a, **k: loads.append(a) or original(*a, **k))
    activate_adapter(engine, "first")  # already loaded: switched, not read again
    torch.testing.assert_close(logits(engine), first, rtol=0, atol=0)
    assert loads == [] and engine.loaded.model.get_input_embeddings().weight is base_weights
    assert len(invalidations) == 4

    make_adapter("first", seed=3)  # trained again under the same name: the new weights are loaded
    activate_adapter(engine, "first")
    assert len(loads) == 1 and not torch.allclose(logits(engine), first)


def test_refuses_other_base_and_unfinished_adapters() -> None:
    make_adapter("qwen-only", trained_on="tiny-qwen2vl")
    engine = Engine(load_model(load_profile("tiny-smolvlm")))
    with pytest.raises(AssistantError, match="trained on tiny-qwen2vl.*`--profile tiny-qwen2vl`"):
        activate_adapter(engine, "qwen-only")
    path = make_adapter("half")
    meta = json.loads((path / META_FILE).read_text())
    write_meta(path, dict(meta, status="training"))
    (path / CHECKPOINTS_DIR / "step-000010").mkdir(parents=True)
    (path / CHECKPOINTS_DIR / "step-000010" / "trainer_state.json").write_text("{}")
    with pytest.raises(AssistantError, match=r"not finished \(training stopped at step 10\).*--name half --resume"):
        activate_adapter(engine, "half")
    with pytest.raises(AssistantError, match="no adapter named 'ghost'"):
        activate_adapter(engine, "ghost")
    assert engine.loaded.adapter is None


def test_assistant_api_uses_the_adapter() -> None:
    from assistant.api import Assistant

    make_adapter("style")
    assistant = Assistant.from_profile("tiny-smolvlm", adapter="style")
    try:
        engine = assistant.engine
        assert engine.loaded.adapter == "style" and engine.info.adapter == "style"
        assistant.set_adapter(None)
        assert engine.loaded.adapter is None and assistant.adapter is None
    finally:
        assistant.close()


def test_an_adapter_that_does_not_fit_leaves_the_model_as_it_was() -> None:
    from peft import LoraConfig, get_peft_model

    make_adapter("good", seed=1)
    # a peft adapter for the other architecture, with no metadata (so only loading can find out)
    qwen = load_model(load_profile("tiny-qwen2vl")).model
    foreign = get_peft_model(qwen, LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False))
    foreign.save_pretrained(str(adapter_dir("foreign")))
    engine = Engine(load_model(load_profile("tiny-smolvlm")))
    activate_adapter(engine, "good")
    good = logits(engine)
    with pytest.raises(AssistantError, match="cannot load adapter .foreign. into tiny-smolvlm: .*no layer to go to"):
        activate_adapter(engine, "foreign")
    assert engine.loaded.adapter == "good"
    torch.testing.assert_close(logits(engine), good, rtol=0, atol=0)
