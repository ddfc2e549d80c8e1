"""Grounding inside a chat: replies are parsed against the chat's image, /ground and /zoom work end to end."""

from __future__ import annotations


import pytest

from assistant import Assistant, AssistantError
from assistant.conversation import Message, ReplyMeta, TextPart
from assistant.plugins import create_plugin_manager
from assistant.testing import SlashRecorder
from assistant_plugins.grounding.slash import ground_command, zoom_command
from tests.helpers import make_image


@pytest.fixture
def context(tmp_path):
    bot = Assistant.from_profile("tiny-smolvlm", plugins=create_plugin_manager(load_entry_points=False))
    ctx = SlashRecorder(bot.plugins, assistant=bot)
    ctx.chat.ask("Look at this", images=[make_image(tmp_path / "ui.png", (400, 300), "green")], max_new_tokens=2)
    return ctx


def test_ground_on_the_random_model_says_no_boxes_found(context):
    ground_command(context, "the green square")
    reply = context.replies[-1]
    question = context.chat.messages[-2].text
    assert "the green square" in question and "bbox_2d" in question  # the profile's json1000 prompt
    assert "no boxes found" in reply.footer()
    assert "grounding" not in context.chat.messages[-1].meta.extra


def test_reply_with_boxes_is_parsed_stored_and_zoomable(context):
    chat = context.chat
    store = chat.assistant.store
    # A reply as a grounding-capable model would write it (json1000: 0-1000 relative coordinates).
    text = '```json\n[{"bbox_2d": [250, 250, 750, 750], "label": "green square"}]\n```'
    from assistant.grounding import ground_reply

    grounding = ground_reply(chat, text)
    assert grounding is not None and len(grounding.shapes) == 1
    box = grounding.shapes[0]
    assert (round(box.x1), round(box.y1), round(box.x2), round(box.y2)) == (100, 75, 300, 225)
    # Stored the way ReplyStream stores it, then /zoom crops the original.
    from assistant.geometry import shape_to_dict

    message = store.add_message(
        chat.id,
        Message(
            role="assistant",
            parts=[TextPart(text)],
            meta=ReplyMeta(extra={"grounding": {"image": chat.conversation.images[0].sha256,
                                                "shapes": [shape_to_dict(box)]}}),
        ),
    )
    chat.conversation.messages.append(message)
    zoom_command(context, "1")
    (crop, source), = context.images
    assert "zoom of box 1" in source
    assert crop.getpixel((crop.width // 2, crop.height // 2)) == (0, 128, 0)
    with pytest.raises(AssistantError, match="there is no box 2"):
        zoom_command(context, "2")


def test_zoom_finds_boxes_in_an_imported_reply(context, tmp_path):
    """A chat imported from a dataset file has no stored grounding: /zoom parses the reply's own text."""
    import json

    from assistant import Chat
    from assistant_plugins.finetune.formats import import_file

    make_image(tmp_path / "data" / "shot.png", (400, 300), "blue")
    reply = '```json\n[{"bbox_2d": [250, 250, 750, 750], "label": "blue square"}]\n```'
    record = {"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "where?"}]},
                           {"role": "assistant", "content": [{"type": "text", "text": reply}]}],
              "images": ["shot.png"]}
    dataset = tmp_path / "data" / "grounded.jsonl"
    dataset.write_text(json.dumps(record) + "\n", encoding="utf-8")
    store = context.chat.assistant.store
    [chat_id] = import_file(store, dataset).conversation_ids
    imported = store.get_conversation(chat_id)
    assert not (imported.messages[-1].meta and imported.messages[-1].meta.extra.get("grounding"))
    context.chat = Chat(context.chat.assistant, imported)
    zoom_command(context, "1")
    (crop, source), = context.images
    assert source.startswith("zoom of box 1 in ")
    assert crop.getpixel((crop.width // 2, crop.height // 2)) == (0, 0, 255)
    with pytest.raises(AssistantError, match="there is no box 2"):
        zoom_command(context, "2")


def test_zoom_without_boxes_and_ground_without_thing(context):
    with pytest.raises(AssistantError, match="no boxes to zoom into yet"):
        zoom_command(context, "1")
    with pytest.raises(AssistantError, match="usage: /ground THING"):
        ground_command(context, "  ")


def test_qwen_reply_grounding_uses_special_tokens(tmp_path):
    """Qwen2-VL boxes live between special tokens that skip_special_tokens removes: parse the raw text."""
    bot = Assistant.from_profile("tiny-qwen2vl", plugins=create_plugin_manager(load_entry_points=False))
    chat = bot.chat()
    reply = chat.ask("Find it", images=[make_image(tmp_path / "q.png", (500, 400))], max_new_tokens=4)
    assert reply.status == "ok"
    from assistant.grounding import ground_reply

    raw = "<|object_ref_start|>the square<|object_ref_end|><|box_start|>(250,250),(750,750)<|box_end|>"
    (box,) = ground_reply(chat, raw).shapes
    assert (round(box.x1), round(box.y1), round(box.x2), round(box.y2)) == (125, 100, 375, 300)


def test_prompt_records_the_size_the_model_saw_each_image(tmp_path):
    """Qwen2-VL: the prompt's patch grid gives each image's input size, the same as processing it alone."""
    from assistant.engine.inputs import build_inputs, model_input_size

    bot = Assistant.from_profile("tiny-qwen2vl", plugins=create_plugin_manager(load_entry_points=False))
    chat = bot.chat()
    chat.ask("One", images=[make_image(tmp_path / "a.png", (500, 400))], max_new_tokens=2)
    chat.ask("Two", images=[make_image(tmp_path / "b.png", (300, 700), "blue")], max_new_tokens=2)
    loaded = bot.engine.loaded
    inputs = build_inputs(loaded, chat.messages, bot.store.open_image)
    parts = chat.conversation.images
    assert list(inputs.input_sizes) == [part.sha256 for part in parts]
    for part in parts:
        assert inputs.input_sizes[part.sha256] == model_input_size(loaded, bot.store.open_image(part))
    assert inputs.input_sizes[parts[0].sha256] != inputs.input_sizes[parts[1].sha256]
