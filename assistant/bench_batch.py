"""Benchmark: `assistant batch` throughput (inputs/s) by --batch-size, through the same code as the command.

Run `python -m assistant.bench_batch --profile bench-smolvlm-256m-quick --images 16 --sizes 1,4,8`. It draws
`--images` different pictures (640x480, shapes in several colours), loads the profile once, then answers them all
once per batch size with the BatchRun/ModelAnswerer the command uses, every answer exactly `--new-tokens` long
(greedy, min_new_tokens = max_new_tokens, so random-weight models do not stop early). Batch 1 is the chat path
(`backend.stream`, fused decode step); larger sizes are one `generate` call per group (engine.batching).
The engine's vision cache is off (each input
pays its encoder, as a new image does). A small group is run and discarded before each size to warm up; sizes may repeat (1,8,1,8) so that a busy
machine's load hits every size alike. CPU seconds of this process are reported too: on a shared machine they
measure the work per input better than the wall clock.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

COLOURS = ["red", "green", "blue", "orange", "purple", "black", "cyan", "magenta", "yellow", "brown"]


def draw_inputs(folder: Path, count: int) -> list[Path]:
    from PIL import Image, ImageDraw

    paths = []
    for index in range(count):
        image = Image.new("RGB", (640, 480), "white")
        draw = ImageDraw.Draw(image)
        colour = COLOURS[index % len(COLOURS)]
        draw.rectangle([40 + 7 * index, 60, 300 + 5 * index, 330], fill=colour)
        draw.ellipse([350, 100 + 3 * index, 600, 400], outline=COLOURS[(index + 3) % len(COLOURS)], width=9)
        path = folder / f"{index:03d}.png"
        image.save(path)
        paths.append(path)
    return paths


def measure(profile: str, images: int, sizes: list[int], new_tokens: int, question: str) -> dict[str, Any]:
    from .api import Assistant, GenerationOptions
    from .batch import BatchRun, expand_inputs
    from .batch_model import ImageReader, ModelAnswerer

    bot = Assistant.from_profile(profile)
    bot.profile.generation.min_new_tokens = new_tokens  # fixed decode length: every answer costs the same
    bot.load()
    reader = ImageReader(bot.plugins)
    results: dict[str, Any] = {"profile": profile, "images": images, "new_tokens": new_tokens, "runs": []}
    with tempfile.TemporaryDirectory() as directory:
        paths = draw_inputs(Path(directory), images)
        items = expand_inputs([str(path) for path in paths], question, reader.page_count)
        answerer = ModelAnswerer(bot, GenerationOptions(max_new_tokens=new_tokens))
        for size in sizes:
            warm: list[dict] = []
            BatchRun(items=items[: min(size, 2)], profile=profile, answer_many=answerer, write=warm.append,
                     read_image=reader, batch_size=min(size, 2)).run()
            written: list[dict] = []
            started, cpu_started = time.perf_counter(), time.process_time()
            summary = BatchRun(items=items, profile=profile, answer_many=answerer, write=written.append,
                               read_image=reader, batch_size=size).run()
            seconds = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
            tokens = sum(record["completion_tokens"] for record in written)
            run = {
                "batch_size": size,
                "ok": summary.ok,
                "seconds": round(seconds, 2),
                "inputs_per_s": round(summary.ok / seconds, 3),
                "generated_tokens_per_s": round(tokens / seconds, 1),
                "cpu_s": round(cpu, 2),
                "inputs_per_cpu_s": round(summary.ok / cpu, 3),
            }
            results["runs"].append(run)
            print(json.dumps(run), flush=True)
    baseline = sorted(run["inputs_per_s"] for run in results["runs"] if run["batch_size"] == sizes[0])
    base = baseline[len(baseline) // 2]  # the median of the baseline's runs (sizes may repeat: 1,8,1,8)
    cpu_runs = sorted(run["inputs_per_cpu_s"] for run in results["runs"] if run["batch_size"] == sizes[0])
    cpu_base = cpu_runs[len(cpu_runs) // 2]
    for run in results["runs"]:
        run["speedup"] = round(run["inputs_per_s"] / base, 2)
        run["cpu_speedup"] = round(run["inputs_per_cpu_s"] / cpu_base, 2)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="bench-smolvlm-256m-quick")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--sizes", default="1,4,8", help="Comma-separated batch sizes, may repeat (the first is the baseline).")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--question", default="Describe this picture.")
    parser.add_argument("--json", default=None, help="Also write the results here.")
    parser.add_argument("--vision-cache", action="store_true",
                        help="Keep the engine's vision cache on (warm-up images would then be free in later runs).")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not args.vision_cache:
        os.environ["ASSISTANT_VISION_CACHE_MB"] = "0"  # every input pays its encoder, as new images do
    results = measure(args.profile, args.images, [int(size) for size in args.sizes.split(",")], args.new_tokens,
                      args.question)
    print(f"{'batch':>5} {'inputs/s':>9} {'tokens/s':>9} {'speedup':>8} {'inputs/cpu-s':>13} {'cpu speedup':>12}")
    for run in results["runs"]:
        print(f"{run['batch_size']:>5} {run['inputs_per_s']:>9.3f} {run['generated_tokens_per_s']:>9.1f} "
              f"{run['speedup']:>7.2f}x {run['inputs_per_cpu_s']:>13.3f} {run['cpu_speedup']:>11.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
