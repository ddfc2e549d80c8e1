"""`assistant batch` end to end on the tiny models: folders, PDFs, manifests, bad files, resume, Ctrl+C, batching."""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pymupdf
import pytest
from PIL import Image

from assistant.batch import BatchItem, BatchRun, BatchSummary, Progress, expand_inputs
from assistant.testing import run_cli
from helpers import make_image

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "black", "cyan"]


def make_pdf(path: Path, pages: list[str]) -> Path:
    document = pymupdf.open()
    for text in pages:
        page = document.new_page(width=300, height=200)
        page.insert_text((20, 40), text, fontsize=12)
    document.save(path)
    return path


def huge_png(path: Path, width: int = 20_000, height: int = 20_000) -> Path:
    """A small file whose PNG header claims a huge image (a decompression bomb's shape)."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    header = b"IHDR" + struct.pack(">II", width, height) + bytes(data[24:29])
    data[12:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(header))
    path.write_bytes(bytes(data))
    return path


def lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def batch(*args: str):
    return run_cli("batch", "--profile", "tiny-smolvlm", "--max-tokens", "3", *args)


def test_folder_pdf_and_bad_files_go_to_stdout(tmp_path):
    folder = tmp_path / "shots"
    make_image(folder / "a.png", colour="red")
    make_image(folder / "nested" / "b.jpg", colour="green")
    (folder / "nested" / "no-extension").write_bytes((folder / "a.png").read_bytes())
    make_image(tmp_path / "tmp-blue.png", colour="blue").rename(folder / "nested" / "photo.dat")  # by content
    (folder / "notes.txt").write_text("not an image")  # neither an image nor a PDF: not an input
    (folder / "m-corrupt.png").write_bytes((folder / "a.png").read_bytes()[:120])  # in the middle, by name order
    huge_png(folder / "z-huge.png")
    (folder / "gone.png").symlink_to(tmp_path / "deleted.png")  # unreadable: its target is gone
    make_pdf(folder / "report.pdf", ["first page", "second page"])

    result = batch("--question", "What is shown?", str(folder))

    assert result.exit_code == 0, result.stderr
    records = lines(result.stdout)
    by_input = {(Path(record["input"]).name, record["page"]): record for record in records}
    assert set(by_input) == {
        ("a.png", None), ("b.jpg", None), ("no-extension", None), ("photo.dat", None),
        ("m-corrupt.png", None), ("z-huge.png", None), ("report.pdf", 1), ("report.pdf", 2), ("gone.png", None),
    }
    assert all(
        set(record) >= {"input", "page", "sha256", "question", "answer", "error", "prompt_tokens",
                        "completion_tokens", "seconds"}
        for record in records
    )
    corrupt, huge = by_input[("m-corrupt.png", None)], by_input[("z-huge.png", None)]
    assert corrupt["answer"] is None and "truncated or corrupt" in corrupt["error"]
    assert huge["answer"] is None and "too large" in huge["error"] and "20000x20000" in huge["error"]
    assert "cannot read" in by_input[("gone.png", None)]["error"]
    ok = [record for record in records if record["error"] is None]
    assert len(ok) == 6
    for record in ok:
        assert record["question"] == "What is shown?" and record["profile"] == "tiny-smolvlm"
        assert isinstance(record["answer"], str) and record["prompt_tokens"] > 0
        assert 1 <= record["completion_tokens"] <= 3
        assert record["seconds"] > 0 or record.get("reused_from")
    # the two pages share the file's hash but were rendered and answered separately
    assert by_input[("report.pdf", 1)]["sha256"] == by_input[("report.pdf", 2)]["sha256"]
    # identical bytes under another name: the answer is reused, not asked again
    assert by_input[("no-extension", None)]["reused_from"].endswith("a.png")
    assert by_input[("no-extension", None)]["answer"] == by_input[("a.png", None)]["answer"]
    assert "6 ok, 3 errors, 0 skipped" in result.stderr
    assert "batch: 9/9" in result.stderr  # plain progress lines: stderr is not a terminal


def test_output_file_resumes_and_retries_errors(tmp_path):
    folder = tmp_path / "in"
    for colour in COLOURS[:3]:
        make_image(folder / f"{colour}.png", colour=colour)
    broken = folder / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    out = tmp_path / "answers.jsonl"

    first = batch("-q", "Colour?", "-o", str(out), str(folder))

    assert first.exit_code == 0, first.stderr
    assert first.stdout == ""  # -o: nothing on stdout
    records = lines(out.read_text())
    assert len(records) == 4 and sum(record["error"] is not None for record in records) == 1
    assert "3 ok, 1 error, 0 skipped" in first.stderr

    make_image(broken, colour="purple")  # fixed meanwhile
    make_image(folder / "new.png", colour="orange")
    second = batch("-q", "Colour?", "-o", str(out), str(folder))

    assert second.exit_code == 0, second.stderr
    assert "2 ok, 0 errors, 3 skipped" in second.stderr and "skipped 3 inputs already answered" in second.stderr
    records = lines(out.read_text())
    assert sorted(Path(record["input"]).name for record in records) == [
        "blue.png", "broken.png", "green.png", "new.png", "red.png"
    ]
    assert all(record["error"] is None for record in records)  # the old error line was replaced

    other = batch("-q", "Shape?", "-o", str(out), str(folder))  # another question is another input
    assert "5 ok, 0 errors, 0 skipped" in other.stderr


def test_manifest_gives_each_input_its_question(tmp_path):
    make_image(tmp_path / "imgs" / "cat.png", colour="red")
    make_image(tmp_path / "imgs" / "dog.png", colour="blue")
    make_pdf(tmp_path / "doc.pdf", ["only page"])
    manifest = tmp_path / "work.jsonl"
    manifest.write_text(
        "\n".join([
            json.dumps({"image": "imgs/cat.png", "question": "Is this a cat?"}),
            "{not json",
            json.dumps({"image": "imgs/dog.png"}),  # falls back to --question
            json.dumps({"image": "doc.pdf", "question": "Summarise the page"}),
            json.dumps({"question": "where is the image?"}),
            json.dumps({"image": "imgs/missing.png", "question": "?"}),
        ]) + "\n"
    )

    result = batch("-q", "What animal?", str(manifest))

    assert result.exit_code == 0, result.stderr
    records = lines(result.stdout)
    answered = {(record["input"], record["page"]): record["question"] for record in records if record["error"] is None}
    assert answered == {
        ("imgs/cat.png", None): "Is this a cat?",
        ("imgs/dog.png", None): "What animal?",
        ("doc.pdf", 1): "Summarise the page",
    }
    errors = {record["input"]: record["error"] for record in records if record["error"] is not None}
    assert "not JSON" in errors[f"{manifest}:2"] and 'no "image"' in errors[f"{manifest}:5"]
    assert "not found" in errors["imgs/missing.png"]


def test_no_question_and_no_inputs_are_one_line(tmp_path):
    make_image(tmp_path / "a.png")
    result = batch(str(tmp_path / "a.png"))
    assert result.exit_code == 2 and "--question" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    result = batch("-q", "x", str(tmp_path / "empty"))
    assert result.exit_code == 2 and "no images or PDFs found" in result.stderr
    result = batch("-q", "x", str(tmp_path / "nope-*.png"))
    assert result.exit_code == 2 and "matches no files" in result.stderr


@pytest.mark.parametrize("profile", ["tiny-smolvlm", "tiny-qwen2vl"])
def test_batched_generation_gives_the_same_greedy_answers(tmp_path, profile):
    """--batch-size 4 runs groups of 4 through one generate call (left padding): same tokens as one by one."""
    folder = tmp_path / "imgs"
    for index, colour in enumerate(COLOURS[:5]):
        make_image(folder / f"{index}-{colour}.png", size=(200 + 60 * index, 160 + 20 * index), colour=colour)
    args = ("--profile", profile, "--max-tokens", "12", "-q", "Describe the picture.", str(folder))

    one = run_cli("batch", *args, "--batch-size", "1")
    four = run_cli("batch", *args, "--batch-size", "4")

    assert one.exit_code == 0 and four.exit_code == 0, one.stderr + four.stderr
    single, batched = lines(one.stdout), lines(four.stdout)
    assert [record["input"] for record in single] == [record["input"] for record in batched]
    assert [record["answer"] for record in single] == [record["answer"] for record in batched]
    assert [record["completion_tokens"] for record in single] == [record["completion_tokens"] for record in batched]
    assert [record["prompt_tokens"] for record in single] == [record["prompt_tokens"] for record in batched]
    assert len({record["answer"] for record in single}) > 1  # different images, different (noise) answers


def test_ground_gives_boxes_in_original_image_pixels(tmp_path):
    """The profile's format (json1000 here) parsed against each image's own size; the reply is scripted."""
    from assistant.api import GenerationOptions
    from assistant.batch_model import ImageReader, ModelAnswerer
    from assistant.testing import scripted_assistant

    make_image(tmp_path / "wide.png", size=(1000, 400))
    make_image(tmp_path / "small.png", size=(200, 100))
    reply = '```json\n[{"bbox_2d": [100, 250, 500, 750], "label": "square"}]\n```'
    bot, backend = scripted_assistant([reply, reply], profile="tiny-smolvlm")
    reader = ImageReader(bot.plugins)
    items = expand_inputs([str(tmp_path / "wide.png"), str(tmp_path / "small.png")], "Where is the square?",
                          reader.page_count)
    written: list[dict] = []
    run = BatchRun(items=items, profile="tiny-smolvlm", answer_many=ModelAnswerer(bot, GenerationOptions(), ground=True),
                   write=written.append, read_image=reader, ground=True)

    summary = run.run()

    assert summary.ok == 2
    wide, small = written
    assert wide["grounding"]["shapes"][0] | {} == {"x1": 100.0, "y1": 100.0, "x2": 500.0, "y2": 300.0,
                                                  "label": "square", "kind": "box"}
    assert wide["grounding"]["image_size"] == [1000, 400]
    assert [small["grounding"]["shapes"][0][key] for key in ("x1", "y1", "x2", "y2")] == [20.0, 25.0, 100.0, 75.0]
    (prompt,) = backend.prompts[0]  # one user message: the image, then the question
    assert prompt.images[0].width == 1000 and prompt.text == "Where is the square?"


def test_save_keeps_answers_as_chats(tmp_path):
    from assistant.store import Store

    make_image(tmp_path / "a.png", colour="red")
    result = batch("-q", "What colour?", "--save", str(tmp_path / "a.png"))
    assert result.exit_code == 0, result.stderr
    (record,) = lines(result.stdout)
    with Store.open_default() as store:
        chat = store.get_conversation(record["chat_id"])
    assert "batch" in chat.tags
    question, answer = chat.messages
    assert question.text == "What colour?" and question.images[0].sha256 == record["sha256"]
    assert answer.text == record["answer"]


@pytest.mark.parametrize("batch_size", ["1", "4"])
def test_ctrl_c_keeps_finished_lines_and_the_next_run_resumes(tmp_path, batch_size):
    folder = tmp_path / "many"
    for index in range(30):
        make_image(folder / f"{index:02d}.png", size=(160 + index, 120), colour=COLOURS[index % len(COLOURS)])
    out = tmp_path / "out.jsonl"
    command = [sys.executable, "-m", "assistant", "batch", "--profile", "tiny-smolvlm", "--max-tokens", "24",
               "--batch-size", batch_size, "-q", "What is this?", "-o", str(out), str(folder)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 130, stderr
    assert "batch interrupted" in stderr and "run the same command again to continue" in stderr
    kept = lines(out.read_text())  # every line is whole: nothing half-written
    assert 2 <= len(kept) < 30 and all(record["error"] is None for record in kept)
    assert stdout == ""

    resumed = batch("-q", "What is this?", "-o", str(out), str(folder))  # (the first run's --max-tokens 24 is not in the key)

    assert resumed.exit_code == 0, resumed.stderr
    assert f"{30 - len(kept)} ok, 0 errors, {len(kept)} skipped" in resumed.stderr
    inputs = [record["input"] for record in lines(out.read_text())]
    assert len(inputs) == 30 and len(set(inputs)) == 30


def test_progress_draws_a_bar_on_a_terminal_and_lines_otherwise():
    terminal, plain = io.StringIO(), io.StringIO()
    bar, log = Progress(terminal, tty=True), Progress(plain, tty=False, interval=3600)
    for done in range(1, 5):
        summary = BatchSummary(total=4, ok=done, seconds=float(done))
        bar(summary)
        log(summary)
    bar.close()
    assert terminal.getvalue().count("\r") == 4 and "█" in terminal.getvalue() and "4/4" in terminal.getvalue()
    assert plain.getvalue().splitlines() == ["batch: 1/4 · 1.00 inputs/s · ETA 0:03", "batch: 4/4 · 1.00 inputs/s"]


def test_items_expand_globs_and_skip_other_files(tmp_path):
    make_image(tmp_path / "x1.png")
    make_image(tmp_path / "x2.png", colour="blue")
    (tmp_path / "x3.txt").write_text("text")
    items = expand_inputs([str(tmp_path / "x*")], "q", lambda path: 1)
    assert [Path(item.input).name for item in items] == ["x1.png", "x2.png"]
    assert all(isinstance(item, BatchItem) and item.question == "q" for item in items)


def test_batch_modules_stay_light():
    """The batch logic and its command import no torch/transformers until a model is loaded."""
    code = (
        "import json, sys\n"
        "import assistant.batch, assistant.batch_model, assistant.batch_cli\n"
        "print(json.dumps([m for m in ('torch', 'transformers', 'textual') if m in sys.modules]))\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(output.strip().splitlines()[-1]) == []
