"""Helpers shared by the fine-tuning tests (a synthetic coloured-squares task, chats in a real store), and their tests."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Sequence

from PIL import Image, ImageDraw

from assistant.conversation import Message, TextPart
from assistant.images import image_from_pil
from assistant.store import Store

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (40, 60, 220),
    "yellow": (235, 215, 40),
}
QUESTION = "What colour is the square?"


def square(colour: str, rng: random.Random) -> Image.Image:
    """A light background of random size with a square of `colour` (jittered) somewhere on it."""
    width, height = rng.randint(40, 80), rng.randint(40, 80)
    image = Image.new("RGB", (width, height), tuple(rng.randint(200, 255) for _ in range(3)))
    side = rng.randint(int(min(width, height) * 0.5), int(min(width, height) * 0.8))
    left, top = rng.randint(0, width - side), rng.randint(0, height - side)
    fill = tuple(max(0, min(255, value + rng.randint(-25, 25))) for value in COLOURS[colour])
    ImageDraw.Draw(image).rectangle([left, top, left + side, top + side], fill=fill)
    return image


def write_colour_dataset(folder: Path, name: str, per_colour: int, seed: int) -> Path:
    """A TRL conversational jsonl (`messages` + `images`, paths relative to the file) of the colour task."""
    rng = random.Random(seed)
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for colour in COLOURS:
        for index in range(per_colour):
            relative = f"images/{name}-{colour}-{index}.png"
            square(colour, rng).save(folder / relative)
            records.append(
                {
                    "messages": [
                        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]},
                        {"role": "assistant", "content": [{"type": "text", "text": colour}]},
                    ],
                    "images": [relative],
                }
            )
    rng.shuffle(records)
    path = folder / f"{name}.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def add_chat(store: Store, turns: Sequence[Any], tags: Sequence[str] = ()) -> int:
    """A saved chat from (role, text) / (role, text, {"image": PIL, "rating": 1, "correction": "..."}) tuples."""
    conversation = store.create_conversation(tags=list(tags))
    assert conversation.id is not None
    for turn in turns:
        role, text = turn[0], turn[1]
        options = turn[2] if len(turn) > 2 else {}
        parts: list[Any] = []
        if "image" in options:
            parts.append(store.put_image(image_from_pil(options["image"], "square.png")))
        if text:
            parts.append(TextPart(text))
        message = Message(role=role, parts=parts, status=options.get("status", "ok"))
        store.add_message(conversation.id, message)
        if "rating" in options:
            store.set_rating(message.id, options["rating"])  # type: ignore[arg-type]
        if "correction" in options:
            store.set_correction(message.id, options["correction"])  # type: ignore[arg-type]
    return conversation.id


def colour_chats(store: Store, count: int, seed: int = 0, tag: str = "colours") -> list[int]:
    """`count` saved one-turn colour chats, colours in turn."""
    rng = random.Random(seed)
    names = list(COLOURS)
    ids = []
    for index in range(count):
        colour = names[index % len(names)]
        ids.append(add_chat(store, [("user", QUESTION, {"image": square(colour, rng)}), ("assistant", colour)], [tag]))
    return ids


def test_colour_dataset_is_deterministic_and_relative(tmp_path: Path) -> None:
    first = write_colour_dataset(tmp_path / "a", "train", 2, seed=5)
    second = write_colour_dataset(tmp_path / "b", "train", 2, seed=5)
    assert first.read_text() == second.read_text()
    records = [json.loads(line) for line in first.read_text().splitlines()]
    assert len(records) == 8
    assert {record["messages"][1]["content"][0]["text"] for record in records} == set(COLOURS)
    for record in records:
        assert not Path(record["images"][0]).is_absolute()
        assert (first.parent / record["images"][0]).is_file()
