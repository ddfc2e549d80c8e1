"""`python -m assistant.bench_kernels`: each part of a decoded token measured on the profile's own model.

What would break it: a kernel fed the wrong shapes or dtype (an exception), a part left out, a thread count not
measured, rows that are not the medians of their samples, or a table that drops a row.
"""

from __future__ import annotations

import statistics

import pytest

from assistant import bench_kernels


@pytest.fixture(scope="module")
def rows():
    return bench_kernels.run("tiny-smolvlm", threads=[1, 2], context=24, repeats=2, tokens=1)


def test_every_part_is_measured_at_every_thread_count(rows):
    parts = {row.part for row in rows}
    assert {
        "int8 bytes read once (memory floor)",
        "float32 products (linear)",
        "int8 weight-only (_weight_int8pack_mm)",
        "attention over 24 positions (SDPA)",
        "whole step, float32",
        "whole step, int8",
    } <= parts
    assert {(part, n) for part in parts for n in (1, 2)} == {(row.part, row.threads) for row in rows}
    for row in rows:
        assert len(row.samples) == 2 and all(value > 0 for value in row.samples)
        assert row.ms_per_token == pytest.approx(statistics.median(row.samples), rel=0.02, abs=0.002)
        assert row.tokens_per_s_if_alone == pytest.approx(1000 / statistics.median(row.samples), rel=0.05)


def test_the_table_has_a_line_per_part_and_a_column_per_thread_count(rows):
    text = bench_kernels.table(rows)
    lines = text.splitlines()
    assert "1 thread: ms" in lines[0] and "2 threads: ms" in lines[0]
    assert len(lines) == 2 + len({row.part for row in rows})
    assert all(line.count("|") == 4 for line in lines)


def test_the_thread_count_is_restored_after_measuring():
    import torch

    before = torch.get_num_threads()
    bench_kernels.measure({"nothing": lambda: None}, [1], repeats=1, tokens=1)
    assert torch.get_num_threads() == before


def test_bad_arguments_exit_with_a_message(capsys):
    with pytest.raises(SystemExit) as raised:
        bench_kernels.main(["tiny-smolvlm", "--threads", "two"])
    assert raised.value.code == 2
    assert "--threads 'two'" in capsys.readouterr().err


def test_an_int8_profile_is_refused_with_what_to_use_instead(tmp_path):
    from pathlib import Path

    from assistant.profiles import load_profile

    text = Path(load_profile("tiny-smolvlm").source).read_text().replace('dtype = "float32"', 'dtype = "int8"')
    assert 'dtype = "int8"' in text
    path = tmp_path / "tiny-int8.toml"
    path.write_text(text)
    with pytest.raises(SystemExit, match="no float fused decode step.*bench-smolvlm-256m-bf16"):
        bench_kernels.run(str(path), threads=[1], context=8, repeats=1, tokens=1)
