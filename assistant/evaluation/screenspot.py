"""ScreenSpot: an instruction ("close the window"), a screenshot and the target element's box. The model's reply
is parsed with the profile's grounding format (the same parsers chat grounding uses) and counts as right when
the point, or the centre of the box, it gives lies inside the target.

Reads SeeClick's JSON files (`img_filename`, `bbox` as [x, y, width, height] in pixels, images in the JSON's
folder or its `screenspot_imgs/` subfolder) and the Hugging Face parquet (`image`, `bbox` as [x1, y1, x2, y2]
in 0-1 fractions of the image).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import AssistantError
from .base import LoadOptions, Scored, Unit, item_units
from .items import BadLine, EvalItem, bad_item, load_image_ref, read_records
from .metrics import point_in_box, shape_centre

DEFAULT_PROMPT = "Locate {thing} in the image. Answer with its bounding box as [x1, y1, x2, y2]."


def target_box(row: dict[str, Any], size: tuple[int, int]) -> list[float]:
    """The target as [x1, y1, x2, y2] in pixels: fractions (every value <= 1) are scaled by the image size;
    SeeClick's rows (with `img_filename`) are [x, y, width, height]."""
    box = row.get("bbox")
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise AssistantError("bbox must be a list of 4 numbers")
    try:
        x1, y1, third, fourth = (float(value) for value in box)
    except (TypeError, ValueError):
        raise AssistantError("bbox must be a list of 4 numbers") from None
    width, height = size
    if max(x1, y1, third, fourth) <= 1.0:
        return [x1 * width, y1 * height, third * width, fourth * height]
    if "img_filename" in row:
        return [x1, y1, x1 + third, y1 + fourth]
    return [x1, y1, third, fourth]


class ScreenSpot:
    name = "screenspot"
    metric = "accuracy"
    binary = True
    max_new_tokens = 48
    ground = True

    def load(self, path: Path, options: LoadOptions) -> list[EvalItem]:
        rows = read_records(path, "ScreenSpot item")
        if not any(isinstance(row, dict) and "bbox" in row and "instruction" in row for row in rows):
            raise AssistantError(
                f"{path} has no 'instruction' and 'bbox' fields; a ScreenSpot file has img_filename (or image), "
                "instruction and bbox"
            )
        template = options.grounding_prompt or DEFAULT_PROMPT
        return [self._item(row, number, path.parent, template) for number, row in enumerate(rows, start=1)]

    def _item(self, row: Any, number: int, base: Path, template: str) -> EvalItem:
        if isinstance(row, BadLine):
            return bad_item(f"line-{row.number}", row.message)
        if not isinstance(row, dict):
            return bad_item(f"item-{number}", f"item {number} is not an object")
        name = row.get("img_filename") or row.get("file_name") or ""
        item_id = f"{number}:{name}" if name else f"item-{number}"
        category = "/".join(str(row[key]) for key in ("data_source", "data_type") if row.get(key))
        instruction = row.get("instruction")
        if not isinstance(instruction, str) or not instruction.strip():
            return bad_item(item_id, f"{item_id}: no instruction", category=category)
        try:
            image = self._image(row, base, item_id)
            box = target_box(row, image.size)
        except AssistantError as error:
            return bad_item(item_id, f"{item_id}: {error}" if not str(error).startswith(item_id) else str(error),
                            category=category)
        thing = f'the UI element to use for "{instruction.strip()}"'
        return EvalItem(id=item_id, prompt=template.replace("{thing}", thing), images=[image], expected=box,
                        category=category)

    @staticmethod
    def _image(row: dict[str, Any], base: Path, label: str) -> Any:
        value = row.get("image")
        if value in (None, ""):
            name = row.get("img_filename") or row.get("file_name")
            if not name:
                raise AssistantError(f"{label}: no img_filename or image")
            value = name if (base / str(name)).is_file() or not (base / "screenspot_imgs" / str(name)).is_file() \
                else f"screenspot_imgs/{name}"
        return load_image_ref(value, base, f"{label} image")

    def score(self, item: EvalItem, reply: str, grounding: dict[str, Any] | None) -> tuple[float, Any]:
        shapes = (grounding or {}).get("shapes") or []
        for shape in shapes:
            centre = shape_centre(shape)
            if centre is not None:
                return float(point_in_box(centre, item.expected)), [round(centre[0], 1), round(centre[1], 1)]
        return 0.0, None

    def units(self, scored: list[Scored]) -> list[Unit]:
        return item_units(scored)
