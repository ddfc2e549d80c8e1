"""Decode speed by dtype, with and without a CPU hog, and llama.cpp's decode, for `assistant bench`.

Decoding does not care where its context came from, so each dtype answers a text prompt as long as the screenshot
question (~900 tokens) in its own subprocess (its load time and memory are its own), then replies in the same chat:
first with the machine as it is ("idle": nothing started by the benchmark), then while one busy-looping process per
core runs beside it (the "CPU hog" of issue 19), then idle again. Idle and loaded figures come from the same
process a few seconds apart, so their ratio holds on a machine that other programs also use; the CPU seconds per
token (the work, which load barely changes) come with them. llama.cpp is measured by its own `llama-bench` at the
same context depth and thread count, in the same `assistant bench` run, when its path is given.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

from .openmp import user_environment

DTYPES = ("float32", "bfloat16", "int8")
CONTEXT_TOKENS = 880
"""The text prompt's length in tokens: the screenshot question's (900 with the chat template)."""
FILLER = (
    "The quarterly report lists revenue, costs and margins for each region, with notes on hiring, "
    "supply delays and the new product line. "
)


@dataclass
class DecodeResult:
    """One dtype's load and decode figures (medians of the replies; raw lists in `raw`)."""

    dtype: str
    load_s: float = 0.0
    load_cpu_s: float = 0.0
    context_tokens: int = 0
    prefill_ttft_s: float = 0.0
    """TTFT of the text prompt itself (a cold ~900-token prefill, no image)."""
    idle_tokens_per_s: float = 0.0
    idle_cpu_ms_per_token: float = 0.0
    loaded_tokens_per_s: float | None = None
    """With one busy-looping process per core started beside it (None when not measured)."""
    loaded_cpu_ms_per_token: float | None = None
    loaded_over_idle: float | None = None
    peak_rss_mb: float = 0.0
    raw: dict[str, list[float]] = field(default_factory=dict)


