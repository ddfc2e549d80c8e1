"""`assistant eval` end to end through the CLI on the tiny offline model: a real run, `--compare base` with a real
LoRA adapter, the result kept with the adapter (adapters show, the TUI's adapter menu), and every bad input as one
line with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.cli import main
from assistant.evaluation.metrics import mcnemar_exact
from evalfiles import mmbench_row, mmmu_rows, png_bytes, write_jsonl, write_mmbench, write_mmmu_parquet
from tests.unit.test_adapters import make_adapter

TINY = ["--profile", "tiny-smolvlm", "--max-tokens", "6"]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["eval", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_mmbench_end_to_end_on_the_tiny_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [mmbench_row(1, "A", "colour"), mmbench_row(2, "B", "shape"), mmbench_row(3, "C", "colour", image="%%%"),
            mmbench_row(4, "D", "shape")]
    tsv = write_mmbench(tmp_path / "MMBench_DEV_EN.tsv", rows)
    report_file = tmp_path / "out" / "report.json"
    status, out, err = run(capsys, str(tsv), "--format", "mmbench", *TINY, "--limit", "3", "--json", str(report_file))
    assert status == 0, err
    assert "eval: 9 items (1 unreadable)" in err and "eval: 9/9" in err  # 2 questions x 4 rotations + the bad row
    report = json.loads(report_file.read_text())
    assert report["items"] == 9 and report["units"] == 3 and report["limit"] == 3
    base = report["sides"]["base"]
    assert base["units"] == 2 and base["errors"] == 1
    asked = [row for row in report["item_results"] if row["base"]["error"] is None]
    assert len(asked) == 8 and all(isinstance(row["base"]["reply"], str) for row in asked)
    # CircularEval: a question counts only when each of its 4 rotations was answered right
    by_unit: dict[str, list[float]] = {}
    for row in asked:
        by_unit.setdefault(row["unit"], []).append(row["base"]["score"])
    expected = sum(all(score == 1.0 for score in scores) for scores in by_unit.values()) / 2
    assert base["score"] == expected
    assert out.splitlines()[0] == "mmbench · MMBench_DEV_EN.tsv · 3 questions (9 asked, every option rotation) · profile tiny-smolvlm"
    assert any(line.startswith("errors (not scored)") for line in out.splitlines())


def test_mmmu_parquet_with_two_images_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_mmmu_parquet(tmp_path / "validation-00000-of-00001.parquet", mmmu_rows(2))
    status, out, err = run(capsys, str(path), "--format", "mmmu", *TINY, "--batch-size", "2")
    assert status == 0, err
    assert out.splitlines()[2].startswith("accuracy") and "  Art_Theory (1)" in out


def test_screenspot_asks_in_the_profiles_grounding_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evalfiles import write_screenspot

    path = write_screenspot(tmp_path / "screenspot_web.json", [[0, 0, 200, 100]])  # the whole screenshot
    status, out, err = run(capsys, str(path), "--format", "screenspot", *TINY, "--json", str(tmp_path / "s.json"))
    assert status == 0, err
    [row] = json.loads((tmp_path / "s.json").read_text())["item_results"]
    assert row["expected"] == [0.0, 0.0, 200.0, 100.0]
    # any point the reply gives is inside the target; a reply with no point is wrong
    assert row["base"]["score"] == (1.0 if row["base"]["parsed"] is not None else 0.0)
    assert "  web/icon (1)" in out


def test_compare_base_with_a_real_adapter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The expected answers are the base model's own replies, so base scores 100 % exact match and the adapter
    loses exactly the items where its reply differs: the table, the McNemar p-value and the saved eval follow."""
    make_adapter("style", seed=3)
    questions = ["What colour is the square?", "Describe the picture.", "Is there a square?", "What is in the middle?"]
    probe = write_jsonl(tmp_path / "probe.jsonl", [{"question": q, "answer": "?"} for q in questions])
    status, _, err = run(capsys, str(probe), "--format", "jsonl", *TINY, "--json", str(tmp_path / "probe.json"))
    assert status == 0, err
    replies = [row["base"]["reply"] for row in json.loads((tmp_path / "probe.json").read_text())["item_results"]]
    data = write_jsonl(tmp_path / "mine.jsonl", [{"question": q, "answer": r} for q, r in zip(questions, replies)])

    status, out, err = run(capsys, str(data), "--format", "jsonl", *TINY, "--adapter", "style", "--compare", "base",
                           "--json", str(tmp_path / "cmp.json"))
    assert status == 0, err
    report = json.loads((tmp_path / "cmp.json").read_text())
    tuned_replies = [row["style"]["reply"] for row in report["item_results"]]
    assert [row["base"]["reply"] for row in report["item_results"]] == replies  # same items, same greedy answers
    assert report["sides"]["base"]["score"] == 1.0
    changed = sum(1 for base_reply, tuned in zip(replies, tuned_replies) if tuned.strip().lower() != base_reply.strip().lower())
    assert changed >= 1  # the random LoRA changes greedy answers (else the comparison would test nothing)
    comparison = report["comparison"]
    assert (comparison["only_base"], comparison["only_adapter"]) == (changed, 0)
    assert comparison["p_value"] == mcnemar_exact(changed, 0)
    assert report["sides"]["style"]["score"] == pytest.approx(1 - changed / 4)
    lines = out.splitlines()
    assert lines[1].split() == ["base", "style", "diff"]
    assert lines[2].split()[:4] == ["exact", "match", "100.0%", f"{(1 - changed / 4):.1%}"]
    assert lines[-1].startswith(f"McNemar exact test: p = {mcnemar_exact(changed, 0):.3g}")
    assert "kept with adapter style" in err

    assert main(["adapters", "show", "style"]) == 0
    shown = capsys.readouterr().out
    assert f"eval      jsonl mine.jsonl: {1 - changed / 4:.1%} exact match (base 100.0%" in shown
    from assistant.tui.commands import CommandTable, complete_prompt

    menu = {c.label: c.detail for c in complete_prompt("/adapter ", CommandTable(), lambda kind: ["none", "style"])}
    assert menu["none"] == "the base model" and menu["style"].startswith("jsonl mine.jsonl: ")


