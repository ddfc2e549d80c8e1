"""Benchmark: ranking the pages of a long text PDF by a question, the first time and from the cache.

Run `python -m assistant.bench_documents [--pages 1000]`. It writes a manual-like PDF (Zipf-distributed
words, headings, one page about the Lambert W function), then times, in this one process: importing pymupdf,
the first `prepare_document` (text extraction + cache write + ranking) and a second one (cache hit), both in
text mode so that rendering the chosen pages is not counted. The cache lives in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

from .bench import throwaway_folder

QUESTION = "What does the Lambert W function compute?"


def write_manual(path: Path, pages: int, seed: int = 7) -> int:
    """A `pages`-page manual-like PDF; returns the page that explains the Lambert W function."""
    import pymupdf

    rng = random.Random(seed)
    common = (
        "the of and to in is for that with as on by this be are it or from at an which can function value "
        "returns computes plot data set option command file"
    ).split()
    vocabulary = common + [f"{rng.choice('bcdfgklmnprstv')}{rng.choice('aeiou')}{n:x}term" for n in range(6000)]
    weights = [1.0 / (rank + 1) for rank in range(len(vocabulary))]
    answer = pages * 3 // 4
    document = pymupdf.open()
    for number in range(1, pages + 1):
        lines = [f"{number // 20 + 1}.{number % 20} Section {number}"]
        for _line in range(48):
            lines.append(" ".join(rng.choices(vocabulary, weights, k=12)))
        if number == answer:
            lines[5] = "The Lambert W function computes the inverse of w exp(w): lambertw(x) returns w with w e^w = x."
        document.new_page().insert_textbox(pymupdf.Rect(50, 50, 560, 800), "\n".join(lines), fontsize=8)
    document.save(path)
    document.close()
    return answer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    args = parser.parse_args(argv)
    work = throwaway_folder("bench-documents-")
    os.environ["ASSISTANT_CACHE_DIR"] = str(work / "cache")
    os.environ.setdefault("ASSISTANT_HOME", str(work / "home"))

    started = time.perf_counter()
    import pymupdf  # noqa: F401 - timed on its own: any real `ask --pdf` pays it once

    import_s = time.perf_counter() - started
    path = work / "manual.pdf"
    answer = write_manual(path, args.pages)

    from .documents import prepare_document
    from .plugins import create_plugin_manager
    from .profiles import DocumentSettings

    manager = create_plugin_manager(load_entry_points=False)
    settings = DocumentSettings(pdf_mode="text")
    timings = []
    for _run in range(2):
        started = time.perf_counter()
        context = prepare_document(manager, path, QUESTION, None, settings)
        timings.append(time.perf_counter() - started)
        assert answer in context.pages, (answer, context.reason)
    size_mb = path.stat().st_size / 1e6
    print(
        f"{args.pages} pages ({size_mb:.1f} MB): import pymupdf {import_s:.2f} s · first ranking {timings[0]:.2f} s "
        f"· second (cached) {timings[1]:.3f} s · chose {context.reason}"
    )


if __name__ == "__main__":
    main()