def long_prompt(words: int = 600) -> str:
    """A text question of roughly the screenshot question's length in tokens (~900 with the template)."""
    text = (FILLER * (words // len(FILLER.split()) + 1)).split()[:words]
    return " ".join(text) + "\n\nSummarise the report above in one sentence."


@contextlib.contextmanager
def cpu_hog(processes: int) -> Iterator[list[subprocess.Popen]]:
    """Busy-looping Python processes (one per core asked for), ended when the block ends."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(max(0, processes))]
    try:
        time.sleep(0.5 if hogs else 0)  # let them start spinning
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()


def _reply_rates(chat: Any, replies: int, new_tokens: int) -> tuple[list[float], list[float]]:
    """(tokens/s, CPU ms a token) for `replies` follow-ups in `chat` (each decodes `new_tokens`)."""
    rates, cpu_ms = [], []
    for index in range(replies):
        cpu = time.process_time()
        reply = chat.ask(f"And point {index + 1}?")
        used = time.process_time() - cpu
        if reply.tokens_per_s:
            rates.append(float(reply.tokens_per_s))
            cpu_ms.append(1000.0 * used / max(1, new_tokens))
    return rates, cpu_ms


def run_decode(profile_name: str, dtype: str, new_tokens: int, replies: int, hog: int) -> DecodeResult:
    """Load `profile_name` in `dtype`, prefill a ~900-token text prompt, then time replies idle / hogged / idle."""
    from .api import Assistant
    from .bench import peak_rss_mb, throwaway_folder, timed_imports
    from .engine import executor
    from .engine.loading import model_source
    from .store import Store

    work = throwaway_folder("bench-decode-")
    bot = Assistant.from_profile(profile_name, store=Store(work / "bench.sqlite3", work / "images"))
    bot.profile.model.dtype = dtype  # type: ignore[assignment]
    bot.profile.generation.max_new_tokens = new_tokens
    bot.profile.generation.min_new_tokens = new_tokens
    bot.profile.generation.temperature = 0.0
    model_source(bot.profile)
    timed_imports()
    start, cpu = time.perf_counter(), time.process_time()
    bot.load()
    result = DecodeResult(dtype=dtype, load_s=time.perf_counter() - start, load_cpu_s=time.process_time() - cpu)
    executor.run(lambda: bot.engine.decoder)  # build the fused step before timing
    chat = bot.chat()
    tokens = len(bot.engine.loaded.tokenizer(long_prompt(600))["input_ids"])
    first = chat.ask(long_prompt(max(10, 600 * CONTEXT_TOKENS // max(1, tokens))))
    result.context_tokens = int(first.prompt_tokens or 0)
    result.prefill_ttft_s = float(first.ttft_s or 0.0)
    idle_rates, idle_cpu = _reply_rates(chat, replies, new_tokens)
    loaded_rates: list[float] = []
    loaded_cpu: list[float] = []
    if hog:
        with cpu_hog(hog):
            loaded_rates, loaded_cpu = _reply_rates(chat, replies, new_tokens)
        after_rates, after_cpu = _reply_rates(chat, replies, new_tokens)
        idle_rates, idle_cpu = idle_rates + after_rates, idle_cpu + after_cpu
    result.idle_tokens_per_s = statistics.median(idle_rates) if idle_rates else 0.0
    result.idle_cpu_ms_per_token = statistics.median(idle_cpu) if idle_cpu else 0.0
    if loaded_rates:
        result.loaded_tokens_per_s = statistics.median(loaded_rates)
        result.loaded_cpu_ms_per_token = statistics.median(loaded_cpu)
        if result.idle_tokens_per_s:
            result.loaded_over_idle = round(result.loaded_tokens_per_s / result.idle_tokens_per_s, 3)
    result.raw = {"idle_tokens_per_s": idle_rates, "loaded_tokens_per_s": loaded_rates}
    result.peak_rss_mb = peak_rss_mb()
    return result


def decode_side(profile: str, dtype: str, new_tokens: int, replies: int, hog: int, threads: int) -> dict[str, Any]:
    """run_decode in a fresh subprocess (its own load and memory); the result as a dict."""
    env = dict(os.environ, ASSISTANT_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    command = [sys.executable, "-m", "assistant.bench_decode", profile, dtype, str(new_tokens), str(replies), str(hog)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"decode benchmark ({dtype}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def llama_cpp_decode(
    binary: str, model: str, threads: int, new_tokens: int, depth: int, repetitions: int = 3, hog: int = 0
) -> dict[str, Any]:
    """llama.cpp's decode tokens/s from its `llama-bench` (tg of `new_tokens` after a `depth`-token context).

    With `hog` > 0 the same measurement runs again beside that many busy-looping processes.
    """
    def measure() -> dict[str, Any]:
        cpu = _children_cpu()
        command = [binary, "-m", model, "-p", "0", "-n", str(new_tokens), "-d", str(depth), "-t", str(threads),
                   "-r", str(repetitions), "-o", "json"]
        # Run as the user would run it: not with the OpenMP wait policy `import assistant` chose for our decoding.
        done = subprocess.run(command, capture_output=True, text=True, env=user_environment())
        if done.returncode != 0:
            raise RuntimeError(f"llama-bench failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
        rows = json.loads(done.stdout)
        row = rows[0]
        return {"tokens_per_s": float(row["avg_ts"]), "samples": [float(s) for s in row.get("samples_ts", [])],
                "cpu_s": _children_cpu() - cpu, "model_type": row.get("model_type"), "model_size": row.get("model_size")}

    result = {"binary": binary, "model": model, "depth": depth, "new_tokens": new_tokens, "idle": measure()}
    if hog:
        with cpu_hog(hog):
            result["loaded"] = measure()
        idle, loaded = result["idle"]["tokens_per_s"], result["loaded"]["tokens_per_s"]
        result["loaded_over_idle"] = round(loaded / idle, 3) if idle else None
    return result


def _children_cpu() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


def format_decode_table(rows: list[dict[str, Any]], llama: dict[str, Any] | None) -> str:
    """The decode lines of the report: one per dtype, then llama.cpp's."""
    lines = [
        "",
        f"| {'decode (same run)':<26} | {'load s (CPU)':>13} | {'prefill s':>9} | {'tok/s idle':>10} | "
        f"{'ms CPU/tok':>10} | {'tok/s hog':>9} | {'hog/idle':>8} | {'peak MB':>7} |",
        f"|{'-' * 28}|{'-' * 15}|{'-' * 11}|{'-' * 12}|{'-' * 12}|{'-' * 11}|{'-' * 10}|{'-' * 9}|",
    ]

    def num(value: Any, fmt: str) -> str:
        return format(value, fmt) if isinstance(value, (int, float)) else "-"

    for row in rows:
        lines.append(
            f"| {'ours ' + row['dtype'] + ' @' + str(row['context_tokens']):<26} | "
            f"{num(row['load_s'], '.2f') + ' (' + num(row['load_cpu_s'], '.2f') + ')':>13} | "
            f"{num(row.get('prefill_ttft_s'), '.2f'):>9} | {num(row['idle_tokens_per_s'], '.1f'):>10} | {num(row['idle_cpu_ms_per_token'], '.1f'):>10} | "
            f"{num(row.get('loaded_tokens_per_s'), '.1f'):>9} | {num(row.get('loaded_over_idle'), '.2f'):>8} | "
            f"{num(row['peak_rss_mb'], '.0f'):>7} |"
        )
    if llama:
        loaded = llama.get("loaded") or {}
        lines.append(
            f"| {'llama.cpp @' + str(llama['depth']):<26} | {'-':>13} | {'-':>9} | "
            f"{num(llama['idle']['tokens_per_s'], '.1f'):>10} | "
            f"{'-':>10} | {num(loaded.get('tokens_per_s'), '.1f'):>9} | {num(llama.get('loaded_over_idle'), '.2f'):>8} | "
            f"{'-':>7} |"
        )
        lines.append(f"llama.cpp model: {llama['model']} ({llama['idle'].get('model_type')})")
    return "\n".join(lines)


if __name__ == "__main__":
    profile, dtype, tokens, replies, hog = sys.argv[1:6]
    print(json.dumps(asdict(run_decode(profile, dtype, int(tokens), int(replies), int(hog)))))
