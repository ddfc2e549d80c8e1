"""`assistant bench` runs end to end (on the tiny profile here; the real numbers come from bench-smolvlm-256m)."""

from __future__ import annotations

import json
import os

import pytest

from assistant.cli import main


@pytest.mark.slow
def test_bench_reports_both_sides_and_the_roofline(capsys, tmp_path):
    out_file = tmp_path / "bench.json"
    code = main(["bench", "--profile", "tiny-smolvlm", "--runs", "1", "--new-tokens", "4", "--json", str(out_file)])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out_file.read_text())
    ours, pipe = report["ours"], report["pipeline"]
    for side in (ours, pipe):
        assert side["ttft_turn1_s"] > 0 and side["ttft_followup_s"] > 0
        assert side["decode_tokens_per_s"] > 0 and side["peak_rss_mb"] > 0 and side["load_s"] > 0
    assert ours["prompt_tokens"] == pipe["prompt_tokens"] > 0  # same inputs on both sides
    assert ours["preprocess_s"] > 0
    assert ours["import_s"] > 0 and ours["load_cpu_s"] > 0 and ours["fuse_s"] is not None
    assert ours["ttft_cached_image_s"] > 0  # a new chat about the same screenshot (vision cache)
    assert ours["ttft_encoded_ahead_s"] > 0  # the screenshot encoded while the question was typed
    assert report["memory_bandwidth_gbs"] > 0 and report["roofline_tokens_per_s"] > 0
    assert report["random_weights"] is True
    assert set(report["ratios"]) >= {"decode_ours_over_pipeline", "followup_over_turn1", "decode_ours_over_roofline"}
    assert "| TTFT follow-up (s)" in out and "roofline" in out and "| TTFT same image, new chat" in out


def test_bench_quantize_int8_decodes_our_side_with_int8(capsys, tmp_path):
    out_file = tmp_path / "bench.json"
    code = main(["bench", "--profile", "tiny-smolvlm", "--runs", "1", "--new-tokens", "4", "--no-pipeline",
                 "--quantize", "int8", "--pause", "0.1", "--json", str(out_file)])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out_file.read_text())
    assert report["settings"]["quantize"] == "int8" and report["ours"]["decode_tokens_per_s"] > 0
    assert report["pipeline"] is None and "ours decoding int8" in out
    # asked 0.1 s after the screenshot was attached (its encoding started then, as in the TUI)
    assert report["ours"]["ttft_after_pause_s"] > 0 and report["ours"]["pause_s"] == 0.1
    assert "| TTFT after --pause" in out


FAKE_LLAMA_BENCH = '''#!{python}
"""Stands in for llama.cpp's llama-bench: checks the arguments the benchmark passes, prints its JSON."""
import json, os, sys
open(sys.argv[0] + ".wait-policy", "w").write(os.environ.get("OMP_WAIT_POLICY", "-"))
args = sys.argv[1:]
value = lambda flag: args[args.index(flag) + 1]
assert value("-p") == "0" and value("-o") == "json" and int(value("-d")) > 0 and value("-m").endswith(".gguf")
print(json.dumps([{{"model_type": "llama 256M Q8_0", "model_size": 1, "n_gen": int(value("-n")),
                   "n_depth": int(value("-d")), "avg_ts": 10.0, "samples_ts": [9.5, 10.5]}}]))
'''


