"""Local inference speed on the bundled SmolLM2-135M, per backend, against the machine's memory-bandwidth limit.

Backends: ``llamacpp`` (the Q4_1 GGUF run by llama.cpp) and ``transformers`` (the same GGUF, dequantized
once into the safetensors cache under ``<cache_dir>/models/``; float32 on CPU). For each backend:

* ``cold_start`` -- process start to first token after a first use (the transformers cache exists and the
  files are in the page cache): a fresh interpreter running this script with ``--child-first-token BACKEND``
  imports ponder and the backend's library, calls ``ponder.models.spec.load_model(BACKEND, settings)`` and
  generates one token. ``value`` is the wall time from just before the parent spawns the child to the
  child's first-token timestamp (``time.time()`` on both sides), split into ``interpreter_s`` (spawn to the
  script's first line), ``import_s``, ``load_s`` and ``first_token_s``. Median over ``--cold-reps`` runs.
* ``cli_cold`` -- the real command: ``ponder run "..." --model BACKEND --max-steps 1 --max-tokens 1
  --verbose``, spawn to its first step on stdout (unbuffered: the model's first token has just been parsed;
  includes the agent's ~400-token ReAct prompt), once as a first use and then twice with other questions
  (median; ``exit_s`` adds interpreter teardown; ``prompt_restored`` says which runs restored the system
  prompt from the llamacpp prompt cache instead of evaluating it).
* ``single_tok_s`` -- greedy, one story prompt, ``--max-tokens`` new tokens, a stop list that never fires
  (so the stop-string machinery runs, as in agents); completion tokens actually produced / wall time of
  ``backend.generate``, median of ``--reps``. ``decode_tok_s`` excludes the time to first token (median of
  ``max_tokens=1`` calls). ``full_length`` says whether every run produced all ``--max-tokens`` tokens.
* ``n8_tok_s`` -- ``GenerationParams(n=8, temperature=0.8, seed=...)`` on the same prompt: total completion
  tokens / wall, median of ``--n-reps`` (both backends decode the 8 samples together).
* ``engine_concurrency`` (llamacpp, default threads) -- ``k`` sampled sequences submitted together to the
  continuous-batching engine for each ``k`` of ``--concurrency`` (default 1, 2, 4, 8): aggregate completion
  tokens / wall, the ratio to ``k = 1``, and the Python time per sampled token around ``llama_decode``.
  ``--only-concurrency`` runs just this (``--kv-unified``: the slots share one KV stream).
* ``limit`` -- single-stream decoding reads every weight once per token, so
  ``limit_tok_s = bandwidth / weight bytes``. Bandwidth: the best of ``ndarray.max()`` over a float32 array
  (``--bw-mib`` MiB, default 1 GiB, larger than the L3 cache) on 1 thread and split over all CPUs, best of
  10 passes; bytes counted = array bytes read (no writes). Measured at the start and again at the end; the
  summary uses the better of the two (the higher limit: the stricter fraction), the ``throughput`` lines
  the start value (``*_start`` fields). Weight bytes: llama.cpp's ``llama_model_size`` (tensor bytes of
  the GGUF; the file size is reported too), transformers: the bytes of the loaded model's parameters in
  their dtype (tied embeddings counted once). ``fraction = single_tok_s / limit_tok_s``.
  ``bandwidth_ws`` repeats the measurement on an array the size of the weights (it may sit in L3).

The llamacpp measurements run for 1 and 2 threads and the default (physical cores) unless ``--threads``
names the counts; transformers uses torch's default unless ``--threads`` is given. Then the
ponder-vs-raw-transformers comparison runs (unchanged): the same chat prompts, greedy,
``--compare-max-tokens`` new tokens, no stop sequences, interleaved after a warm-up: ``ponder``
(``backend.generate_batch``) vs ``raw`` (``apply_chat_template`` + ``tokenizer`` + ``model.generate`` +
``batch_decode`` on the very same model and tokenizer), ``single`` and ``batch8``, with one ratio line
each (goal >= 0.9).

Output: JSON lines, ending with a ``summary`` line (figures per backend and goal flags: cold start <= 5 s,
llamacpp single stream >= 40 % of the limit, ponder/raw >= 0.9).

Usage::

    python benchmarks/decode.py [--backends llamacpp,transformers] [--max-tokens 128] [--reps 3]
        [--n-reps 2] [--threads 1,2] [--cold-reps 2] [--compare-max-tokens 64] [--skip-compare]
        [--skip-cold] [--cache-dir DIR] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_T0 = time.time()  # the child's "script started" timestamp (after the stdlib imports above)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

GOAL = 0.9
COLD_GOAL_S = 5.0
FRACTION_GOAL = 0.4
BACKENDS = ("llamacpp", "transformers")
NEVER_STOP = ["<|no-such-stop|>"]
PROMPT = "Write a long, detailed story about a lighthouse keeper."
CLI_QUESTION = "What is 2 + 3?"
#: Stop further repetitions of a measurement once one run took longer than this (a contended machine).
REP_BUDGET_S = 60.0
TOPICS = ["a lighthouse keeper", "a robot chef", "a lost dragon", "a time-travelling cat",
          "a desert caravan", "an underwater city", "a clockwork owl", "a mountain village"]


def conversation(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Write a long, detailed story about {TOPICS[i % len(TOPICS)]}."}]


def emit(**fields: Any) -> None:
    print(json.dumps({"bench": "decode", **fields}), flush=True)


def r3(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


# -- child mode: cold start --------------------------------------------------------------------------


def child_first_token(kind: str, threads: int) -> None:
    """Run in a fresh interpreter: import, load, one token; print the timestamps as one JSON line."""
    import ponder.core.settings
    import ponder.models.base
    import ponder.models.spec  # noqa: F401

    if kind == "llamacpp":
        import llama_cpp  # noqa: F401
    else:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401

        if threads:
            torch.set_num_threads(threads)
    t_imported = time.time()
    settings = ponder.core.settings.load_settings()  # PONDER_CACHE_DIR / PONDER_LLAMACPP_THREADS from the parent
    backend = ponder.models.spec.load_model(kind, settings)
    t_loaded = time.time()
    out = backend.generate([{"role": "user", "content": PROMPT}], ponder.models.base.GenerationParams(max_tokens=1))
    t_first = time.time()
    info = dict(backend.load_info)
    print(json.dumps({"t_start": _T0, "t_imported": t_imported, "t_loaded": t_loaded, "t_first_token": t_first,
                      "completion_tokens": out[0].completion_tokens, "prompt_tokens": out[0].prompt_tokens,
                      "from_cache": info.get("from_cache"), "threads": info.get("n_threads"),
                      "device": info.get("device"), "dtype": info.get("dtype")}), flush=True)


def child_env(cache_dir: Path, threads: int) -> dict[str, str]:
    env = dict(os.environ, PONDER_CACHE_DIR=str(cache_dir))
    if threads:
        env["PONDER_LLAMACPP_THREADS"] = str(threads)
    return env


def cold_start(kind: str, cache_dir: Path, threads: int, reps: int) -> dict[str, Any]:
    runs = []
    for _ in range(reps):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child-first-token", kind, "--threads", str(threads)]
        spawn = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env(cache_dir, threads))
        exited = time.time()
        if proc.returncode != 0:
            raise RuntimeError(f"cold-start child for {kind} failed:\n{proc.stderr[-2000:]}")
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        runs.append({**info, "total": info["t_first_token"] - spawn, "interpreter": info["t_start"] - spawn,
                     "import": info["t_imported"] - info["t_start"], "load": info["t_loaded"] - info["t_imported"],
                     "first": info["t_first_token"] - info["t_loaded"], "exit": exited - spawn})
    med = {k: statistics.median(r[k] for r in runs) for k in ("total", "interpreter", "import", "load", "first",
                                                                "exit")}
    last = runs[-1]
    return {"value": r3(med["total"]), "runs": [r3(r["total"]) for r in runs], "interpreter_s": r3(med["interpreter"]),
            "import_s": r3(med["import"]), "load_s": r3(med["load"]), "first_token_s": r3(med["first"]),
            "process_exit_s": r3(med["exit"]), "prompt_tokens": last["prompt_tokens"],
            "completion_tokens": last["completion_tokens"], "from_cache": last["from_cache"],
            "threads": last["threads"], "device": last["device"], "dtype": last["dtype"]}


def cli_cold(kind: str, cache_dir: Path, threads: int, reps: int = 2) -> dict[str, Any]:
    """``ponder run`` from spawn to its first step on screen, and to exit: a first use, then ``reps`` more runs.

    Each run asks another question. The first step is printed as soon as the model's first reply (one token:
    ``--max-tokens 1``) is parsed, with ``PYTHONUNBUFFERED=1``, so spawn → first stdout line is process start →
    first token plus a few milliseconds of rendering. ``value`` is the median over the runs after the first use
    (by then the llamacpp prompt cache holds the agent's system prompt); ``exit_s`` adds interpreter teardown.
    """
    script = Path(sys.executable).with_name("ponder")
    base = [str(script)] if script.is_file() else [sys.executable, "-m", "ponder.cli"]
    runs: list[dict[str, Any]] = []
    for i in range(reps + 1):
        with tempfile.TemporaryDirectory(prefix="ponder-bench-cli-") as tmp:  # cwd: no ponder.toml, no runs/
            question = CLI_QUESTION if i == 0 else f"{CLI_QUESTION} Run {i}."
            cmd = [*base, "run", question, "--model", kind, "--max-steps", "1", "--max-tokens", "1", "--verbose",
                   "--out", str(Path(tmp) / "runs")]
            env = {**child_env(cache_dir, threads), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
            start = time.time()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp, env=env)
            assert proc.stdout is not None
            first_line = proc.stdout.readline()
            while first_line and not re.match(r"\s*\d+\. ", first_line):  # --verbose's model line comes first
                first_line = proc.stdout.readline()
            first = time.time() - start
            rest, stderr = proc.communicate()
            wall = time.time() - start
        status = re.search(r"^status (\S+) .*?(\d+)\+(\d+) tokens", first_line + rest, re.M)
        runs.append({"first": first, "wall": wall, "rc": proc.returncode,
                     "status": status.group(1) if status else None,
                     "prompt_tokens": int(status.group(2)) if status else None,
                     "restored": "prompt cache: restored" in stderr,
                     "stderr_tail": stderr[-300:] if proc.returncode else ""})
    later = runs[1:] or runs
    last = later[-1]
    return {"value": r3(statistics.median(r["first"] for r in later)), "runs": [r3(r["first"]) for r in later],
            "exit_s": r3(statistics.median(r["wall"] for r in later)), "first_run_s": r3(runs[0]["first"]),
            "rc": max(r["rc"] for r in runs), "status": last["status"], "prompt_tokens": last["prompt_tokens"],
            "prompt_restored": [r["restored"] for r in runs], "stderr_tail": last["stderr_tail"]}


# -- bandwidth ---------------------------------------------------------------------------------------


def read_bandwidth(nbytes: int, passes: int = 5) -> dict[str, Any]:
    """Best read bandwidth (GB/s, 1e9) of ``ndarray.max()`` over ``nbytes``, on 1 thread and on all CPUs."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    a = np.ones(max(nbytes // 4, 1 << 16), dtype=np.float32)  # np.ones touches every page
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    per_threads: dict[int, float] = {}
    for threads in sorted({1, cpus}):
        chunks = np.array_split(a, threads)
        best = 0.0
        with ThreadPoolExecutor(threads) as pool:  # numpy releases the GIL inside the reduction
            for _ in range(passes):
                start = time.perf_counter()
                if threads == 1:
                    a.max()
                else:
                    list(pool.map(np.max, chunks))
                best = max(best, a.nbytes / (time.perf_counter() - start))
        per_threads[threads] = round(best / 1e9, 2)
    return {"gb_s": max(per_threads.values()), "per_threads": per_threads, "bytes": int(a.nbytes)}


# -- in-process throughput --------------------------------------------------------------------------


def weight_bytes(kind: str, backend: Any) -> dict[str, int]:
    if kind == "llamacpp":
        import llama_cpp

        path = Path(backend.load_info["path"])
        return {"weight_bytes": int(llama_cpp.llama_model_size(backend.llama.model)),
                "file_bytes": path.stat().st_size}
    model = backend.model
    return {"weight_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
            "parameters": sum(p.numel() for p in model.parameters())}


def timed_reps(fn: Any, reps: int) -> tuple[list[float], list[int]]:
    """Run ``fn`` (returns tokens) up to ``reps`` times; stop early once a run exceeds :data:`REP_BUDGET_S`."""
    walls, tokens = [], []
    for _ in range(reps):
        start = time.perf_counter()
        tokens.append(fn())
        walls.append(time.perf_counter() - start)
        if walls[-1] > REP_BUDGET_S:
            break
    return walls, tokens


def throughput(kind: str, backend: Any, max_tokens: int, reps: int, n_reps: int, seed: int) -> dict[str, Any]:
    from ponder.models.base import GenerationParams

    messages = [{"role": "user", "content": PROMPT}]
    greedy = GenerationParams(max_tokens=max_tokens, temperature=0.0, stop=NEVER_STOP)
    backend.generate(messages, GenerationParams(max_tokens=8, stop=NEVER_STOP))  # warm-up
    ttft, _ = timed_reps(lambda: backend.generate(messages, GenerationParams(max_tokens=1))[0].completion_tokens,
                         max(reps, 3))
    walls, toks = timed_reps(lambda: backend.generate(messages, greedy)[0].completion_tokens, reps)
    rates = [t / w for t, w in zip(toks, walls, strict=True)]
    ttft_s = statistics.median(ttft)
    decode = [(t - 1) / max(w - ttft_s, 1e-9) for t, w in zip(toks, walls, strict=True)]
    counter = iter(range(10**6))

    def sample8() -> int:
        params = GenerationParams(n=8, temperature=0.8, seed=seed + next(counter), max_tokens=max_tokens,
                                  stop=NEVER_STOP)
        return sum(c.completion_tokens for c in backend.generate(messages, params))

    estimate = 8 * max_tokens / statistics.median(rates)  # pessimistic: as if one after another
    if kind == "llamacpp" and estimate > 2 * REP_BUDGET_S:
        n_walls, n_toks, n_rates = [], [], []
    else:
        n_walls, n_toks = timed_reps(sample8, n_reps)
        n_rates = [t / w for t, w in zip(n_toks, n_walls, strict=True)]
    return {
        "single_tok_s": round(statistics.median(rates), 2), "single_runs": [round(r, 2) for r in rates],
        "completion_tokens": toks, "full_length": all(t == max_tokens for t in toks),
        "ttft_s": r3(ttft_s), "decode_tok_s": round(statistics.median(decode), 2),
        "n8_tok_s": round(statistics.median(n_rates), 2) if n_walls else None,
        "n8_runs": [round(r, 2) for r in n_rates] if n_walls else [],
        "n8_skipped": None if n_walls else f"estimated {estimate:.0f} s (> {2 * REP_BUDGET_S:.0f} s)",
        "n8_completion_tokens": n_toks, "n8_wall_s": [r3(w) for w in n_walls],
    }


def engine_concurrency(backend: Any, max_tokens: int, seed: int, counts: list[int]) -> dict[int, dict[str, Any]]:
    """Aggregate decode speed of the llama.cpp engine with ``k`` sequences at once, against one stream.

    ``k`` story samples (T=0.8, seeds ``seed + i``, a stop list that never fires) are submitted together
    (``generate_batch``); ``tok_s`` is their completion tokens / wall time (the shared prompt is evaluated once and
    copied, so this is nearly all decoding). The engine's own clocks split each turn into ``llama_decode`` time and
    the Python around it (batch filling, sampling, stop checks): ``python_ms_per_token``.
    """
    from ponder.models.base import GenerationParams

    engine = backend._engine()
    messages = [{"role": "user", "content": PROMPT}]
    params = GenerationParams(max_tokens=max_tokens, temperature=0.8, stop=NEVER_STOP)
    backend.generate(messages, params.model_copy(update={"max_tokens": 8, "seed": seed}))  # warm-up
    out: dict[int, dict[str, Any]] = {}
    for k in counts:
        before = dict(engine.stats)
        start = time.perf_counter()
        done = backend.generate_batch([messages] * k, params.model_copy(update={"seed": seed + 100 * k}))
        wall = time.perf_counter() - start
        tokens = sum(c[0].completion_tokens for c in done)
        delta = {key: engine.stats[key] - before[key] for key in ("sampled", "decode_s", "python_s", "decode_calls")}
        out[k] = {"seqs": k, "tok_s": round(tokens / wall, 2), "completion_tokens": tokens, "wall_s": r3(wall),
                  "most_running": engine.stats["most_running"],
                  "decode_ms_per_call": r3(1000 * delta["decode_s"] / max(delta["decode_calls"], 1)),
                  "python_ms_per_token": r3(1000 * delta["python_s"] / max(delta["sampled"], 1)),
                  "python_share": r3(delta["python_s"] / max(delta["python_s"] + delta["decode_s"], 1e-9))}
        out[k]["ratio_vs_1"] = round(out[k]["tok_s"] / out[counts[0]]["tok_s"], 3) if counts[0] == 1 else None
        emit(metric="engine_concurrency", threads=backend.load_info["n_threads"], slots=backend.load_info["slots"],
             kv_unified=backend.load_info["kv_unified"], **out[k])
    return out


# -- ponder vs raw transformers (the comparison of the embedded-backend issue) -----------------------


def raw_generate(model: Any, tok: Any, convs: list[list[dict[str, str]]], max_tokens: int) -> int:
    """The plain transformers path; returns the number of generated tokens before EOS."""
    import torch

    tok.padding_side = "left"
    texts = [tok.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in convs]
    enc = tok(texts, padding=True, add_special_tokens=False, return_tensors="pt").to(model.device)
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    new = out[:, enc["input_ids"].shape[1]:].tolist()
    tok.batch_decode(new, skip_special_tokens=True)
    eos = tok.eos_token_id
    return sum(row.index(eos) if eos in row else len(row) for row in new)


def compare_ponder_raw(backend: Any, max_tokens: int, reps: int) -> dict[str, float]:
    import torch

    from ponder.models.base import GenerationParams

    model, tok = backend.model, backend.tokenizer  # the same objects for both sides
    params = GenerationParams(max_tokens=max_tokens, temperature=0.0)
    cases = {"single": [conversation(0)], "batch8": [conversation(i) for i in range(8)]}

    def ponder_run(convs: list[list[dict[str, str]]]) -> int:
        results = backend.generate_batch(convs, params)
        return sum(c.completion_tokens for r in results for c in r)

    impls = {"ponder": ponder_run, "raw": lambda convs: raw_generate(model, tok, convs, max_tokens)}
    ratios = {}
    for name, convs in cases.items():
        for fn in impls.values():  # warm-up
            fn(convs[:1])
        rates: dict[str, list[float]] = {k: [] for k in impls}
        tokens: dict[str, int] = {}
        for rep in range(reps):
            order = list(impls) if rep % 2 == 0 else list(reversed(impls))
            for impl in order:
                start = time.perf_counter()
                tokens[impl] = impls[impl](convs)
                rates[impl].append(tokens[impl] / (time.perf_counter() - start))
        for impl in impls:
            emit(metric=f"{name}_tok_s", impl=impl, value=round(statistics.median(rates[impl]), 2),
                 runs=[round(r, 2) for r in rates[impl]], tokens_per_run=tokens[impl], rows=len(convs),
                 max_tokens=max_tokens, device=backend.load_info["device"], threads=torch.get_num_threads())
        ratio = statistics.median(rates["ponder"]) / statistics.median(rates["raw"])
        paired = statistics.median(p / r for p, r in zip(rates["ponder"], rates["raw"], strict=True))
        emit(metric=f"{name}_ratio", value=round(ratio, 3), paired_median=round(paired, 3), goal=GOAL,
             goal_met=ratio >= GOAL, same_tokens=tokens["ponder"] == tokens["raw"])
        ratios[name] = round(ratio, 3)
    return ratios


# -- main --------------------------------------------------------------------------------------------


def thread_counts(kind: str, requested: list[int]) -> list[int]:
    """Thread counts to measure; 0 means the backend's default."""
    if requested:
        return requested
    if kind == "llamacpp":
        from ponder.models.llamacpp import physical_cores

        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return sorted({physical_cores(), *(t for t in (1, 2) if t <= cpus)})
    return [0]


def is_default(kind: str, threads: int) -> bool:
    """Whether ``threads`` is what the backend uses when nothing is configured."""
    if not threads:
        return True
    if kind == "llamacpp":
        from ponder.models.llamacpp import physical_cores

        return threads == physical_cores()
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated: llamacpp,transformers")
    parser.add_argument("--max-tokens", type=int, default=128, help="new tokens for single / n=8 runs")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (single stream and comparison)")
    parser.add_argument("--n-reps", type=int, default=2, help="repetitions of the n=8 sampling run")
    parser.add_argument("--cold-reps", type=int, default=2, help="fresh-process cold starts per backend")
    parser.add_argument("--threads", default="", help="comma-separated thread counts (0 = backend default); "
                        "default: llamacpp 1, 2 and physical cores, transformers torch's default")
    parser.add_argument("--compare-max-tokens", type=int, default=64, help="new tokens for ponder vs raw")
    parser.add_argument("--skip-compare", action="store_true", help="skip ponder vs raw transformers")
    parser.add_argument("--skip-cold", action="store_true", help="skip the cold-start and CLI subprocesses")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--bw-mib", type=int, default=1024, help="array size for the bandwidth measurement")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache-dir", default=None, help="converted-model cache (default: settings)")
    parser.add_argument("--concurrency", default="1,2,4,8", help="llamacpp engine: sequences decoded at once")
    parser.add_argument("--only-concurrency", action="store_true", help="measure only the llamacpp engine's "
                        "aggregate tok/s at --concurrency sequences (default threads), then stop")
    parser.add_argument("--kv-unified", action="store_true", help="with --only-concurrency: the engine's slots "
                        "share one KV stream (faster with shared prompts, not reproducible across batches)")
    parser.add_argument("--child-first-token", choices=BACKENDS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    requested = [int(t) for t in args.threads.split(",") if t.strip()]
    concurrency = [int(k) for k in args.concurrency.split(",") if k.strip()]
    if args.child_first_token:
        child_first_token(args.child_first_token, requested[0] if requested else 0)
        return
    if args.only_concurrency:
        from ponder.models.gguf_cache import find_embedded_gguf
        from ponder.models.llamacpp import LlamaCppBackend

        emit(metric="machine", cpus=os.cpu_count(), loadavg=[round(x, 2) for x in os.getloadavg()])
        backend = LlamaCppBackend.load(find_embedded_gguf(), n_threads=requested[0] if requested else None,
                                       kv_unified=args.kv_unified)
        engine_concurrency(backend, args.max_tokens, args.seed, concurrency)
        return

    from ponder.core.settings import load_settings
    from ponder.models.spec import load_model

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backend(s) {sorted(unknown)}; choose from {', '.join(BACKENDS)}")
    base = load_settings(device=args.device, cache_dir=args.cache_dir)
    cache_dir = Path(base.cache_dir).expanduser().resolve()
    emit(metric="machine", cpus=os.cpu_count(), loadavg=[round(x, 2) for x in os.getloadavg()],
         cache_dir=str(cache_dir), max_tokens=args.max_tokens, reps=args.reps)

    # First use: convert / page in every backend's weights before anything is timed.
    first: dict[str, Any] = {}
    for kind in backends:
        start = time.perf_counter()
        first[kind] = load_model(kind, load_settings(device=args.device, cache_dir=str(cache_dir)))
        info = dict(first[kind].load_info)
        emit(metric="first_use_load_s", backend=kind, value=r3(time.perf_counter() - start),
             from_cache=info.get("from_cache"), path=info.get("path"))

    bw_start = read_bandwidth(args.bw_mib << 20, passes=10)
    summary: dict[str, dict[str, Any]] = {}
    for kind in backends:
        row: dict[str, Any] = summary.setdefault(kind, {})
        counts = thread_counts(kind, requested)
        if not args.skip_cold:
            cold_threads = requested[0] if requested else 0
            cold = cold_start(kind, cache_dir, cold_threads, args.cold_reps)
            emit(metric="cold_start_s", backend=kind, goal=COLD_GOAL_S, goal_met=cold["value"] <= COLD_GOAL_S,
                 **cold)
            if kind == "transformers":  # the line the earlier version of this benchmark printed
                emit(metric="cold_load_s", value=cold["load_s"], imports_s=cold["import_s"],
                     from_cache=cold["from_cache"], device=cold["device"], dtype=cold["dtype"])
            cli = cli_cold(kind, cache_dir, cold_threads)
            emit(metric="cli_cold_s", backend=kind, goal=COLD_GOAL_S, goal_met=cli["value"] <= COLD_GOAL_S,
                 threads=cold_threads or "default", **cli)
            row.update(cold_first_token_s=cold["value"], cli_cold_s=cli["value"])
        sizes = weight_bytes(kind, first[kind])
        ws = read_bandwidth(sizes["weight_bytes"])
        row.update(weight_bytes=sizes["weight_bytes"], single_tok_s={}, n8_tok_s={})
        for threads in counts:
            settings = load_settings(device=args.device, cache_dir=str(cache_dir),
                                     llamacpp_threads=threads if kind == "llamacpp" and threads else None)
            if kind == "transformers" and threads:
                import torch

                torch.set_num_threads(threads)
            backend = load_model(kind, settings)
            if kind == "llamacpp":
                used = backend.load_info["n_threads"]
            else:
                import torch

                used = torch.get_num_threads()
            res = throughput(kind, backend, args.max_tokens, args.reps, args.n_reps, args.seed)
            limit = bw_start["gb_s"] * 1e9 / sizes["weight_bytes"]
            limit_ws = ws["gb_s"] * 1e9 / sizes["weight_bytes"]
            emit(metric="throughput", backend=kind, threads=used, default_threads=is_default(kind, threads), **res,
                 limit_tok_s_start=round(limit, 1), fraction_start=round(res["single_tok_s"] / limit, 3),
                 decode_fraction_start=round(res["decode_tok_s"] / limit, 3), limit_ws_tok_s=round(limit_ws, 1),
                 fraction_ws=round(res["single_tok_s"] / limit_ws, 3), **sizes)
            if is_default(kind, threads):
                row["default_threads"] = used
                if kind == "llamacpp" and concurrency:
                    engine = engine_concurrency(backend, args.max_tokens, args.seed, concurrency)
                    row["engine_tok_s"] = {k: v["tok_s"] for k, v in engine.items()}
            row["single_tok_s"][used] = res["single_tok_s"]
            row["n8_tok_s"][used] = res["n8_tok_s"]
            row["full_length"] = row.get("full_length", True) and res["full_length"]
        emit(metric="bandwidth_ws", backend=kind, gb_s=ws["gb_s"], per_threads=ws["per_threads"], bytes=ws["bytes"])
        if kind == "transformers" and not args.skip_compare:
            row["ponder_vs_raw"] = compare_ponder_raw(first[kind], args.compare_max_tokens, args.reps)

    bw_end = read_bandwidth(args.bw_mib << 20, passes=10)
    bandwidth = max(bw_start["gb_s"], bw_end["gb_s"])
    emit(metric="bandwidth", gb_s=bandwidth, start_gb_s=bw_start["gb_s"], start_per_threads=bw_start["per_threads"],
         end_gb_s=bw_end["gb_s"], end_per_threads=bw_end["per_threads"], bytes=bw_start["bytes"],
         kernel="float32 ndarray.max, bytes read", used_for_limit="best of start and end")
    goals: dict[str, Any] = {}
    for kind, row in summary.items():
        row["limit_tok_s"] = round(bandwidth * 1e9 / row["weight_bytes"], 1)
        row["fraction"] = {t: round(v / row["limit_tok_s"], 3) for t, v in row["single_tok_s"].items()}
        if "cold_first_token_s" in row:
            goals[f"{kind}_cold_le_{COLD_GOAL_S:g}s"] = row["cold_first_token_s"] <= COLD_GOAL_S
            goals[f"{kind}_cli_cold_le_{COLD_GOAL_S:g}s"] = row["cli_cold_s"] <= COLD_GOAL_S
        row["best_fraction"] = max(row["fraction"].values())
    if "llamacpp" in summary:
        goals[f"llamacpp_fraction_ge_{FRACTION_GOAL:g}"] = summary["llamacpp"]["best_fraction"] >= FRACTION_GOAL
        default = summary["llamacpp"].get("default_threads")
        if default is not None:
            met = summary["llamacpp"]["fraction"][default] >= FRACTION_GOAL
            goals[f"llamacpp_default_threads_fraction_ge_{FRACTION_GOAL:g}"] = met
    if "ponder_vs_raw" in summary.get("transformers", {}):
        goals[f"ponder_vs_raw_ge_{GOAL:g}"] = all(v >= GOAL for v in summary["transformers"]["ponder_vs_raw"].values())
    emit(metric="summary", bandwidth_gb_s=bandwidth, backends=summary, goals=goals,
         loadavg_end=[round(x, 2) for x in os.getloadavg()])


if __name__ == "__main__":
    main()
