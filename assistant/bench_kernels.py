"""Where a decoded token's time goes, part by part: `python -m assistant.bench_kernels [PROFILE]`.

The fused decode step (engine/decoding.py) does three kinds of work a token: the matrix products (every weight
read once), attention over the cached positions, and a few hundred small operations around them. This measures
each part on the profile's own model at a context of `--context` positions, for each thread count, in one
process and alternating (so the ratios hold on a shared machine), beside the floor that memory bandwidth sets:
reading the int8 matrices' bytes once. It answers "how fast could int8 decoding be with torch's kernels", the
limit behind issue 19's decode target (docs/performance.md); `assistant bench --decode` measures the real replies.
Run it with the passive OpenMP policy `import assistant` sets: under OMP_WAIT_POLICY=ACTIVE the worker idle during
the 1-thread rounds keeps spinning on the other core, and the alternating rounds no longer compare like with like.

Kernels measured for the products, each over the step's own matrices (q/k/v, o, gate/up, down, LM head):
- the float products exactly as the step makes them (bf16: `torch.mv`, what `dtype = "auto"` decodes with on CPUs
  with bf16; fp32: `linear`);
- `int8 weight-only`: `torch._weight_int8pack_mm`, what `dtype = "int8"` uses (activations stay bf16);
- `int8 dynamic (fbgemm)`: `torch.ops.quantized.linear_dynamic`, which also rounds each activation row to 8
  bits (7 with `reduce_range`) against one scale: faster, less exact, and on an API torch marks for removal;
  measured for comparison only, when this torch still has it.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable

DEFAULT_PROFILE = "bench-smolvlm-256m-bf16"
CONTEXT = 905
"""The screenshot question's prompt length in tokens (docs/performance.md)."""


@dataclass
class KernelRow:
    """One part of a token at one thread count: the median milliseconds a token over `repeats` rounds."""

    part: str
    threads: int
    ms_per_token: float
    tokens_per_s_if_alone: float
    """1000 / ms: the decode speed this part alone would allow."""
    samples: list[float]


def _matrices(decoder: Any) -> list[Any]:
    """The step's matrices in the order a token reads them (float tensors, or Int8Matrix for a quantized step)."""
    mats: list[Any] = []
    for layer in decoder.layers:
        mats.extend([layer.qkv, layer.out, layer.gate_up, layer.down])
    mats.append(decoder.head)
    return mats


def _dtype_name(decoder: Any) -> str:
    return str(decoder.dtype).replace("torch.", "")


def _product_parts(decoder: Any, quantized: Any) -> dict[str, Callable[[], None]]:
    """A callable per kernel that multiplies one activation row by every matrix of the step once (`quantized`: the
    same step with int8 matrices)."""
    import torch

    from .engine.int8 import matmul as int8_matmul

    mats = _matrices(decoder)
    rows = {int(m.shape[1]): torch.randn(1, int(m.shape[1]), dtype=decoder.dtype) for m in mats}
    int8 = _matrices(quantized)
    # The bandwidth floor: the int8 bytes read once, as fp32 words so the sum is a plain streaming read.
    words = [q.weight.view(torch.float32) if q.weight.shape[-1] % 4 == 0 else q.weight.float() for q in int8]

    def float_products() -> None:
        for m in mats:
            decoder._linear(rows[int(m.shape[1])].view(1, 1, -1), m)

    def int8_weight_only() -> None:
        for q in int8:
            int8_matmul(rows[int(q.weight.shape[1])].view(1, 1, -1), q)

    def read_floor() -> None:
        for w in words:
            w.sum()

    parts = {
        "int8 bytes read once (memory floor)": read_floor,
        f"{_dtype_name(decoder)} products ({'torch.mv' if decoder.matrix_vector else 'linear'})": float_products,
        "int8 weight-only (_weight_int8pack_mm)": int8_weight_only,
    }
    dynamic = _fbgemm_dynamic(int8)
    if dynamic is not None:
        fp32_rows = {size: row.float() for size, row in rows.items()}

        def int8_dynamic() -> None:
            for size, packed in dynamic:
                torch.ops.quantized.linear_dynamic(fp32_rows[size], packed, True)

        parts["int8 dynamic (fbgemm, activations quantized too)"] = int8_dynamic
    return parts


def _fbgemm_dynamic(int8: list[Any]) -> list[tuple[int, Any]] | None:
    """The same int8 rows and scales prepacked for fbgemm, or None when this torch lacks the quantized ops."""
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            packed = []
            for q in int8:
                out_features, in_features = q.weight.shape
                tensor = torch._make_per_channel_quantized_tensor(
                    q.weight, q.scales.double(), torch.zeros(out_features, dtype=torch.long), 0
                )
                packed.append((int(in_features), torch.ops.quantized.linear_prepack(tensor, None)))
            return packed
    except (AttributeError, RuntimeError, NotImplementedError):
        return None


