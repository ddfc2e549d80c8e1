"""Small benchmark files in each `assistant eval` format, built in the test (nothing downloaded): MMBench TSV
with base64 images, MMMU JSON and parquet, DocVQA JSON with document images, ScreenSpot JSON, our JSONL."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

MMBENCH_COLUMNS = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "split"]


def png_bytes(colour: str = "red", size: tuple[int, int] = (64, 48)) -> bytes:
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).rectangle([size[0] // 4, size[1] // 4, 3 * size[0] // 4, 3 * size[1] // 4], fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def b64(colour: str = "red") -> str:
    return base64.b64encode(png_bytes(colour)).decode()


def mmbench_row(index: int, answer: str = "A", category: str = "colour", image: str | None = None,
                options: tuple[str, ...] = ("red", "green", "blue", "yellow"), hint: str = "") -> dict[str, Any]:
    row = {"index": index, "question": "What colour is the square?", "hint": hint, "answer": answer,
           "category": category, "image": b64() if image is None else image, "split": "dev"}
    for letter, text in zip("ABCD", (*options, "", "", "", "")):
        row[letter] = text
    return row


def write_mmbench(path: Path, rows: list[dict[str, Any]], columns: list[str] = MMBENCH_COLUMNS) -> Path:
    lines = ["\t".join(columns)]
    lines += ["\t".join(str(row.get(column, "")) for column in columns) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def mmmu_rows(count: int = 3) -> list[dict[str, Any]]:
    rows = []
    for n in range(count):
        rows.append({
            "id": f"validation_Art_Theory_{n + 1}" if n % 2 == 0 else f"validation_Math_{n + 1}",
            "question": "Which colour fills <image 1>, compared with <image 2>?",
            "options": "['red', 'green', 'blue']",
            "answer": "ABC"[n % 3],
            "question_type": "multiple-choice",
            "image_1": {"bytes": png_bytes("red"), "path": "a.png"},
            "image_2": {"bytes": png_bytes("blue"), "path": "b.png"},
            "image_3": None,
        })
    return rows


def write_mmmu_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_mmmu_json(path: Path, rows: list[dict[str, Any]]) -> Path:
    """The JSON variant: images as paths next to the file."""
    out = []
    for n, row in enumerate(rows):
        copy = dict(row)
        for key in ("image_1", "image_2", "image_3"):
            value = copy.get(key)
            if isinstance(value, dict):
                name = f"{n}-{key}.png"
                (path.parent / name).write_bytes(value["bytes"])
                copy[key] = name
        out.append(copy)
    path.write_text(json.dumps(out), encoding="utf-8")
    return path


def write_docvqa(path: Path, entries: list[tuple[str, list[str]]]) -> Path:
    folder = path.parent / "documents"
    folder.mkdir(parents=True, exist_ok=True)
    data = []
    for n, (question, answers) in enumerate(entries, start=1):
        (folder / f"doc{n}.png").write_bytes(png_bytes("black", (120, 160)))
        data.append({"questionId": 100 + n, "question": question, "image": f"documents/doc{n}.png",
                     "docId": n, "answers": answers, "question_types": ["form"]})
    path.write_text(json.dumps({"dataset_name": "docvqa", "dataset_split": "val", "data": data}), encoding="utf-8")
    return path


def write_screenspot(path: Path, boxes: list[list[float]]) -> Path:
    """SeeClick's layout: bbox as [x, y, width, height] in pixels, images in screenspot_imgs/."""
    folder = path.parent / "screenspot_imgs"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for n, box in enumerate(boxes, start=1):
        (folder / f"shot{n}.png").write_bytes(png_bytes("blue", (200, 100)))
        rows.append({"img_filename": f"shot{n}.png", "bbox": box, "instruction": "open the blue panel",
                     "data_type": "icon", "data_source": "web"})
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def write_jsonl(path: Path, entries: list[dict[str, Any]]) -> Path:
    image = path.parent / "square.png"
    image.write_bytes(png_bytes("red"))
    path.write_text("".join(json.dumps({"image": "square.png", **entry}) + "\n" for entry in entries), encoding="utf-8")
    return path
