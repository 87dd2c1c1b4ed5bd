"""Decode speed of the embedded model per GGUF format, at 1-8 concurrent sequences, against the bandwidth limit.

Candidates: ``original`` (the shipped Q4_1 GGUF), ``q4_0`` and ``q8_0`` (copies converted once by
``ponder.models.llamacpp_formats.runtime_gguf``). Each format is loaded through ``load_model("embedded")`` with
``llamacpp_format`` set, so what runs is what a user gets (the same engine, settings and crash guard).

* ``aggregate`` -- for ``n`` in ``--seqs`` (1, 2, 4, 8): ``backend.generate_batch`` of ``n`` conversations, each a
  different story prompt, ``--max-tokens`` (96) new tokens, T=0.8, seed ``--seed`` (conversation ``i`` samples with
  seed + i), a stop list that never fires. ``tok_s`` = completion tokens of all ``n`` / wall of the call (prompt
  evaluation included: the prompts are ~20 tokens), median of ``--reps``. The formats are measured interleaved
  (order rotated per repetition) so that drift on a shared machine hits them alike. ``ratio_8_1`` =
  tok/s at 8 ÷ tok/s at 1.
* ``limit`` -- single-stream decoding reads every weight once per token, so ``limit_tok_s = bandwidth / weight
  bytes`` (``llama_model_size``: the tensor bytes of the GGUF). Bandwidth: the best of 5 passes of
  ``numpy.copyto`` between two float32 arrays of ``--bw-mib`` MiB (far larger than L3), on 1 thread and split
  over all CPUs; bytes counted = bytes read (the source array), the writes are not counted -- the copy streams
  as much again, so this is the read rate a decode can reach while also writing. ``fraction`` =
  single-stream tok/s (``n = 1``) ÷ ``limit_tok_s``; ``fraction_read`` uses ``decode.py``'s read-only kernel
  (``ndarray.max()`` over all CPUs, ``read_gb_s``) instead, comparable with that benchmark's figures.

Output: JSON lines (one ``format`` line per candidate, a ``bandwidth`` line) ending with a ``summary`` line:
the chosen format (the fastest at 8 sequences; accuracy is compared separately with ``--format`` runs of the
GSM8K evaluation), its 8 ÷ 1 ratio against the goal (>= 2.5), its bandwidth fraction, and whether it is
``ponder.models.llamacpp_formats.AUTO_FORMAT``.

Usage::

    python benchmarks/formats.py [--formats original,q4_0,q8_0] [--seqs 1,2,4,8] [--max-tokens 96]
        [--reps 3] [--threads N] [--seed 1234] [--bw-mib 1024] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FORMATS = ("original", "q4_0", "q8_0")
RATIO_GOAL = 2.5
NEVER_STOP = ["<|no-such-stop|>"]
TOPICS = ["a lighthouse keeper", "a robot chef", "a lost dragon", "a time-travelling cat",
          "a desert caravan", "an underwater city", "a clockwork owl", "a mountain village"]


def emit(**fields: Any) -> None:
    print(json.dumps({"bench": "formats", **fields}), flush=True)


def conversation(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Write a long, detailed story about {TOPICS[i % len(TOPICS)]}."}]


def copy_bandwidth(nbytes: int, passes: int = 5) -> dict[str, Any]:
    """Best ``numpy.copyto`` rate (GB/s of source bytes read, 1e9) on 1 thread and on all CPUs."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    src = np.ones(max(nbytes // 4, 1 << 16), dtype=np.float32)  # np.ones / np.zeros + fill touch every page
    dst = np.zeros_like(src)
    dst.fill(2.0)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    per_threads: dict[int, float] = {}
    for threads in sorted({1, cpus}):
        pairs = list(zip(np.array_split(dst, threads), np.array_split(src, threads), strict=True))
        best = 0.0
        with ThreadPoolExecutor(threads) as pool:  # numpy releases the GIL inside the copy
            for _ in range(passes):
                start = time.perf_counter()
                list(pool.map(lambda p: np.copyto(p[0], p[1]), pairs))
                best = max(best, src.nbytes / (time.perf_counter() - start))
        per_threads[threads] = round(best / 1e9, 2)
    return {"gb_s": max(per_threads.values()), "per_threads": per_threads, "bytes": int(src.nbytes),
            "kernel": "numpy.copyto float32, source bytes counted"}


def read_bandwidth(nbytes: int, passes: int = 5) -> float:
    """Best ``ndarray.max()`` read rate (GB/s) over all CPUs: ``benchmarks/decode.py``'s kernel, for comparison."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    a = np.ones(max(nbytes // 4, 1 << 16), dtype=np.float32)
    chunks = np.array_split(a, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    best = 0.0
    with ThreadPoolExecutor(len(chunks)) as pool:
        for _ in range(passes):
            start = time.perf_counter()
            list(pool.map(np.max, chunks))
            best = max(best, a.nbytes / (time.perf_counter() - start))
    return round(best / 1e9, 2)


def weight_bytes(path: Path) -> int:
    """The tensor bytes of a GGUF (``llama_model_size``), from a model loaded on its own (mmap, no context)."""
    import llama_cpp

    model = llama_cpp.llama_model_load_from_file(str(path).encode(), llama_cpp.llama_model_default_params())
    if not model:
        raise RuntimeError(f"llama.cpp could not load {path}")
    try:
        return int(llama_cpp.llama_model_size(model))
    finally:
        llama_cpp.llama_model_free(model)


def batch_rate(backend: Any, n: int, max_tokens: int, seed: int) -> tuple[float, int]:
    """(wall seconds, completion tokens) of one ``generate_batch`` of ``n`` story conversations."""
    from ponder.models.base import GenerationParams

    params = GenerationParams(max_tokens=max_tokens, temperature=0.8, seed=seed, stop=NEVER_STOP)
    convs = [conversation(i) for i in range(n)]
    start = time.perf_counter()
    outs = backend.generate_batch(convs, params)
    wall = time.perf_counter() - start
    return wall, sum(c.completion_tokens for out in outs for c in out)


def load_formats(formats: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Load the embedded model once per format (through the spec, as users get it)."""
    from ponder.core.settings import load_settings
    from ponder.models.spec import load_model

    base = {"cache_dir": args.cache_dir} if args.cache_dir else {}
    if args.threads:
        base["llamacpp_threads"] = args.threads
    return {fmt: load_model("embedded", load_settings(llamacpp_format=fmt, **base)) for fmt in formats}


