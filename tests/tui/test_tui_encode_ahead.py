"""Work while typing: an image attached in the TUI is prefilled at once (encoder and attention), so the reply only
prefills the question."""

from __future__ import annotations

from PIL import Image

from tests.tui.tuihelpers import SIZE, async_test, type_and_send, wait_for, wait_ready, wait_reply


@async_test
async def test_an_attached_image_is_prefilled_before_the_question_is_sent(make_app, tmp_path) -> None:
    picture = tmp_path / "shot.png"
    Image.new("RGB", (320, 240), (10, 120, 200)).save(picture)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        engine = app.assistant.engine
        cache = engine.vision_cache
        assert cache.enabled and len(cache) == 0 and engine.cache.turn is None
        app.composer.attach_image_files([picture])  # what /image PATH and a pasted path do
        await wait_for(pilot, lambda: engine.cache.turn is not None, "the attached image to be prefilled")
        prefilled = len(engine.cache.turn.token_ids)
        encoded_units, before = cache.misses, dict(engine.cache.stats)
        await type_and_send(pilot, "what is in the picture?")
        await wait_reply(pilot)
        assert app.chat_log.replies[-1].text
        assert cache.misses == encoded_units, "the encoder ran again"
        reused = engine.cache.stats["reused_tokens"] - before["reused_tokens"]
        assert reused >= prefilled - 10, "the question should reuse the prefilled image tokens"


@async_test
async def test_without_a_loaded_model_attaching_encodes_nothing(make_app, tmp_path) -> None:
    picture = tmp_path / "shot.png"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(picture)
    app = make_app(autoload=False)
    async with app.run_test(size=SIZE) as pilot:
        app.composer.attach_image_files([picture])
        await wait_for(pilot, lambda: app.composer.attachments.items, "the chip")
        assert not app.assistant.loaded  # attaching never loads the model behind the user's back
