"""Helpers shared by the fine-tuning tests (a synthetic coloured-squares task, chats in a real store), and their tests."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

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


def _background(rng: random.Random, low: int = 200) -> tuple[int, int, int]:
    return tuple(rng.randint(low, 255) for _ in range(3))  # type: ignore[return-value]


def _jitter(colour: tuple[int, int, int], rng: random.Random, amount: int = 25) -> tuple[int, int, int]:
    return tuple(max(0, min(255, value + rng.randint(-amount, amount))) for value in colour)  # type: ignore[return-value]


def brighter_half(answer: str, rng: random.Random) -> Image.Image:
    """Left and right halves of different grey levels (jittered per pixel block); `answer` is the brighter one."""
    width, height = rng.randint(40, 80), rng.randint(40, 80)
    bright, dark = rng.randint(150, 240), rng.randint(20, 110)
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    left, right = (bright, dark) if answer == "left" else (dark, bright)
    for x0, level in ((0, left), (width // 2, right)):
        tint = tuple(max(0, min(255, level + rng.randint(-20, 20))) for _ in range(3))
        draw.rectangle([x0, 0, x0 + width // 2, height], fill=tint)
    return image


LARGER_COLOURS = ("red", "green", "blue")


def larger_shape(answer: str, rng: random.Random) -> Image.Image:
    """Two shapes (squares or circles) of different colours; the one of colour `answer` is clearly larger."""
    width, height = rng.randint(60, 90), rng.randint(60, 90)
    image = Image.new("RGB", (width, height), _background(rng))
    draw = ImageDraw.Draw(image)
    other = rng.choice([name for name in LARGER_COLOURS if name != answer])
    big = rng.randint(int(min(width, height) * 0.45), int(min(width, height) * 0.6))
    small = rng.randint(int(big * 0.3), int(big * 0.5))
    big_left = rng.choice([True, False])
    slots = [(2, width // 2 - 2), (width // 2 + 2, width - 2)]
    for colour, side, (start, stop) in ((answer, big, slots[0 if big_left else 1]), (other, small, slots[1 if big_left else 0])):
        side = min(side, stop - start)
        left = rng.randint(start, max(start, stop - side))
        top = rng.randint(0, height - side)
        box = [left, top, left + side, top + side]
        fill = _jitter(COLOURS[colour], rng)
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    return image


def dots(answer: str, rng: random.Random, radii: tuple[int, int] = (8, 8), sizes: tuple[int, int] = (64, 64)) -> Image.Image:
    """`answer` (1, 2 or 3) dark dots at random places that do not touch: by default all of one size on a
    64-pixel square (the sweep's count task); `radii`/`sizes` widen the ranges (dots_mixed)."""
    width, height = rng.randint(*sizes), rng.randint(*sizes)
    image = Image.new("RGB", (width, height), _background(rng))
    draw = ImageDraw.Draw(image)
    placed: list[tuple[int, int, int]] = []
    while len(placed) < int(answer):
        radius = rng.randint(*radii)
        x, y = rng.randint(radius, width - radius - 1), rng.randint(radius, height - radius - 1)
        if all((x - px) ** 2 + (y - py) ** 2 > (radius + pr + 3) ** 2 for px, py, pr in placed):
            placed.append((x, y, radius))
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=_jitter((40, 40, 60), rng, 30))
    return image


def dots_mixed(answer: str, rng: random.Random) -> Image.Image:
    """Dots of radius 5-9 on images of 50-80 pixels a side: the area of dark no longer tells the count
    (docs/finetuning.md: out of reach for 48 examples on the tiny random model)."""
    return dots(answer, rng, radii=(5, 9), sizes=(50, 80))


@dataclass(frozen=True)
class Task:
    """A synthetic one-turn image question with a short answer from a fixed set (chance is 1 / len(answers))."""

    name: str
    question: str
    answers: tuple[str, ...]
    draw: Callable[[str, random.Random], Image.Image]