def test_bench_decode_by_dtype_beside_a_cpu_hog_and_llama_cpp(capsys, tmp_path, monkeypatch):
    import sys

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # where each decode process makes (and must remove) its store

    fake = tmp_path / "llama-bench"
    fake.write_text(FAKE_LLAMA_BENCH.format(python=sys.executable))
    fake.chmod(0o755)
    gguf = tmp_path / "text-q8_0.gguf"
    gguf.write_bytes(b"GGUF")
    out_file = tmp_path / "bench.json"
    code = main(["bench", "--profile", "tiny-smolvlm", "--runs", "1", "--new-tokens", "4", "--no-screenshot",
                 "--decode", "int8", "--hog", "1", "--llama-bench", str(fake), "--llama-model", str(gguf), "--json", str(out_file)])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out_file.read_text())
    (row,) = report["decode"]["rows"]
    assert row["dtype"] == "int8" and row["context_tokens"] > 800  # as long as the screenshot question
    assert row["idle_tokens_per_s"] > 0 and row["loaded_tokens_per_s"] > 0 and row["loaded_over_idle"] > 0
    assert len(row["raw"]["idle_tokens_per_s"]) == 2 and len(row["raw"]["loaded_tokens_per_s"]) == 1  # idle, hog, idle
    assert row["load_cpu_s"] > 0 and row["peak_rss_mb"] > 0
    llama = report["decode"]["llama_cpp"]
    assert llama["idle"]["tokens_per_s"] == 10.0 and llama["loaded"]["tokens_per_s"] == 10.0
    assert llama["depth"] == row["context_tokens"]
    assert report["ratios"]["decode_int8_over_llama_cpp"] == round(row["idle_tokens_per_s"] / 10.0, 3)
    assert report["ours"]["ttft_turn1_s"] == 0 and "screenshot questions skipped" in out
    assert "| ours int8 @" in out and "| llama.cpp @" in out
    assert [p.name for p in scratch.glob('bench-*')] == []  # the decode process's throwaway store went with it
    # llama-bench runs with the user's environment, not the OpenMP wait policy `import assistant` chose
    from assistant.openmp import user_environment

    assert (tmp_path / "llama-bench.wait-policy").read_text() == user_environment().get("OMP_WAIT_POLICY", "-")
    if os.environ.get("OMP_WAIT_POLICY") == "PASSIVE" and "OMP_WAIT_POLICY" not in user_environment():
        assert (tmp_path / "llama-bench.wait-policy").read_text() == "-"


def test_bench_refuses_an_unknown_dtype_and_a_llama_bench_without_its_model(capsys, tmp_path):
    assert main(["bench", "--profile", "tiny-smolvlm", "--decode", "float16x"]) == 2
    assert "unknown --decode dtype 'float16x'" in capsys.readouterr().err
    fake = tmp_path / "llama-bench"
    fake.write_text("#!/bin/sh\n")
    assert main(["bench", "--profile", "tiny-smolvlm", "--llama-bench", str(fake)]) == 2
    assert "--llama-bench and --llama-model go together" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_disk_cache_times_a_new_process_reading_the_tiles_back(capsys, tmp_path, monkeypatch):
    import tempfile

    from tests.helpers import one_line_error, run_cli

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the bench's shared folder is made
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # and where each side's process makes its throwaway store
    out_file = tmp_path / "bench.json"
    code, out, err = run_cli(capsys, "bench", "--profile", "tiny-smolvlm", "--runs", "1", "--new-tokens", "4",
                             "--no-pipeline", "--disk-cache", "--json", str(out_file))
    assert code == 0, err
    disk = json.loads(out_file.read_text())["disk_cache"]
    assert disk["first_process_tiles_encoded"] > 0  # the first new process ran the encoder and wrote the tiles
    assert disk["next_process_tiles_from_disk"] == disk["first_process_tiles_encoded"]  # the next read them all back
    assert disk["next_process_tiles_encoded"] == 0
    assert disk["first_process_ttft_s"] > 0 and disk["next_process_ttft_s"] > 0
    assert "on-disk vision cache: TTFT" in out and "tiles read from disk, 0 encoded" in out
    assert not list(tmp_path.glob("bench-*"))  # the shared folder and the sides' stores are gone

    code, out, err = run_cli(capsys, "bench", "--profile", "tiny-smolvlm", "--no-screenshot", "--disk-cache")
    assert code != 0
    assert "--disk-cache times the screenshot question" in one_line_error(err)
