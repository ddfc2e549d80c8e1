"""Reading each benchmark format from small files built here, CircularEval's grouping and the report's numbers
(no model: the scores are set by hand where a random tiny model cannot produce the edge)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from assistant.errors import AssistantError
from assistant.evaluation import get_format
from assistant.evaluation.base import LoadOptions, Scored
from assistant.evaluation.mmbench import rotations
from assistant.evaluation.report import EvalReport, table
from assistant.evaluation.runner import SideResult
from evalfiles import (
    mmbench_row,
    mmmu_rows,
    write_docvqa,
    write_jsonl,
    write_mmbench,
    write_mmmu_json,
    write_mmmu_parquet,
    write_screenspot,
)


def load(name: str, path: Path, **options: str) -> list:
    return get_format(name).load(path, LoadOptions(**options))


# --- MMBench ---------------------------------------------------------------------------------------------------------

def test_rotations_move_the_answer() -> None:
    shifted = rotations({"A": "red", "B": "green", "C": "blue"}, "B")
    assert shifted[0] == ({"A": "red", "B": "green", "C": "blue"}, "B")
    assert shifted[1] == ({"A": "green", "B": "blue", "C": "red"}, "A")
    assert shifted[2] == ({"A": "blue", "B": "red", "C": "green"}, "C")


def test_mmbench_tsv_rotations_categories_image_references_and_bad_rows(tmp_path: Path) -> None:
    rows = [
        mmbench_row(1, "A", "colour", hint="Look closely."),
        mmbench_row(2, "C", "shape", image="1", options=("square", "circle", "triangle")),  # 3 options, image of row 1
        mmbench_row(3, "B", "colour", image="not base64 at all!" * 30),
        mmbench_row(4, "E", "colour"),  # the answer is no option
    ]
    items = load("mmbench", write_mmbench(tmp_path / "dev.tsv", rows))
    good = [item for item in items if item.error is None]
    assert [item.id for item in good] == ["1", "1+r1", "1+r2", "1+r3", "2", "2+r1", "2+r2"]
    assert {item.unit for item in good} == {"1", "2"}
    assert good[0].prompt.startswith("Hint: Look closely.\nQuestion: What colour is the square?\nOptions:\nA. red")
    assert good[1].options == {"A": "green", "B": "blue", "C": "yellow", "D": "red"} and good[1].expected == "D"
    assert good[4].images[0].size == good[0].images[0].size  # row 2 reuses row 1's image
    errors = {item.id: item.error for item in items if item.error}
    assert set(errors) == {"3", "4"}
    assert "base64" in errors["3"] or "image" in errors["3"]
    assert "'E' is not one of its options" in errors["4"]


def test_mmbench_keeps_the_rotations_a_file_already_has(tmp_path: Path) -> None:
    rows = [mmbench_row(7, "A"), mmbench_row(1_000_007, "D", options=("green", "blue", "yellow", "red"))]
    items = load("mmbench", write_mmbench(tmp_path / "circular.tsv", rows))
    assert [(item.id, item.unit, item.expected) for item in items] == [("7", "7", "A"), ("1000007", "7", "D")]


def _scored(items: list, scores: dict[str, float | None]) -> list[Scored]:
    return [Scored(item, reply="", score=scores.get(item.id, 1.0), error=None if scores.get(item.id, 1.0) is not None
                   else "failed") for item in items]


def test_circular_eval_counts_a_question_right_only_when_every_rotation_is(tmp_path: Path) -> None:
    rows = [mmbench_row(1, "A", "colour"), mmbench_row(2, "B", "colour"), mmbench_row(3, "C", "shape"),
            mmbench_row(4, "D", "shape")]
    fmt = get_format("mmbench")
    items = fmt.load(write_mmbench(tmp_path / "dev.tsv", rows), LoadOptions())
    # question 1 all right; question 2 wrong in one rotation; question 3 all right; question 4 an error in one
    base = _scored(items, {"2+r3": 0.0, "4+r1": None})
    units = {unit.id: unit.score for unit in fmt.units(base)}
    assert units == {"1": 1.0, "2": 0.0, "3": 1.0, "4": None}
    # the same answers scored per item (no CircularEval) would give 14/15 instead of 2/3
    tuned = _scored(items, {"1+r1": 0.0, "4+r1": None})
    report = EvalReport("mmbench", "dev.tsv", "tiny", "circular accuracy", True,
                        [SideResult("base", None, base, fmt.units(base)), SideResult("mine", "mine", tuned, fmt.units(tuned))])
    base_summary, tuned_summary = report.summaries
    assert base_summary.score == pytest.approx(2 / 3) and base_summary.error_units == 1
    assert base_summary.categories == {"colour": {"score": 0.5, "units": 2}, "shape": {"score": 1.0, "units": 1}}
    assert tuned_summary.score == pytest.approx(2 / 3)
    assert report.comparison is not None
    assert (report.comparison.pairs, report.comparison.only_base, report.comparison.only_adapter) == (3, 1, 1)
    assert report.comparison.p_value == 1.0
    lines = table(report)
    assert lines[2].split() == ["circular", "accuracy", "66.7%", "66.7%", "+0.0", "pts"]
    assert any(line.split()[:3] == ["colour", "(2)", "50.0%"] for line in lines)
    assert any(line.startswith("errors (not scored)") and line.split()[-2:] == ["1", "1"] for line in lines)
    assert lines[-1].startswith("McNemar exact test: p = 1, could be chance")


def test_mmbench_file_level_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    with pytest.raises(AssistantError, match="is empty"):
        load("mmbench", empty)
    no_answer = write_mmbench(tmp_path / "test.tsv", [mmbench_row(1)],
                              columns=["index", "question", "A", "B", "image", "category"])
    with pytest.raises(AssistantError, match="lacks the column answer \\(the test split withholds answers"):
        load("mmbench", no_answer)
    header_only = tmp_path / "header.tsv"
    header_only.write_text("index\tquestion\tA\tB\tanswer\timage\n")
    with pytest.raises(AssistantError, match="no questions"):
        load("mmbench", header_only)


# --- MMMU ------------------------------------------------------------------------------------------------------------

def test_mmmu_parquet_and_json_read_the_same_items(tmp_path: Path) -> None:
    rows = mmmu_rows(3)
    from_parquet = load("mmmu", write_mmmu_parquet(tmp_path / "validation.parquet", rows))
    from_json = load("mmmu", write_mmmu_json(tmp_path / "validation.json", rows))
    for items in (from_parquet, from_json):
        assert [item.error for item in items] == [None, None, None]
        assert [item.expected for item in items] == ["A", "B", "C"]
        assert [item.category for item in items] == ["Art_Theory", "Math", "Art_Theory"]
        first = items[0]
        assert len(first.images) == 2 and first.images[0].getpixel((32, 24)) == (255, 0, 0)
        assert first.options == {"A": "red", "B": "green", "C": "blue"}
        assert first.prompt.startswith("Which colour fills (image 1), compared with (image 2)?\nA. red\nB. green")
    fmt = get_format("mmmu")
    assert fmt.score(from_json[1], "I would say (B) green", None) == (1.0, "B")
    assert fmt.score(from_json[1], "blue", None) == (0.0, "C")


def test_mmmu_bad_items_and_open_questions(tmp_path: Path) -> None:
    rows = mmmu_rows(2)
    rows[0]["options"] = "['unclosed"
    rows[1]["image_1"] = {"bytes": b"not an image", "path": "x.png"}
    rows.append({**mmmu_rows(1)[0], "id": "validation_Math_9", "question_type": "open", "options": "[]",
                 "answer": "42"})
    items = load("mmmu", write_mmmu_parquet(tmp_path / "v.parquet", rows))
    assert "is not a list" in (items[0].error or "")
    assert items[1].error is not None and "image_1" in items[1].error
    assert items[2].error is None and items[2].kind == "open"
    assert get_format("mmmu").score(items[2], "The answer is 42.", None)[0] == 1.0


def test_parquet_without_pyarrow_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_mmmu_parquet(tmp_path / "v.parquet", mmmu_rows(1))
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # import fails as when pyarrow is not installed
    with pytest.raises(AssistantError) as caught:
        load("mmmu", path)
    assert "pip install 'vlm-assistant[eval]'" in str(caught.value) and "\n" not in str(caught.value)


# --- DocVQA, ScreenSpot, JSONL -----------------------------------------------------------------------------------------

def test_docvqa_reads_the_rrc_json_and_scores_anls(tmp_path: Path) -> None:
    path = write_docvqa(tmp_path / "val_v1.0.json", [("What is the date?", ["1 May 1990", "May 1, 1990"]),
                                                     ("Who signed?", ["J. Smith"])])
    (tmp_path / "documents" / "doc2.png").write_bytes(b"broken")
    items = load("docvqa", path)
    assert items[0].id == "101" and items[0].expected == ["1 May 1990", "May 1, 1990"] and items[0].category == "form"
    assert items[1].error is not None and "102" in items[1].error
    assert get_format("docvqa").score(items[0], "May 1, 199", None)[0] == pytest.approx(1 - 1 / 11)


def test_screenspot_boxes_and_hits(tmp_path: Path) -> None:
    items = load("screenspot", write_screenspot(tmp_path / "screenspot_web.json", [[20, 10, 40, 30]]),
                 grounding_prompt="Find {thing}.")
    item = items[0]
    assert item.expected == [20.0, 10.0, 60.0, 40.0]  # SeeClick's [x, y, w, h] as corners
    assert item.prompt == 'Find the UI element to use for "open the blue panel".' and item.category == "web/icon"
    fmt = get_format("screenspot")
    inside = {"shapes": [{"kind": "box", "x1": 30, "y1": 20, "x2": 50, "y2": 30}]}  # centre (40, 25)
    outside = {"shapes": [{"kind": "point", "x": 100, "y": 25}]}
    assert fmt.score(item, "", inside) == (1.0, [40.0, 25.0])
    assert fmt.score(item, "", outside) == (0.0, [100.0, 25.0])
    assert fmt.score(item, "no idea", None) == (0.0, None)
    from assistant.evaluation.screenspot import target_box

    assert target_box({"bbox": [0.1, 0.2, 0.5, 0.6]}, (200, 100)) == pytest.approx([20, 20, 100, 60])  # HF fractions


def test_jsonl_metric_choice_and_bad_lines(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mine.jsonl", [{"question": "Colour?", "answer": "red"},
                                                 {"question": "Shape?", "answer": ["square", "box"]}])
    with path.open("a") as handle:
        handle.write("{not json\n")
        handle.write('{"image": "missing.png", "question": "Q?", "answer": "a"}\n')
    fmt = get_format("jsonl")
    items = fmt.load(path, LoadOptions(metric="contains"))
    assert [item.error is None for item in items] == [True, True, False, False]
    assert "line 3 is not JSON" in (items[2].error or "") and "missing.png not found" in (items[3].error or "")
    assert fmt.score(items[1], "It is a box.", None)[0] == 1.0
    with pytest.raises(AssistantError, match="unknown --metric"):
        fmt.load(path, LoadOptions(metric="bleu"))


def test_unknown_format() -> None:
    with pytest.raises(AssistantError, match="unknown --format 'coco'; use one of mmbench, mmmu"):
        get_format("coco")


def test_eval_modules_stay_light() -> None:
    """Reading and scoring never import torch, transformers, textual or pyarrow (only a parquet file needs it)."""
    import subprocess

    modules = ["metrics", "items", "mmbench", "mmmu", "docvqa", "screenspot", "jsonl", "report", "saved", "cli"]
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module('assistant.evaluation.' + name)\n"
        "print(json.dumps([m for m in ('torch', 'transformers', 'textual', 'pyarrow') if m in sys.modules]))\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip().splitlines()[-1] == "[]"


def test_continuous_scores_compare_with_the_paired_bootstrap() -> None:
    from assistant.evaluation.base import Unit
    from assistant.evaluation.metrics import paired_bootstrap
    from assistant.evaluation.report import compare

    base = [Unit("1", "", 0.5), Unit("2", "", 0.0), Unit("3", "", None), Unit("4", "", 1.0)]
    tuned = [Unit("1", "", 0.9), Unit("2", "", 0.75), Unit("3", "", 1.0), Unit("4", "", 1.0)]
    result = compare(base, tuned, binary=False)
    assert result.pairs == 3  # the unit that is an error on one side is not a pair
    assert result.difference == pytest.approx((0.4 + 0.75 + 0.0) / 3)
    assert result.test.startswith("paired bootstrap")
    assert result.p_value == paired_bootstrap([0.5, 0.0, 1.0], [0.9, 0.75, 1.0])


def test_saved_evals_newest_first_and_stale_after_training_again(tmp_path: Path) -> None:
    import os

    from assistant.adapters import PEFT_WEIGHTS_FILE, adapter_dir
    from assistant.evaluation.saved import eval_line, last_eval_line, read_adapter_evals, save_adapter_eval

    folder = adapter_dir("mine")
    folder.mkdir(parents=True)
    (folder / PEFT_WEIGHTS_FILE).write_bytes(b"weights")
    assert last_eval_line("mine") == "" and read_adapter_evals("mine") == []
    first = {"format": "docvqa", "file": "val.json", "metric": "ANLS", "adapter": "mine", "units": 10,
             "created_at": 0.0, "sides": {"base": {"score": 0.5}, "mine": {"score": 0.625}},
             "comparison": {"difference": 0.125, "p_value": 0.02}}
    save_adapter_eval("mine", first)
    save_adapter_eval("mine", {**first, "format": "jsonl", "file": "mine.jsonl", "metric": "exact match"})
    save_adapter_eval("mine", {**first, "sides": {"base": {"score": 0.5}, "mine": {"score": 0.75}}})  # same dataset again
    entries = read_adapter_evals("mine")
    assert [(entry["format"], entry["sides"]["mine"]["score"]) for entry in entries] == [("docvqa", 0.75), ("jsonl", 0.625)]
    assert eval_line(entries[0]).startswith("docvqa val.json: 0.750 ANLS (base 0.500, +0.125, p = 0.02), 10 items")
    assert not entries[0]["stale"]
    (folder / PEFT_WEIGHTS_FILE).write_bytes(b"trained again")
    os.utime(folder / PEFT_WEIGHTS_FILE, ns=(1, 1))
    assert read_adapter_evals("mine")[0]["stale"] and last_eval_line("mine").endswith("before the last training")
    (folder / "eval.json").write_text("{broken")
    assert read_adapter_evals("mine") == []  # a damaged record reads as none