TASKS: dict[str, Task] = {
    "colour": Task("colour", QUESTION, tuple(COLOURS), square),
    "brighter": Task("brighter", "Which half of the image is brighter?", ("left", "right"), brighter_half),
    "larger": Task("larger", "What colour is the larger shape?", LARGER_COLOURS, larger_shape),
    "count": Task("count", "How many dots are there?", ("1", "2", "3"), dots),
    "count-mixed": Task("count-mixed", "How many dots are there?", ("1", "2", "3"), dots_mixed),
}
"""The colour task of the learning test and the three tasks of the defaults sweep (docs/finetuning.md)."""


def write_task_dataset(folder: Path, name: str, task: Task | str, per_answer: int, seed: int) -> Path:
    """A TRL conversational jsonl (`messages` + `images`, paths relative to the file) of a synthetic task."""
    task = TASKS[task] if isinstance(task, str) else task
    rng = random.Random(seed)
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for answer in task.answers:
        for index in range(per_answer):
            relative = f"images/{name}-{answer}-{index}.png"
            task.draw(answer, rng).save(folder / relative)
            records.append(
                {
                    "messages": [
                        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": task.question}]},
                        {"role": "assistant", "content": [{"type": "text", "text": answer}]},
                    ],
                    "images": [relative],
                }
            )
    rng.shuffle(records)
    path = folder / f"{name}.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def write_colour_dataset(folder: Path, name: str, per_colour: int, seed: int) -> Path:
    """The colour task as a TRL jsonl (what the learning test imports)."""
    return write_task_dataset(folder, name, "colour", per_colour, seed)


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


def test_every_task_draws_each_answer_deterministically(tmp_path: Path) -> None:
    for task in TASKS.values():
        first = write_task_dataset(tmp_path / "a", task.name, task, 2, seed=3)
        second = write_task_dataset(tmp_path / "b", task.name, task, 2, seed=3)
        assert first.read_text() == second.read_text()
        records = [json.loads(line) for line in first.read_text().splitlines()]
        assert sorted(record["messages"][1]["content"][0]["text"] for record in records) == sorted(task.answers * 2)
        assert {record["messages"][0]["content"][1]["text"] for record in records} == {task.question}


def test_task_images_carry_their_answer() -> None:
    rng = random.Random(0)
    for _ in range(10):
        image = brighter_half("left", rng).convert("L")
        width, height = image.size
        left = sum(image.crop((0, 0, width // 2, height)).get_flattened_data()) / (width // 2 * height)
        right = sum(image.crop((width // 2 + 1, 0, width, height)).get_flattened_data()) / ((width - width // 2 - 1) * height)
        assert left > right + 30
    for count, draw in ((count, draw) for count in ("1", "2", "3") for draw in (dots, dots_mixed)):
        image = draw(count, rng).convert("L")
        dark = [value < 120 for value in image.get_flattened_data()]
        assert sum(dark) > 0
        regions = _dark_regions(image)
        assert regions == int(count)
    for _ in range(10):
        image = larger_shape("green", rng)
        pixels = list(image.get_flattened_data())
        green = sum(1 for r, g, b in pixels if g > 120 and r < 100 and b < 100)
        others = sum(1 for r, g, b in pixels if (r > 150 and g < 100) or (b > 150 and r < 100 and g < 120))
        assert green > others > 0


def _dark_regions(image: Image.Image) -> int:
    """Connected dark regions (4-neighbour flood fill) of a greyscale image."""
    width, height = image.size
    data = image.load()
    seen: set[tuple[int, int]] = set()
    regions = 0
    for y in range(height):
        for x in range(width):
            if (x, y) in seen or data[x, y] >= 120:
                continue
            regions += 1
            stack = [(x, y)]
            while stack:
                px, py = stack.pop()
                if (px, py) in seen or not (0 <= px < width and 0 <= py < height) or data[px, py] >= 120:
                    continue
                seen.add((px, py))
                stack += [(px + 1, py), (px - 1, py), (px, py + 1), (px, py - 1)]
    return regions
