"""Start-to-first-paint in a fresh interpreter: it happens, with no torch/transformers imported before it.

The number itself goes to the benchmark (ASSISTANT_BENCH_OUT/tui_first_paint.json, and the test's output); this
test asserts no timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import time
started = time.perf_counter()
import asyncio, json
from assistant.tui.app import AssistantApp
from assistant.tui.config import TuiConfig

async def main():
    app = AssistantApp("tiny-smolvlm", config=TuiConfig(), autoload=False, started_at=started)
    async with app.run_test(size=(120, 40)) as pilot:
        while app.first_paint_s is None:
            await pilot.pause(0.01)
        print(json.dumps({"first_paint_s": app.first_paint_s, "heavy": app.heavy_modules_at_first_paint}))

asyncio.run(main())
"""


def test_first_paint_happens_before_any_heavy_import(tmp_path):
    env = dict(os.environ)
    bench_dir = Path(env.setdefault("ASSISTANT_BENCH_OUT", str(tmp_path / "bench")))
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["first_paint_s"] > 0
    assert measured["heavy"] == []
    bench_file = bench_dir if bench_dir.suffix == ".json" else bench_dir / "tui_first_paint.json"
    recorded = json.loads(bench_file.read_text(encoding="utf-8"))
    assert recorded["metric"] == "tui_first_paint_s" and recorded["value"] == measured["first_paint_s"]
    print(f"\ntui_first_paint_s={measured['first_paint_s']:.3f}")
