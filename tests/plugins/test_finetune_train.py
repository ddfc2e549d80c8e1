"""Training on the tiny models: peft format and metadata, resume equals an uninterrupted run, settings, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from assistant.adapters import CHECKPOINTS_DIR, META_FILE, adapter_dir, read_adapter
from assistant.engine.loading import load_model
from assistant.errors import AssistantError
from assistant.profiles import load_profile
from assistant.store import Store
from assistant_plugins.finetune.dataset import DataSelection
from assistant_plugins.finetune.modeling import lora_targets
from assistant_plugins.finetune.trainer import TrainConfig, TrainProgress, learning_rate, plan_steps, train_adapter
from test_finetune_support import add_chat, colour_chats


@pytest.fixture
def store() -> Store:
    with Store.open_default() as opened:
        yield opened


def config(name: str, **overrides) -> TrainConfig:
    values = dict(
        profile="tiny-smolvlm", selection=DataSelection(tag="colours"), epochs=2, lr=1e-3, batch_size=2,
        grad_accum=1, eval_split=0.0, checkpoint_every=2, seed=0,
    )
    values.update(overrides)
    return TrainConfig(name=name, **values)


def weights(name: str) -> dict[str, torch.Tensor]:
    return load_file(str(adapter_dir(name) / "adapter_model.safetensors"))


def stop_at(step: int, error: BaseException):
    def progress(event: TrainProgress) -> None:
        if event.phase == "training" and event.step == step and not event.message:
            raise error

    return progress


def files_under(path: Path) -> list[Path]:
    return [file for file in path.rglob("*") if file.is_file()]


def test_resume_after_a_crash_or_ctrl_c_matches_an_uninterrupted_run(store: Store) -> None:
    colour_chats(store, 6)
    straight = train_adapter(config("straight"), store=store)
    assert straight.status == "complete" and straight.step == 6  # 2 epochs x 3 batches of 2
    expected = weights("straight")

    # a crash after step 3: the checkpoint of step 2 survives, the run continues from there
    with pytest.raises(RuntimeError, match="power cut"):
        train_adapter(config("crashed"), progress=stop_at(3, RuntimeError("power cut")), store=store)
    crashed = adapter_dir("crashed")
    assert read_adapter("crashed").status == "training" and read_adapter("crashed").last_checkpoint == 2
    for file in files_under(crashed):  # never pickle: safetensors and JSON only
        assert file.suffix in (".safetensors", ".json"), file
    resumed = train_adapter(TrainConfig(name="crashed", resume=True), store=store)
    assert resumed.status == "complete"
    # Ctrl+C at step 5: a checkpoint of step 5 is written on the way out
    with pytest.raises(AssistantError, match=r"interrupted at step 5/6; a checkpoint was saved.*--resume"):
        train_adapter(config("ctrl-c"), progress=stop_at(5, KeyboardInterrupt()), store=store)
    assert read_adapter("ctrl-c").last_checkpoint == 5
    train_adapter(TrainConfig(name="ctrl-c", resume=True), store=store)

    for name in ("crashed", "ctrl-c"):
        got = weights(name)
        assert got.keys() == expected.keys() and expected
        for key, tensor in expected.items():
            torch.testing.assert_close(got[key], tensor, rtol=0, atol=1e-6)
        meta = json.loads((adapter_dir(name) / META_FILE).read_text())
        assert meta["history"] == pytest.approx(straight_history(), abs=1e-5)
        assert not (adapter_dir(name) / CHECKPOINTS_DIR).exists()
    # and the weights did move away from LoRA's zero start
    assert any(float(tensor.abs().max()) > 0 for key, tensor in expected.items() if "lora_B" in key)


def straight_history() -> list[float]:
    return json.loads((adapter_dir("straight") / META_FILE).read_text())["history"]


def test_adapter_is_standard_peft_with_metadata(store: Store) -> None:
    from peft import PeftModel

    chats = colour_chats(store, 4)
    add_chat(store, [("user", "q"), ("assistant", "rude", {"rating": -1})], ["colours"])
    events: list[TrainProgress] = []
    result = train_adapter(config("fmt", epochs=1, eval_split=0.25), progress=events.append, store=store)
    path = adapter_dir("fmt")
    assert {file.name for file in files_under(path)} == {
        "adapter_config.json", "adapter_model.safetensors", META_FILE, "README.md"}
    peft_config = json.loads((path / "adapter_config.json").read_text())
    assert peft_config["peft_type"] == "LORA" and peft_config["r"] == 16
    assert "model\\.text_model\\." in peft_config["target_modules"]  # the text model and, by default, the connector
    assert "model\\.connector\\.modality_projection\\.proj" in peft_config["target_modules"]
    meta = json.loads((path / META_FILE).read_text())
    assert meta["status"] == "complete"
    assert meta["base"] == {"profile": "tiny-smolvlm", "model": "", "local_build": "tiny-smolvlm", "revision": "",
                            "family": "idefics3"}
    assert meta["data"]["conversations"] == 3 and len(meta["data"]["held_out"]["chats"]) == 1
    assert meta["data"]["held_out"]["chats"][0] in chats
    assert meta["data"]["skipped"] == {"only rated-down replies": 1}
    assert len(meta["data"]["fingerprint"]) == 64
    assert meta["hyperparameters"]["lr"] == 1e-3 and meta["hyperparameters"]["seed"] == 0
    assert meta["metrics"]["eval_loss"] < meta["metrics"]["eval_loss_before"]
    assert set(meta["versions"]) == {"torch", "transformers", "peft"}
    assert result.metrics["steps"] == 2
    phases = [event.phase for event in events]
    assert phases[0] == "data" and phases[-1] == "done" and "training" in phases
    counts = next(event.stats for event in events if event.stats is not None)
    assert counts.conversations == 4 and counts.images == 4 and counts.tokens > counts.target_tokens > 0
    # loadable by peft itself, on the base model it names
    base = load_model(load_profile("tiny-smolvlm")).model
    tuned = PeftModel.from_pretrained(base, str(path))
    assert any("lora_A" in name for name, _ in tuned.named_parameters())


def test_lora_targets_stay_in_the_language_model_unless_asked(shared_cache) -> None:
    for profile, text_prefix, vision_prefix in [("tiny-smolvlm", "model.text_model.", "model.vision_model."),
                                                ("tiny-qwen2vl", "model.language_model.", "model.visual.")]:
        model = load_model(load_profile(profile)).model
        pattern, selected = lora_targets(model, ["q_proj", "v_proj", "down_proj"])
        assert selected and all(name.startswith(text_prefix) for name in selected)
        assert {name.rsplit(".", 1)[-1] for name in selected} == {"q_proj", "v_proj", "down_proj"}
        _, with_connector = lora_targets(model, ["q_proj"], include_connector=True)
        connector = [name for name in with_connector if not name.startswith(text_prefix)]
        assert connector == {"tiny-smolvlm": ["model.connector.modality_projection.proj"],
                             "tiny-qwen2vl": ["model.visual.merger.mlp.0", "model.visual.merger.mlp.2"]}[profile]
        _, with_vision = lora_targets(model, ["q_proj"], include_vision=True)
        assert any(name.startswith(vision_prefix) for name in with_vision)
        assert "lm_head" not in with_vision
        with pytest.raises(AssistantError, match="match no layer of the language model.*q_proj"):
            lora_targets(model, ["c_attn"])


def test_qwen2vl_trains_the_language_model_and_the_vision_side_on_request(store: Store) -> None:
    colour_chats(store, 2)
    result = train_adapter(config("qwen", profile="tiny-qwen2vl", epochs=1, include_connector=False), store=store)
    assert result.status == "complete" and read_adapter("qwen").base.family == "qwen2_vl"
    keys = weights("qwen").keys()
    assert keys and all(".language_model." in key for key in keys)
    train_adapter(config("qwen-connector", profile="tiny-qwen2vl", epochs=1), store=store)  # the default
    vision_side = {key for key in weights("qwen-connector") if ".language_model." not in key}
    assert vision_side and all(".visual.merger." in key for key in vision_side)
    train_adapter(config("qwen-vision", profile="tiny-qwen2vl", epochs=1, include_vision=True), store=store)
    keys = weights("qwen-vision").keys()
    assert any(".visual." in key for key in keys) and any(".language_model." in key for key in keys)


def test_gradient_checkpointing_saves_memory_not_results(store: Store) -> None:
    colour_chats(store, 4)
    train_adapter(config("plain", epochs=1), store=store)
    train_adapter(config("checkpointed", epochs=1, grad_checkpointing=True), store=store)
    plain, checkpointed = weights("plain"), weights("checkpointed")
    for key, tensor in plain.items():
        torch.testing.assert_close(checkpointed[key], tensor, rtol=1e-5, atol=1e-6)


def test_resume_refuses_changed_settings_or_data(store: Store) -> None:
    colour_chats(store, 4)
    stopped = train_adapter(config("piece", stop_after_steps=1), store=store)
    assert stopped.status == "stopped" and "--resume" in stopped.message
    with pytest.raises(AssistantError, match=r"--lr 0.5 differs from the interrupted run \(0.001\)"):
        train_adapter(TrainConfig(name="piece", resume=True, lr=0.5), store=store)
    with pytest.raises(AssistantError, match="trains profile tiny-smolvlm, not tiny-qwen2vl"):
        train_adapter(TrainConfig(name="piece", resume=True, profile="tiny-qwen2vl"), store=store)
    with pytest.raises(AssistantError, match="already exists.*--overwrite.*--resume"):
        train_adapter(config("piece"), store=store)
    add_chat(store, [("user", "new"), ("assistant", "chat")], ["colours"])
    with pytest.raises(AssistantError, match="training data changed since the interrupted run"):
        train_adapter(TrainConfig(name="piece", resume=True, checkpoint_every=1), store=store)
    with pytest.raises(AssistantError, match="nothing to resume: adapter 'other' has no checkpoint"):
        train_adapter(TrainConfig(name="other", resume=True), store=store)
    replaced = train_adapter(config("piece", epochs=1, overwrite=True), store=store)
    assert replaced.status == "complete"
    with pytest.raises(AssistantError, match="already complete"):
        train_adapter(TrainConfig(name="piece", resume=True), store=store)


def test_should_stop_saves_a_checkpoint(store: Store) -> None:
    colour_chats(store, 4)
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) > 2

    result = train_adapter(config("paused"), should_stop=should_stop, store=store)
    assert (result.status, result.step) == ("stopped", 2)
    assert read_adapter("paused").last_checkpoint == 2
    assert train_adapter(TrainConfig(name="paused", resume=True), store=store).status == "complete"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_4bit_needs_cuda(store: Store) -> None:
    colour_chats(store, 2)
    with pytest.raises(AssistantError, match="--4bit needs a CUDA GPU"):
        train_adapter(config("quantised", four_bit=True), store=store)


def test_out_of_memory_becomes_advice(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant_plugins.finetune import modeling

    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(modeling, "batch_loss", exhausted)
    colour_chats(store, 2)
    with pytest.raises(AssistantError) as error:
        train_adapter(config("big"), store=store)
    message = str(error.value)
    assert message.startswith("out of memory while training")
    for advice in ("--4bit", "smaller --batch-size than 2", "--grad-checkpointing", "lower image resolution"):
        assert advice in message


def test_plan_and_learning_rate() -> None:
    plan = plan_steps(5, batch_size=2, grad_accum=2, epochs=2, seed=1)
    assert [epoch for epoch, _ in plan] == [0, 0, 1, 1]
    for epoch in (0, 1):
        seen = [index for e, batches in plan if e == epoch for batch in batches for index in batch]
        assert sorted(seen) == list(range(5))
    assert plan == plan_steps(5, batch_size=2, grad_accum=2, epochs=2, seed=1)
    assert plan != plan_steps(5, batch_size=2, grad_accum=2, epochs=2, seed=2)
    rates = [learning_rate(step, 10, 1.0, 2) for step in range(10)]
    assert rates[:3] == [0.5, 1.0, 1.0] and rates[-1] == pytest.approx(0.125)
    assert all(rate > 0 for rate in rates) and rates == sorted(rates[:2]) + sorted(rates[2:], reverse=True)


def test_chats_longer_than_the_context_are_skipped_with_a_warning(store: Store) -> None:
    from assistant.paths import user_paths

    profiles = user_paths().profiles_dir
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / "tiny-short.toml").write_text(
        '[model]\nlocal_build = "tiny-smolvlm"\ndtype = "float32"\ndevice = "cpu"\n\n[chat]\ncontext_limit = 60\n'
    )
    colour_chats(store, 2)  # a picture alone is more than 60 tokens
    with pytest.raises(AssistantError, match="no usable training examples left \\(2 more tokens than the model's context"):
        train_adapter(config("short", profile="tiny-short"), store=store)
    add_chat(store, [("user", "Hi"), ("assistant", "Hello")], ["colours"])
    events: list[TrainProgress] = []
    result = train_adapter(config("short", profile="tiny-short", epochs=1), progress=events.append, store=store)
    assert result.status == "complete" and result.metrics["train_examples"] == 1
    stats = next(event.stats for event in events if event.stats is not None)
    assert stats.summary().startswith("1 conversation, 1 assistant turn, 0 images")
    assert "skipped 2 chats: more tokens than the model's context" in stats.warnings()


def test_qlora_path_quantises_the_language_model_only(store: Store) -> None:
    """The --4bit code path (NF4 load, prepare_model_for_kbit_training, LoRA, one step), on bitsandbytes' CPU backend.

    CUDA is what `--4bit` needs in use; this checks the glue wherever bitsandbytes can quantise on the CPU.
    """
    bnb = pytest.importorskip("bitsandbytes")
    from assistant_plugins.finetune.collate import Encoder
    from assistant_plugins.finetune.modeling import batch_loss, load_4bit
    from assistant_plugins.finetune.trainer import lora_model as _peft_model, resolve_settings

    profile = load_profile("tiny-smolvlm")
    try:
        loaded = load_4bit(profile, device="cpu")
    except (RuntimeError, NotImplementedError, ValueError) as error:  # no CPU kernels in this bitsandbytes
        pytest.skip(f"bitsandbytes cannot quantise on this CPU: {error}")
    model = loaded.model
    assert isinstance(model.model.text_model.layers[0].self_attn.q_proj, bnb.nn.Linear4bit)
    assert type(model.model.vision_model.encoder.layers[0].self_attn.q_proj) is torch.nn.Linear
    assert type(model.lm_head) is torch.nn.Linear
    settings = resolve_settings(TrainConfig(name="q", four_bit=True, rank=4, grad_checkpointing=True), profile)
    tuned = _peft_model(loaded, settings)
    colour_chats(store, 1)
    from assistant_plugins.finetune.dataset import build_dataset

    dataset = build_dataset(store, DataSelection())
    batch = Encoder(loaded, dataset.images.open).encode(dataset.examples)
    loss, tokens = batch_loss(tuned, batch, loaded)
    loss.backward()
    assert tokens > 0 and torch.isfinite(loss)
    trainable = {name: parameter for name, parameter in tuned.named_parameters() if parameter.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    # the language model's layers and (by default) the unquantised connector; nothing of the vision tower
    assert all(".text_model." in name or ".connector." in name for name in trainable)
    assert any(".connector." in name for name in trainable) and any(".text_model." in name for name in trainable)
    assert any(float(parameter.grad.abs().sum()) > 0 for parameter in trainable.values())
