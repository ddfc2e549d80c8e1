"""What every eval format reads into: `EvalItem` (one question, its images and its expected answer), and the
shared readers for the files benchmarks ship (JSON, JSONL, parquet) and the images inside them (paths, bytes,
base64).

Pure Python apart from PIL (through `assistant.images`); pyarrow is imported only for parquet files.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AssistantError

PARQUET_HINT = "pip install 'vlm-assistant[eval]'"


@dataclass
class EvalItem:
    """One question to ask the model, with what counts as right.

    `unit` groups items scored together (MMBench's rotations of one question); `error` marks an item that could
    not be read (a bad image, a missing field): it is reported and counted, never asked.
    """

    id: str
    prompt: str = ""
    images: list[Any] = field(default_factory=list)
    """PIL images (RGB), in the order the prompt refers to them."""
    expected: Any = None
    """The letter (multiple choice), the valid answers (text), the target box [x1, y1, x2, y2] (ScreenSpot)."""
    options: dict[str, str] = field(default_factory=dict)
    category: str = ""
    unit: str = ""
    error: str | None = None
    kind: str = ""
    """Format-specific flavour: "open" for MMMU's open questions, "" otherwise."""

    def __post_init__(self) -> None:
        if not self.unit:
            self.unit = self.id


def bad_item(item_id: str, message: str, unit: str = "", category: str = "") -> EvalItem:
    return EvalItem(id=item_id, unit=unit or item_id, category=category, error=message)


# --- files -------------------------------------------------------------------------------------------------------

def read_text(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AssistantError(f"{path} not found; check the path") from None
    except IsADirectoryError:
        raise AssistantError(f"{path} is a folder; give the benchmark file itself") from None
    except UnicodeDecodeError:
        raise AssistantError(f"{path} is not UTF-8 text; give the benchmark file itself (or --format for its kind)") from None
    except OSError as error:
        raise AssistantError(f"cannot read {path}: {error.strerror or error}") from None
    if not text.strip():
        raise AssistantError(f"{path} is empty; give a file with at least one item")
    return text


def read_records(path: Path, what: str) -> list[Any]:
    """The rows of a JSON list (or `{"data": [...]}`), a JSONL file or a parquet file, as dicts.

    A file that cannot be parsed at all is an AssistantError; a JSONL line that is not JSON comes back as a
    `_BadLine` so the format reports it as one error item."""
    if path.suffix.lower() == ".parquet":
        return read_parquet(path)
    text = read_text(path)
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows: list[Any] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                rows.append(BadLine(number, f"line {number} is not JSON ({error.msg})"))
        if not rows:
            raise AssistantError(f"{path} has no items; give a file with at least one {what}")
        return rows
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise AssistantError(
            f"{path} is not valid JSON ({error.msg} at line {error.lineno}); give the {what} file as JSON, JSONL or parquet"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise AssistantError(f"{path} holds no list of items; expected a JSON list (or {{\"data\": [...]}}) of {what}s")
    if not data:
        raise AssistantError(f"{path} has no items; give a file with at least one {what}")
    return data


@dataclass
class BadLine:
    """A JSONL line that could not be parsed: one error item, the run goes on."""

    number: int
    message: str


def read_parquet(path: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise AssistantError(f"reading {path.name} needs pyarrow; install it with {PARQUET_HINT}") from None
    if not path.is_file():
        raise AssistantError(f"{path} not found; check the path")
    try:
        rows = parquet.read_table(path).to_pylist()
    except Exception as error:  # noqa: BLE001 - pyarrow raises several kinds for a damaged file
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise AssistantError(f"cannot read {path} as parquet ({first}); check the file") from None
    if not rows:
        raise AssistantError(f"{path} has no rows; give a file with at least one item")
    return rows


# --- images ------------------------------------------------------------------------------------------------------

def decode_base64_image(text: str, label: str) -> Any:
    """A PIL image from base64 text (as MMBench's TSV carries it); AssistantError when undecodable."""
    from ..images import load_image_bytes

    try:
        data = base64.b64decode(text.strip(), validate=False)
    except (binascii.Error, ValueError):
        raise AssistantError(f"{label}: the image is not valid base64") from None
    if not data:
        raise AssistantError(f"{label}: the image is empty")
    return load_image_bytes(data, source=label, label=label).image


def load_image_ref(value: Any, base: Path, label: str) -> Any:
    """A PIL image from what a benchmark row holds: a path (relative to the data file's folder), raw bytes, a
    `{"bytes": ..., "path": ...}` struct (Hugging Face parquet) or base64 text. Errors name the item (`label`)."""
    try:
        return _load_image_ref(value, base, label)
    except AssistantError as error:
        message = str(error)
        raise AssistantError(message if message.startswith(label) else f"{label}: {message}") from None


def _load_image_ref(value: Any, base: Path, label: str) -> Any:
    from ..images import load_image_bytes, load_image_file

    if isinstance(value, dict):
        data = value.get("bytes")
        if data:
            return load_image_bytes(bytes(data), source=label, label=label).image
        value = value.get("path")
    if isinstance(value, (bytes, bytearray)):
        return load_image_bytes(bytes(value), source=label, label=label).image
    if isinstance(value, str) and value.strip():
        if len(value) <= 4096:
            candidate = Path(value).expanduser()
            if not candidate.is_absolute():
                candidate = base / candidate
            if candidate.is_file():
                return load_image_file(candidate).image
        if len(value) > 256:  # no path is this long: base64 image data
            return decode_base64_image(value, label)
        raise AssistantError(f"{label}: image {value} not found (paths are relative to the data file's folder)")
    raise AssistantError(f"{label}: no image")
