"""`assistant bench`: first-token latency, decode speed and memory of our engine vs transformers' pipeline.

Each side runs in its own subprocess (so peak RSS is its own) on the same locally built model, the same
1920x1080 screenshot-like image, the same question, greedy decoding with a fixed number of new tokens and
the same thread count. The report adds the machine's measured memory read bandwidth and the decode
roofline it implies (bytes of the text model's weights read per token).
"""

from __future__ import annotations

import atexit
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

QUESTION = "What is shown on this screen? Describe the windows and the text you can read."
FOLLOW_UP = "Which button should I press to save the document?"


@dataclass
class SideResult:
    name: str
    import_s: float = 0.0
    """Importing torch, torchvision and transformers' auto classes (timed first, apart from the load)."""
    import_cpu_s: float = 0.0
    load_s: float = 0.0
    """Config, processor and weights, after the imports (CPU seconds in load_cpu_s: work, not waiting)."""
    load_cpu_s: float = 0.0
    fuse_s: float | None = None
    """Building the fused decode step (ours; done by the first reply, timed apart here)."""
    ttft_cached_image_s: float | None = None
    """TTFT of the first question about the same screenshot in a new chat (vision cache hit, KV cache cold)."""
    ttft_encoded_ahead_s: float | None = None
    """TTFT when the screenshot was prefilled while the question was typed (Assistant.prefill_ahead, as the TUI
    does when an image is attached; caches cold before it)."""
    ttft_after_pause_s: float | None = None
    """TTFT of a question sent `pause_s` after the screenshot was attached (its encoding started then, as the TUI
    does): what the user feels after typing for that long; the rest of the encoding is in it if that took longer."""
    pause_s: float = 0.0
    preprocess_s: float | None = None
    ttft_turn1_s: float = 0.0
    ttft_followup_s: float = 0.0
    decode_tokens_per_s: float = 0.0
    prompt_tokens: int = 0
    peak_rss_mb: float = 0.0
    runs: int = 0
    raw: dict[str, list[float]] = field(default_factory=dict)


