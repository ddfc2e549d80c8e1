"""/train in the TUI: it trains the running TUI's profile, and a failed run says failed (with why), never done."""

from __future__ import annotations

from pathlib import Path

from assistant.adapters import read_adapter
from assistant.tui.screens.progress import ProgressScreen
from tests.tui.tuihelpers import SIZE, async_test, notes, saved_chat, type_and_send, wait_for

TRAIN = "--epochs 1 --batch-size 2 --grad-accum 1 --eval-split 0 --lr 1e-3"


def label_text(app, selector: str) -> str:
    return str(app.screen.query_one(selector).render())


@async_test
async def test_train_uses_the_profile_the_tui_runs(make_app, store, cat_png):
    chats = [saved_chat(store, f"Cat {n}", "what is in the picture?", "An orange square.", image=cat_png) for n in range(2)]
    app = make_app("tiny-smolvlm", autoload=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.commands.get("train") is not None, "the plugin commands")
        await type_and_send(pilot, f"/train --name mine --chats {','.join(map(str, chats))} {TRAIN}")
        await wait_for(pilot, lambda: isinstance(app.screen, ProgressScreen), "the progress screen")
        await wait_for(pilot, lambda: any("adapter mine is ready" in n for n in notes(app)) or notes(app, "error"),
                       "the training to end", timeout=300)
        assert notes(app, "error") == []
        info = read_adapter("mine")
        assert info.complete and info.base.profile == "tiny-smolvlm"  # not the default smolvlm-256m
        await wait_for(pilot, lambda: label_text(app, "#progress-title").endswith("— done"), "the screen to say done")
        assert "adapter mine is ready" in label_text(app, "#progress-status")


@async_test
async def test_a_failed_train_says_failed_with_the_reason(make_app, store, cat_png, tmp_path):
    missing = tmp_path / "no-such-model"
    profile = tmp_path / "broken-local.toml"
    profile.write_text(f'[model]\nid = "{missing}"\ndevice = "cpu"\ndtype = "float32"\n', encoding="utf-8")
    chats = [saved_chat(store, f"Cat {n}", "what is in the picture?", "An orange square.", image=cat_png) for n in range(2)]
    app = make_app(profile, autoload=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.commands.get("train") is not None, "the plugin commands")
        assert app.assistant is not None and app.assistant.profile.name == "broken-local"
        await type_and_send(pilot, f"/train --name broken --chats {','.join(map(str, chats))} {TRAIN}")
        await wait_for(pilot, lambda: isinstance(app.screen, ProgressScreen), "the progress screen")
        await wait_for(pilot, lambda: notes(app, "error"), "the failure", timeout=300)
        assert str(missing) in notes(app, "error")[0]  # the TUI's profile was the one loaded
        await wait_for(pilot, lambda: "failed" in label_text(app, "#progress-title"), "the screen to say failed")
        title, status = label_text(app, "#progress-title"), label_text(app, "#progress-status")
        assert title == "Training adapter broken — failed" and "done" not in title
        assert status.startswith("failed: ") and str(missing) in status and "loading" not in status
        assert app.screen.query_one("#progress-stop").disabled
        await pilot.press("escape")
        assert app.is_running and not Path(str(missing)).exists()


def test_train_refuses_when_the_tui_runs_another_model_than_its_profile(tmp_path):
    """Started with --model, the TUI runs a model its profile does not name: /train says so instead of training
    the profile's model (an adapter the running model could not use)."""
    import pytest

    from assistant.errors import AssistantError
    from assistant.plugins import create_plugin_manager
    from assistant.profiles import load_profile
    from assistant.testing import SlashRecorder

    context = SlashRecorder(create_plugin_manager(load_entry_points=False),
                            profile=load_profile("tiny-smolvlm").with_model(str(tmp_path / "other-model")))
    train = {c.name: c for c in context.plugin_manager.collect("register_slash_commands")}["train"]
    with pytest.raises(AssistantError, match="but this TUI runs .*other-model.*restart without --model"):
        train.run(context, "--name other")
    assert context.notes == [] and context.progress == []  # nothing started
