"""`assistant bench` runs end to end (on the tiny profile here; the real numbers come from bench-smolvlm-256m)."""

from __future__ import annotations

import json

from assistant.cli import main


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
                 "--quantize", "int8", "--json", str(out_file)])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out_file.read_text())
    assert report["settings"]["quantize"] == "int8" and report["ours"]["decode_tokens_per_s"] > 0
    assert report["pipeline"] is None and "ours decoding int8" in out