def measure(backends: dict[str, Any], seqs: list[int], args: argparse.Namespace) -> dict[str, dict[int, list]]:
    """Rates per format and ``n``: interleaved repetitions, the format order rotated each time."""
    rates: dict[str, dict[int, list]] = {fmt: {n: [] for n in seqs} for fmt in backends}
    order = list(backends)
    for backend in backends.values():  # warm-up: first decode, batch context
        batch_rate(backend, 2, 8, args.seed)
    for rep in range(args.reps):
        for n in seqs:
            for fmt in order[rep % len(order):] + order[:rep % len(order)]:
                wall, tokens = batch_rate(backends[fmt], n, args.max_tokens, args.seed + 100 * rep)
                rates[fmt][n].append((tokens / wall, tokens, wall))
    return rates


def format_line(fmt: str, backend: Any, rates: dict[int, list], bandwidth: dict[str, Any],
                max_tokens: int) -> dict[str, Any]:
    info = dict(backend.load_info)
    fmt_info = info.get("format", {})
    path = Path(info["path"])
    nbytes = weight_bytes(path)
    tok_s = {n: round(statistics.median(r[0] for r in runs), 2) for n, runs in rates.items()}
    limit = bandwidth["gb_s"] * 1e9 / nbytes
    single = tok_s.get(1)
    return {
        "format": fmt, "runs_as": fmt_info.get("format"), "converted": fmt_info.get("converted"),
        "weight_bytes": nbytes, "file_bytes": path.stat().st_size, "n_threads": info.get("n_threads"),
        "tok_s": tok_s, "runs": {n: [round(r[0], 1) for r in runs] for n, runs in rates.items()},
        "full_length": all(r[1] == n * max_tokens for n, runs in rates.items() for r in runs),
        "ratio_8_1": round(tok_s[8] / single, 3) if single and 8 in tok_s else None,
        "limit_tok_s": round(limit, 1), "fraction": round(single / limit, 3) if single else None,
        "fraction_read": round(single * nbytes / (bandwidth["read_gb_s"] * 1e9), 3) if single else None,
    }


def main() -> None:
    from ponder.models.llamacpp_formats import AUTO_FORMAT

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated: original,q4_0,q8_0")
    parser.add_argument("--seqs", default="1,2,4,8", help="concurrent sequences per measurement")
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: the setting's)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--bw-mib", type=int, default=1024, help="array size for the bandwidth measurement")
    parser.add_argument("--cache-dir", default=None, help="ponder cache dir (converted copies; default: settings)")
    args = parser.parse_args()
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if unknown := set(formats) - set(FORMATS):
        parser.error(f"unknown format(s) {sorted(unknown)}; choose from {', '.join(FORMATS)}")
    seqs = sorted({int(n) for n in args.seqs.split(",")} | {1})
    bandwidth = {**copy_bandwidth(args.bw_mib << 20), "read_gb_s": read_bandwidth(args.bw_mib << 20)}
    emit(kind="bandwidth", **bandwidth, loadavg_start=os.getloadavg(), cpus=os.cpu_count())
    backends = load_formats(formats, args)
    rates = measure(backends, seqs, args)
    lines = {fmt: format_line(fmt, backends[fmt], rates[fmt], bandwidth, args.max_tokens) for fmt in formats}
    for line in lines.values():
        emit(kind="format", **line)
    top = max(seqs)
    chosen = max(lines, key=lambda f: lines[f]["tok_s"][top])
    best = lines[chosen]
    emit(kind="summary", chosen=chosen, at_seqs=top, tok_s=best["tok_s"][top], single_tok_s=best["tok_s"][1],
         ratio_8_1=best["ratio_8_1"], ratio_goal=RATIO_GOAL,
         ratio_goal_met=bool(best["ratio_8_1"] and best["ratio_8_1"] >= RATIO_GOAL),
         fraction=best["fraction"], auto_format=AUTO_FORMAT, auto_is_chosen=chosen == AUTO_FORMAT,
         by_format={f: {"tok_s_1": lines[f]["tok_s"][1], f"tok_s_{top}": lines[f]["tok_s"][top],
                        "ratio": lines[f]["ratio_8_1"], "fraction": lines[f]["fraction"]} for f in formats},
         threads=args.threads, max_tokens=args.max_tokens, reps=args.reps, loadavg_end=os.getloadavg())


if __name__ == "__main__":
    main()