def screenshot_like_image(size: tuple[int, int] = (1920, 1080)) -> Any:
    """A deterministic desktop-like picture: title bars, windows, text lines, buttons."""
    from PIL import Image, ImageDraw

    width, height = size
    image = Image.new("RGB", size, (32, 44, 64))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, height - 40, width, height], fill=(20, 20, 24))
    for index, (x, y, w, h) in enumerate([(80, 60, 1100, 700), (900, 300, 900, 640), (200, 600, 500, 360)]):
        draw.rectangle([x, y, x + w, y + h], fill=(236, 236, 240), outline=(90, 90, 90), width=2)
        draw.rectangle([x, y, x + w, y + 32], fill=(60 + 40 * index, 90, 160))
        draw.text((x + 12, y + 8), f"Window {index + 1} - report_{index}.txt", fill="white")
        for line in range(1, (h - 60) // 22):
            draw.text((x + 16, y + 32 + line * 22), f"Line {line}: quarterly revenue grew {line * 3}% in region {index}", fill=(20, 20, 20))
        draw.rectangle([x + w - 180, y + h - 48, x + w - 100, y + h - 16], fill=(40, 120, 220))
        draw.text((x + w - 166, y + h - 40), "Save", fill="white")
    return image


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def throwaway_folder(prefix: str) -> Path:
    """A new folder in the temporary directory, removed when this process exits (benchmarks never keep their
    stores, models' outputs or documents: 144 left-behind bench folders had once gathered here)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, work, True)
    return work


def peak_rss_mb() -> float:
    """This process's own peak resident memory in MB.

    Linux: VmHWM, the high-water mark of this process's memory. Not `ru_maxrss`: it carries over the parent's
    peak through fork and exec, so a benchmark side started by a parent that had grown to 2.2 GB reported 2.2 GB
    whatever it used itself (a child that allocates nothing reported the parent's 811 MB). Elsewhere `ru_maxrss`
    (bytes on macOS, KB on other systems).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def timed_imports() -> tuple[float, float]:
    """(wall, CPU) seconds to import torch, torchvision (when installed) and transformers' auto classes."""
    import importlib.util

    start, cpu = time.perf_counter(), time.process_time()
    import torch  # noqa: F401

    if importlib.util.find_spec("torchvision") is not None:
        import torchvision  # noqa: F401
    from transformers import AutoModelForImageTextToText, AutoProcessor  # noqa: F401

    return time.perf_counter() - start, time.process_time() - cpu


# --- the two sides (each runs in its own process) --------------------------------------------

def _bench_assistant(profile_name: str, new_tokens: int) -> Any:
    """An Assistant on a throwaway store, greedy, exactly `new_tokens` a reply, its local model built (not loaded).

    ASSISTANT_BENCH_QUANTIZE=int8 (`--quantize int8`) decodes with int8 weights."""
    from .api import Assistant
    from .engine.loading import model_source
    from .store import Store

    work = throwaway_folder("bench-")  # each side is its own process: its throwaway store goes with it
    bot = Assistant.from_profile(profile_name, store=Store(work / "bench.sqlite3", work / "images"))
    if os.environ.get("ASSISTANT_BENCH_QUANTIZE"):
        bot.profile.model.dtype = os.environ["ASSISTANT_BENCH_QUANTIZE"]  # type: ignore[assignment]
    bot.profile.generation.max_new_tokens = new_tokens
    bot.profile.generation.min_new_tokens = new_tokens
    bot.profile.generation.temperature = 0.0
    model_source(bot.profile)  # build the local model first: building is not loading
    return bot


def run_ours(profile_name: str, runs: int, new_tokens: int) -> SideResult:
    """Our engine: load, the screenshot questions, the caches."""
    from .engine import executor
    from .engine.inputs import image_kwargs
    from .images import image_from_pil

    bot = _bench_assistant(profile_name, new_tokens)
    import_s, import_cpu_s = timed_imports()
    start, cpu = time.perf_counter(), time.process_time()
    bot.load()
    engine = bot.engine
    result = SideResult(name="ours", load_s=time.perf_counter() - start, runs=runs)
    result.load_cpu_s = time.process_time() - cpu
    result.import_s, result.import_cpu_s = import_s, import_cpu_s
    start = time.perf_counter()
    executor.run(lambda: engine.decoder)  # the first reply would build it; timed apart so TTFTs stay comparable
    result.fuse_s = time.perf_counter() - start
    screenshot = image_from_pil(screenshot_like_image(), "bench screenshot")
    processor = engine.loaded.processor
    chat_template = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    prompt = processor.apply_chat_template(chat_template, add_generation_prompt=True, tokenize=False)
    preprocess, ttft1, ttft2, decode, cached, ahead, paused = [], [], [], [], [], [], []
    pause_s = float(os.environ.get("ASSISTANT_BENCH_PAUSE_S", "0") or 0)
    for _ in range(runs):
        preprocess.append(executor.run(_time_preprocessing, processor, prompt, screenshot.image, image_kwargs(engine.loaded)))
        engine.invalidate_cache()  # every run's first turn is cold (identical chats would otherwise share it)
        chat = bot.chat()
        first = chat.ask(QUESTION, images=[screenshot])
        second = chat.ask(FOLLOW_UP)
        engine.cache.clear()  # the conversation's KV cache: only the vision cache may help the next question
        third = bot.chat().ask(QUESTION, images=[screenshot])
        engine.invalidate_cache()  # both caches: as if the screenshot were new, prefilled while the user types
        bot.prefill_ahead([screenshot]).result()  # what the TUI does when an image is attached
        fourth = bot.chat().ask(QUESTION, images=[screenshot])
        ahead.append(fourth.ttft_s or 0.0)
        if pause_s > 0:
            engine.invalidate_cache()
            bot.prefill_ahead([screenshot])  # attached: the TUI's head start begins; the user types for pause_s
            time.sleep(pause_s)
            fifth = bot.chat().ask(QUESTION, images=[screenshot])
            paused.append(fifth.ttft_s or 0.0)
        ttft1.append(first.ttft_s or 0.0)
        ttft2.append(second.ttft_s or 0.0)
        cached.append(third.ttft_s or 0.0)
        decode.extend(value for value in (first.tokens_per_s, second.tokens_per_s) if value)
        result.prompt_tokens = first.prompt_tokens
    result.preprocess_s = median(preprocess)
    result.ttft_turn1_s = median(ttft1)
    result.ttft_followup_s = median(ttft2)
    result.ttft_cached_image_s = median(cached)
    result.ttft_encoded_ahead_s = median(ahead)
    if paused:
        result.ttft_after_pause_s, result.pause_s = median(paused), pause_s
    result.decode_tokens_per_s = median(decode)
    result.raw = {
        "preprocess_s": preprocess, "ttft_turn1_s": ttft1, "ttft_followup_s": ttft2,
        "ttft_cached_image_s": cached, "ttft_encoded_ahead_s": ahead, "decode_tokens_per_s": decode,
        "ttft_after_pause_s": paused,
    }
    result.peak_rss_mb = peak_rss_mb()
    return result


def run_disk_probe(profile_name: str, runs: int, new_tokens: int) -> SideResult:
    """The screenshot question once, in this new process, with the vision cache's disk tier in the folder
    ASSISTANT_BENCH_DISK_DIR (engine/vision_disk.py): the first such process encodes the tiles and writes them,
    a later one reads them. Never the user's own cache folder."""
    from .engine import executor
    from .engine.vision_disk import DiskFeatures, model_identity
    from .images import image_from_pil

    bot = _bench_assistant(profile_name, new_tokens)
    bot.load()
    engine = bot.engine
    cache = engine.vision_cache
    cache.disk = DiskFeatures(Path(os.environ["ASSISTANT_BENCH_DISK_DIR"]), 1 << 30)
    cache.disk_identity = model_identity(engine.loaded.source, engine.loaded.model)
    executor.run(lambda: engine.decoder)  # fused apart, as in run_ours
    reply = bot.chat().ask(QUESTION, images=[image_from_pil(screenshot_like_image(), "bench screenshot")])
    result = SideResult(name="disk", ttft_turn1_s=reply.ttft_s or 0.0, prompt_tokens=reply.prompt_tokens, runs=1)
    result.raw = {"tiles_from_disk": [float(cache.disk_hits)], "tiles_encoded": [float(cache.misses)]}
    result.peak_rss_mb = peak_rss_mb()
    return result


def _disk_table(profile: str, runs: int, new_tokens: int, threads: int, say: Any) -> dict[str, Any]:
    """The same screenshot question in new processes sharing one disk-tier folder: the first encodes, the next
    `runs` read the tiles back (what a second `assistant ask` about the same page feels)."""
    say(f"the on-disk vision cache: the screenshot question in {runs + 1} new processes")
    folder = tempfile.mkdtemp(prefix="bench-vision-")
    try:
        extra = {"ASSISTANT_BENCH_DISK_DIR": folder}
        first = run_side("disk", profile, 1, new_tokens, threads, extra_env=extra)
        later = [run_side("disk", profile, 1, new_tokens, threads, extra_env=extra) for _ in range(runs)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "first_process_ttft_s": first["ttft_turn1_s"],
        "first_process_tiles_encoded": int(first["raw"]["tiles_encoded"][0]),
        "next_process_ttft_s": median([side["ttft_turn1_s"] for side in later]),
        "next_process_tiles_from_disk": int(min(side["raw"]["tiles_from_disk"][0] for side in later)),
        "next_process_tiles_encoded": int(max(side["raw"]["tiles_encoded"][0] for side in later)),
        "raw_next_process_ttft_s": [side["ttft_turn1_s"] for side in later],
    }


def _time_preprocessing(processor: Any, prompt: str, image: Any, kwargs: dict[str, Any]) -> float:
    """Seconds the processor takes for one prompt with the screenshot (run on the engine thread, like a reply)."""
    begin = time.perf_counter()
    processor(text=[prompt], images=[[image]], return_tensors="pt", **kwargs)
    return time.perf_counter() - begin


class _TimingStreamer:
    """A transformers streamer that only records when each token arrives (the first put is the prompt)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def put(self, value: Any) -> None:
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def run_pipeline(profile_name: str, runs: int, new_tokens: int) -> SideResult:
    from .engine.loading import configure_torch_threads, model_source, resolve_dtype
    from .profiles import load_profile

    profile = load_profile(profile_name)
    source = model_source(profile)
    import_s, import_cpu_s = timed_imports()
    configure_torch_threads()
    from transformers import pipeline
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    start, cpu = time.perf_counter(), time.process_time()
    pipe = pipeline("image-text-to-text", model=source, dtype=resolve_dtype(profile.model.dtype, "cpu"), device="cpu")
    result = SideResult(name="transformers.pipeline", load_s=time.perf_counter() - start, runs=runs)
    result.load_cpu_s = time.process_time() - cpu
    result.import_s, result.import_cpu_s = import_s, import_cpu_s
    image = screenshot_like_image()
    ttft1, ttft2, decode = [], [], []
    for _ in range(runs):
        messages = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": QUESTION}]}]
        first_text, first_ttft, first_rate = _pipeline_turn(pipe, messages, new_tokens)
        messages += [
            {"role": "assistant", "content": [{"type": "text", "text": first_text}]},
            {"role": "user", "content": [{"type": "text", "text": FOLLOW_UP}]},
        ]
        _, second_ttft, second_rate = _pipeline_turn(pipe, messages, new_tokens)
        ttft1.append(first_ttft)
        ttft2.append(second_ttft)
        decode.extend([first_rate, second_rate])
    result.ttft_turn1_s = median(ttft1)
    result.ttft_followup_s = median(ttft2)
    result.decode_tokens_per_s = median(decode)
    result.raw = {"ttft_turn1_s": ttft1, "ttft_followup_s": ttft2, "decode_tokens_per_s": decode}
    result.prompt_tokens = int(
        pipe.processor(
            text=[pipe.processor.apply_chat_template(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}],
                add_generation_prompt=True, tokenize=False,
            )],
            images=[[image]],
            return_tensors="pt",
        )["input_ids"].shape[-1]
    )
    result.peak_rss_mb = peak_rss_mb()
    return result


def _pipeline_turn(pipe: Any, messages: list[dict], new_tokens: int) -> tuple[str, float, float]:
    streamer = _TimingStreamer()
    start = time.perf_counter()
    output = pipe(
        text=messages,
        max_new_tokens=new_tokens,
        generate_kwargs={"min_new_tokens": new_tokens, "do_sample": False, "streamer": streamer},
        return_full_text=False,
    )
    tokens = streamer.times[1:]
    ttft = tokens[0] - start if tokens else 0.0
    rate = (len(tokens) - 1) / (tokens[-1] - tokens[0]) if len(tokens) > 1 and tokens[-1] > tokens[0] else 0.0
    return str(output[0]["generated_text"]), ttft, rate


# --- the machine ------------------------------------------------------------------------------

def memory_read_bandwidth_gbs(size_mb: int = 1024, repeats: int = 7) -> float:
    """Median GB/s of summing a buffer much larger than the caches, with torch's threads."""
    import torch

    buffer = torch.ones(size_mb * 1024 * 1024 // 4, dtype=torch.float32)
    buffer.sum()
    speeds = []
    for _ in range(repeats):
        start = time.perf_counter()
        buffer.sum()
        speeds.append(buffer.numel() * 4 / (time.perf_counter() - start) / 1e9)
    return median(speeds)


def decode_bytes_per_token(profile_name: str, quantize: str | None = None) -> tuple[int, int]:
    """Parameters read per decoded token and their bytes: the decoder layers and the LM head.

    The input embedding matrix is not counted: a token reads one row of it (unless it is tied to the head,
    which is then counted once as the head).
    """
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    from .engine.loading import model_source
    from .profiles import load_profile

    profile = load_profile(profile_name)
    config = AutoConfig.from_pretrained(model_source(profile))
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    text_model = model.get_decoder() if hasattr(model, "get_decoder") else model.model.text_model
    embedding = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    params = sum(t.numel() for t in text_model.parameters() if t is not embedding) + head.numel()
    dtype = profile.model.dtype
    width = {"float32": 4, "bfloat16": 2, "float16": 2}.get(dtype, 4)
    if quantize == "int8":
        width = 1  # (the per-row scales add 0.2%)
    return params, params * width


# --- the report -------------------------------------------------------------------------------

def run_side(
    side: str, profile: str, runs: int, new_tokens: int, threads: int, quantize: str | None = None, pause_s: float = 0.0,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    env = dict(os.environ, ASSISTANT_THREADS=str(threads), OMP_NUM_THREADS=str(threads), **(extra_env or {}))
    env["ASSISTANT_BENCH_PAUSE_S"] = str(pause_s)
    env.pop("ASSISTANT_BENCH_QUANTIZE", None)
    if quantize and side == "ours":
        env["ASSISTANT_BENCH_QUANTIZE"] = quantize
    command = [sys.executable, "-m", "assistant.bench", side, profile, str(runs), str(new_tokens)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark side {side!r} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def benchmark(
    profile: str = "bench-smolvlm-256m",
    runs: int = 3,
    new_tokens: int = 32,
    threads: int | None = None,
    include_pipeline: bool = True,
    progress: Any = None,
    quantize: str | None = None,
    decode_dtypes: tuple[str, ...] = (),
    hog: int = 0,
    llama_bench: str | None = None,
    llama_model: str | None = None,
    screenshot: bool = True,
    pause_s: float = 0.0,
    disk_cache: bool = False,
) -> dict[str, Any]:
    """The report; `decode_dtypes`, `hog` and `llama_bench` add the decode table (assistant/bench_decode.py),
    `disk_cache` the on-disk vision cache's TTFT in a new process."""
    threads = threads or os.cpu_count() or 1
    say = progress or (lambda message: None)
    ours: dict[str, Any] = asdict(SideResult(name="ours (screenshot part skipped)"))
    if screenshot:
        say(f"building / loading {profile} and running our engine ({runs} runs)")
        ours = run_side("ours", profile, runs, new_tokens, threads, quantize, pause_s)
    disk = _disk_table(profile, runs, new_tokens, threads, say) if disk_cache and screenshot else None
    decode = _decode_table(profile, decode_dtypes, hog, llama_bench, llama_model, new_tokens, threads, runs, say)
    pipe = None
    if include_pipeline and screenshot:
        say("running transformers.pipeline on the same model and inputs")
        pipe = run_side("pipeline", profile, runs, new_tokens, threads)
    say("measuring memory read bandwidth")
    import torch

    torch.set_num_threads(threads)
    bandwidth = memory_read_bandwidth_gbs()
    params, per_token = decode_bytes_per_token(profile, quantize)
    roofline = bandwidth * 1e9 / per_token
    report: dict[str, Any] = {
        "profile": profile,
        "random_weights": True,
        "machine": {
            "cpu": _cpu_name(),
            "cores": os.cpu_count(),
            "threads": threads,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": __import__("transformers").__version__,
        },
        "settings": {"runs": runs, "new_tokens": new_tokens, "greedy": True, "image": "1920x1080", "quantize": quantize,
                     "screenshot": screenshot},
        "ours": ours,
        "pipeline": pipe,
        "decode": decode,
        "disk_cache": disk,
        "memory_bandwidth_gbs": bandwidth,
        "text_model_params": params,
        "decode_bytes_per_token": per_token,
        "roofline_tokens_per_s": roofline,
        "ratios": {
            "decode_ours_over_pipeline": _ratio(ours["decode_tokens_per_s"], pipe and pipe["decode_tokens_per_s"]),
            "ttft1_pipeline_over_ours": _ratio(pipe and pipe["ttft_turn1_s"], ours["ttft_turn1_s"]),
            "ttft_followup_pipeline_over_ours": _ratio(pipe and pipe["ttft_followup_s"], ours["ttft_followup_s"]),
            "followup_over_turn1": _ratio(ours["ttft_followup_s"], ours["ttft_turn1_s"]),
            "cached_image_over_turn1": _ratio(ours.get("ttft_cached_image_s"), ours["ttft_turn1_s"]),
            "encoded_ahead_over_turn1": _ratio(ours.get("ttft_encoded_ahead_s"), ours["ttft_turn1_s"]),
            "after_pause_over_turn1": _ratio(ours.get("ttft_after_pause_s"), ours["ttft_turn1_s"]),
            "disk_next_process_over_first": _ratio(
                disk and disk["next_process_ttft_s"], disk and disk["first_process_ttft_s"]
            ),
            "decode_ours_over_roofline": _ratio(ours["decode_tokens_per_s"], roofline),
            "decode_int8_over_llama_cpp": _ratio(
                _decode_rate(decode, "int8"), decode.get("llama_cpp") and decode["llama_cpp"]["idle"]["tokens_per_s"]
            ),
        },
    }
    return report


def _decode_table(
    profile: str, dtypes: tuple[str, ...], hog: int, llama_bench: str | None, llama_model: str | None,
    new_tokens: int, threads: int, runs: int, say: Any,
) -> dict[str, Any]:
    """Decode by dtype (each in its own process; `runs` replies idle, beside `hog` busy processes, idle again)
    and llama.cpp's (`runs` repetitions)."""
    from .bench_decode import decode_side, llama_cpp_decode

    rows = []
    for dtype in dtypes:
        say(f"decode {dtype}" + (f" (idle, beside {hog} busy processes, idle)" if hog else ""))
        rows.append(decode_side(profile, dtype, new_tokens, runs, hog, threads))
    llama = None
    if llama_bench and llama_model:
        depth = max((row["context_tokens"] for row in rows), default=900) or 900
        say(f"llama.cpp decode ({Path(llama_model).name}, depth {depth})")
        llama = llama_cpp_decode(llama_bench, llama_model, threads, new_tokens, depth, repetitions=runs, hog=hog)
    return {"rows": rows, "llama_cpp": llama, "hog_processes": hog}


def _decode_rate(decode: dict[str, Any], dtype: str) -> float | None:
    return next((row["idle_tokens_per_s"] for row in decode["rows"] if row["dtype"] == dtype), None)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def format_table(report: dict[str, Any]) -> str:
    ours, pipe = report["ours"], report.get("pipeline") or {}

    def cell(side: dict, key: str, fmt: str) -> str:
        value = side.get(key)
        return format(value, fmt) if isinstance(value, (int, float)) else "-"

    rows = [
        ("import torch+tv+tf (s)", "import_s", ".2f"),
        ("  of which CPU (s)", "import_cpu_s", ".2f"),
        ("model load (s)", "load_s", ".2f"),
        ("  of which CPU (s)", "load_cpu_s", ".2f"),
        ("fuse decode step (s)", "fuse_s", ".2f"),
        ("preprocess 1920x1080 (s)", "preprocess_s", ".3f"),
        ("TTFT turn 1 (s)", "ttft_turn1_s", ".2f"),
        ("TTFT follow-up (s)", "ttft_followup_s", ".2f"),
        ("TTFT same image, new chat", "ttft_cached_image_s", ".2f"),
        ("TTFT image prefilled ahead", "ttft_encoded_ahead_s", ".2f"),
        ("TTFT after --pause", "ttft_after_pause_s", ".2f"),
        ("decode (tokens/s)", "decode_tokens_per_s", ".1f"),
        ("peak RSS (MB)", "peak_rss_mb", ".0f"),
        ("prompt tokens, turn 1", "prompt_tokens", "d"),
    ]
    lines = [
        f"profile {report['profile']} (RANDOM WEIGHTS) on {report['machine']['cpu']}, "
        f"{report['machine']['threads']} threads, {report['settings']['runs']} runs, "
        f"{report['settings']['new_tokens']} new tokens, medians"
        + (f", ours decoding {report['settings']['quantize']}" if report["settings"].get("quantize") else ""),
        f"| {'metric':<26} | {'ours':>10} | {'pipeline':>10} |",
        f"|{'-' * 28}|{'-' * 12}|{'-' * 12}|",
    ]
    for label, key, fmt in rows:
        lines.append(f"| {label:<26} | {cell(ours, key, fmt):>10} | {cell(pipe, key, fmt):>10} |")
    if not report["settings"].get("screenshot", True):
        lines = lines[:1] + ["(screenshot questions skipped: --no-screenshot)"]
    ratios = {key: value for key, value in report["ratios"].items() if value is not None}
    lines += [
        "",
        f"memory read bandwidth {report['memory_bandwidth_gbs']:.1f} GB/s; text model "
        f"{report['text_model_params'] / 1e6:.0f}M params = {report['decode_bytes_per_token'] / 1e6:.0f} MB/token "
        f"-> roofline {report['roofline_tokens_per_s']:.1f} tokens/s",
    ]
    for key, value in ratios.items():
        lines.append(f"{key:<36} {value}")
    disk = report.get("disk_cache")
    if disk:
        lines.append(
            f"on-disk vision cache: TTFT {disk['first_process_ttft_s']:.2f} s in the process that encoded the "
            f"screenshot ({disk['first_process_tiles_encoded']} tiles), {disk['next_process_ttft_s']:.2f} s in a new "
            f"process ({disk['next_process_tiles_from_disk']} tiles read from disk, {disk['next_process_tiles_encoded']} encoded)"
        )
    decode = report.get("decode") or {}
    if decode.get("rows") or decode.get("llama_cpp"):
        from .bench_decode import format_decode_table

        lines.append(format_decode_table(decode["rows"], decode.get("llama_cpp")))
    return "\n".join(lines)


def _worker(argv: list[str]) -> None:
    side, profile, runs, new_tokens = argv[0], argv[1], int(argv[2]), int(argv[3])
    runner = {"ours": run_ours, "pipeline": run_pipeline, "disk": run_disk_probe}[side]
    print(json.dumps(asdict(runner(profile, runs, new_tokens))))


if __name__ == "__main__":
    _worker(sys.argv[1:])