def _attention_part(decoder: Any, context: int) -> Callable[[], None]:
    """One token's attention: a query per layer against `context` cached keys/values (the step's own call)."""
    import torch
    import torch.nn.functional as F

    groups = decoder.heads // decoder.kv_heads
    shape = (1, decoder.kv_heads, context + 256, decoder.head_dim)  # a KVBuffers-like buffer, filled part viewed
    keys = [torch.randn(shape, dtype=decoder.dtype)[:, :, :context] for _ in decoder.layers]
    values = [torch.randn(shape, dtype=decoder.dtype)[:, :, :context] for _ in decoder.layers]
    query = torch.randn(1, decoder.kv_heads, groups, decoder.head_dim, dtype=decoder.dtype)

    def attention() -> None:
        for k, v in zip(keys, values):
            F.scaled_dot_product_attention(query, k, v, scale=decoder.attention_scale)

    return attention


def _step_part(decoder: Any, model: Any, context: int) -> Callable[[], None]:
    """The whole fused step after a `context`-token prefill (the KV buffer reset each round, so it stays put)."""
    import torch

    from .engine.decoding import KVBuffers

    ids = torch.randint(10, min(1000, int(decoder.embed.shape[0])), (1, context))
    with torch.no_grad():
        cache = model(input_ids=ids, use_cache=True).past_key_values
    token = torch.tensor([[5]])
    buffers = KVBuffers(copy.deepcopy(cache))

    def step() -> None:
        buffers.length = context
        decoder.step(token, context, buffers)

    return step


def measure(parts: dict[str, Callable[[], None]], threads: list[int], repeats: int, tokens: int) -> list[KernelRow]:
    """Each part `tokens` times a round, `repeats` rounds, thread counts alternating within each round."""
    import torch

    before = torch.get_num_threads()
    samples: dict[tuple[str, int], list[float]] = {}
    try:
        with torch.no_grad():
            for _ in range(repeats + 1):  # the first round warms caches and thread pools; not kept
                for count in threads:
                    torch.set_num_threads(count)
                    for name, part in parts.items():
                        start = time.perf_counter()
                        for _ in range(tokens):
                            part()
                        samples.setdefault((name, count), []).append((time.perf_counter() - start) / tokens * 1000)
    finally:
        torch.set_num_threads(before)
    rows = []
    for (name, count), values in samples.items():
        kept = values[1:]
        median = statistics.median(kept)
        rows.append(KernelRow(name, count, round(median, 3), round(1000 / median, 1), [round(v, 3) for v in kept]))
    return rows


def run(profile_name: str = DEFAULT_PROFILE, threads: list[int] | None = None, context: int = CONTEXT,
        repeats: int = 5, tokens: int = 8) -> list[KernelRow]:
    """Load the profile's model, build its fused step and measure each part (and the whole int8 and float steps)."""
    import torch

    from .api import Assistant
    from .engine import executor
    from .engine.int8 import quantize_decoder

    bot = Assistant.from_profile(profile_name)
    bot.load()
    decoder = executor.run(lambda: bot.engine.decoder)
    if decoder is None or decoder.quantized:
        raise SystemExit(f"{profile_name}: no float fused decode step to measure (use a float profile, e.g. {DEFAULT_PROFILE})")
    model = bot.engine.loaded.model
    quantized = quantize_decoder(decoder)  # quantized once: its matrices for the products, itself for the step
    parts = _product_parts(decoder, quantized)
    parts[f"attention over {context} positions (SDPA)"] = _attention_part(decoder, context)
    parts[f"whole step, {_dtype_name(decoder)}"] = _step_part(decoder, model, context)
    parts["whole step, int8"] = _step_part(quantized, model, context)
    counts = threads or sorted({1, torch.get_num_threads()})
    return measure(parts, counts, repeats, tokens)


def table(rows: list[KernelRow]) -> str:
    """A Markdown table: parts down, thread counts across, ms a token (tokens/s the part alone allows)."""
    counts = sorted({row.threads for row in rows})
    parts = list(dict.fromkeys(row.part for row in rows))
    cells = {(row.part, row.threads): row for row in rows}
    lines = ["| part of a token | " + " | ".join(f"{n} thread{'s' if n > 1 else ''}: ms (tokens/s)" for n in counts) + " |",
             "|---|" + "---:|" * len(counts)]
    for part in parts:
        values = [cells.get((part, n)) for n in counts]
        lines.append(f"| {part} | " + " | ".join(
            f"{v.ms_per_token:.2f} ({v.tokens_per_s_if_alone:.0f})" if v else "–" for v in values) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", nargs="?", default=DEFAULT_PROFILE)
    parser.add_argument("--threads", default="", help="thread counts to compare, e.g. 1,2 (default: 1 and torch's)")
    parser.add_argument("--context", type=int, default=CONTEXT, help="cached positions attention reads")
    parser.add_argument("--repeats", type=int, default=5, help="rounds (medians are reported)")
    parser.add_argument("--json", dest="json_path", default="", help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    try:
        threads = [int(n) for n in args.threads.split(",") if n.strip()] or None
    except ValueError:
        parser.error(f"--threads {args.threads!r}: give whole numbers separated by commas, e.g. 1,2")
    if threads and min(threads) < 1 or args.context < 1 or args.repeats < 1:
        parser.error("--threads, --context and --repeats must be 1 or more")
    rows = run(args.profile, threads, args.context, args.repeats)
    print(table(rows))
    if args.json_path:
        with open(args.json_path, "w") as out:
            json.dump({"profile": args.profile, "context": args.context, "rows": [asdict(r) for r in rows]}, out, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