def test_preference_pairs_against_the_base(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_adapter("prefs", seed=5)
    (tmp_path / "sq.png").write_bytes(png_bytes("red"))
    lines = []
    for chosen, rejected in (("red", "blue"), ("a square", "a circle"), ("yes", "no")):
        lines.append({"images": ["sq.png"],
                      "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]}],
                      "chosen": [{"role": "assistant", "content": [{"type": "text", "text": chosen}]}],
                      "rejected": [{"role": "assistant", "content": [{"type": "text", "text": rejected}]}]})
    broken = {**lines[0], "images": ["gone.png"]}
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + "{not json\n" + json.dumps(broken) + "\n")
    status, out, err = run(capsys, str(path), "--format", "preference", "--adapter", "prefs", "--profile", "tiny-smolvlm",
                           "--json", str(tmp_path / "pref.json"))
    assert status == 0, err
    report = json.loads((tmp_path / "pref.json").read_text())
    beta = report["beta"]
    margins = [beta * ((row["prefs"]["chosen"] - row["base"]["chosen"]) - (row["prefs"]["rejected"] - row["base"]["rejected"]))
               for row in report["item_results"]]
    assert report["reward_accuracy"] == pytest.approx(sum(m > 0 for m in margins) / 3)
    assert report["margin"] == pytest.approx(sum(margins) / 3)
    assert "reward accuracy" in out and f"{report['margin']:+.3f}" in out
    assert report["errors"] == 2 and [bad["line"] for bad in report["error_lines"]] == ["pairs.jsonl line 4", "pairs.jsonl line 5"]
    assert "pairs.jsonl line 5: image not found" in report["error_lines"][1]["error"] and "errors (not scored) 2 lines" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.tsv", "--format", "mmbench"], "missing.tsv not found"),
        (["empty.tsv", "--format", "mmbench"], "is empty"),
        (["bad.tsv", "--format", "mmbench"], "lacks the columns"),
        (["bad.tsv", "--format", "coco"], "unknown --format 'coco'"),
        (["bad.json", "--format", "mmmu"], "is not valid JSON"),
        (["good.tsv", "--format", "mmbench", "--adapter", "nope"], "no adapter named 'nope'"),
        (["good.tsv", "--format", "mmbench", "--compare", "base"], "add --adapter NAME"),
        (["good.tsv", "--format", "mmbench", "--metric", "anls"], "--metric applies to --format jsonl only"),
        (["allbad.tsv", "--format", "mmbench"], "no usable item"),
        (["good.tsv", "--format", "mmbench", "--json", "good.tsv/report.json"], "cannot write --json good.tsv/report.json"),
        (["bad.json", "--format", "preference"], "add --adapter NAME"),
        (["empty.tsv", "--format", "preference", "--adapter", "real"], "is empty"),
        (["bad.json", "--format", "preference", "--adapter", "real"], "no usable preference pair"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.tsv").write_text("")
    (tmp_path / "bad.tsv").write_text("just\ttwo columns\n1\t2\n")
    (tmp_path / "bad.json").write_text("[{")
    write_mmbench(tmp_path / "good.tsv", [mmbench_row(1)])
    write_mmbench(tmp_path / "allbad.tsv", [mmbench_row(1, image="%%%")])
    if "real" in args:
        make_adapter("real")
    status, out, err = run(capsys, *args, "--profile", "tiny-smolvlm")
    assert status == 2, err
    lines = [line for line in err.splitlines() if not line.startswith("notice: ")]  # make_adapter's folder modes
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
