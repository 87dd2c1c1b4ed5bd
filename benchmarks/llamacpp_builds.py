"""Decode speed of different llama-cpp-python builds on the embedded GGUF, side by side.

Each build is an interpreter (a virtual environment with that build installed) named on the command line,
``NAME=PYTHON``; the first one is the reference (normally ``native``, llama-cpp-python's default
``-march=native`` build). Every round runs one child per build, in alternating order (ABAB, then BABA, ...),
so that drift and other load on the machine hit every build alike. A child (this script with ``--child``)
loads the GGUF with ``llama_cpp.Llama`` (``n_ctx 512``, ``--threads`` threads), warms up, then decodes
``--tokens`` tokens greedily one at a time (``Llama.eval`` of one token, argmax of its logits: the
single-sequence decode step of ponder's backend) after a short prompt; it reports the median tok/s of
``--reps`` decodes. The prompt's evaluation is not timed.

Output, JSON lines on stdout: one ``run`` line per child, then one ``build`` line per build (median tok/s over
the rounds, min, max, spread = (max - min) / median, ``ratio`` = median / reference median, and
``paired_ratio`` = median over rounds of build / reference in the same round) and the compiled-in CPU
features llama.cpp reports (``llama_print_system_info``). A Markdown table for notes goes to stderr.

Usage::

    python benchmarks/llamacpp_builds.py native=/tmp/venv-native/bin/python portable=.venv/bin/python \\
        [--rounds 6] [--tokens 128] [--reps 3] [--threads 1] [--gguf FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

PROMPT = "Once upon a time, in a small village by the sea, there lived an old fisherman who"


def child(gguf: str, tokens: int, reps: int, threads: int) -> None:
    import llama_cpp
    import numpy as np

    llm = llama_cpp.Llama(model_path=gguf, n_ctx=512, n_batch=512, n_threads=threads, n_threads_batch=threads,
                          logits_all=False, verbose=False)
    prompt = llm.tokenize(PROMPT.encode(), add_bos=True)

    def decode(n: int) -> float:
        llm.reset()
        llm.eval(prompt)
        start = time.perf_counter()
        for _ in range(n):
            token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            llm.eval([token])
        return n / (time.perf_counter() - start)

    decode(16)  # warm-up: pages, caches, thread pool
    rates = [decode(tokens) for _ in range(reps)]
    info = llama_cpp.llama_print_system_info().decode()  # "CPU : SSE3 = 1 | AVX = 1 | ..."
    features = [part.split(":")[-1].strip() for part in info.split("|")]
    print(json.dumps({"tok_s": statistics.median(rates), "reps": rates, "version": llama_cpp.__version__,
                      "features": [f.split("=")[0].strip() for f in features if f.endswith("= 1")]}))


def run_child(python: str, args: argparse.Namespace) -> dict:
    cmd = [python, __file__, "--child", args.gguf, "--tokens", str(args.tokens), "--reps", str(args.reps),
           "--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def summarize(names: list[str], runs: dict[str, list[dict]]) -> list[dict]:
    ref = names[0]
    ref_median = statistics.median(r["tok_s"] for r in runs[ref])
    lines = []
    for name in names:
        rates = [r["tok_s"] for r in runs[name]]
        median = statistics.median(rates)
        paired = statistics.median(b["tok_s"] / a["tok_s"] for a, b in zip(runs[ref], runs[name], strict=True))
        lines.append({"kind": "build", "build": name, "median_tok_s": round(median, 1), "min": round(min(rates), 1),
                      "max": round(max(rates), 1), "spread_pct": round(100 * (max(rates) - min(rates)) / median, 1),
                      "ratio": round(median / ref_median, 3), "paired_ratio": round(paired, 3),
                      "rounds": len(rates), "features": runs[name][0]["features"]})
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("builds", nargs="*", help="NAME=PYTHON, the reference first")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gguf", help="default: the embedded SmolLM2-135M GGUF")
    parser.add_argument("--child", metavar="GGUF", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.tokens, args.reps, args.threads)
        return
    if len(args.builds) < 2 or any("=" not in b for b in args.builds):
        parser.error("name at least two builds as NAME=PYTHON")
    if not args.gguf:
        from ponder.models.gguf_cache import find_embedded_gguf

        args.gguf = str(find_embedded_gguf())
    builds = dict(b.split("=", 1) for b in args.builds)
    names = list(builds)
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for rnd in range(args.rounds):
        for name in names if rnd % 2 == 0 else reversed(names):
            result = run_child(builds[name], args)
            runs[name].append(result)
            print(json.dumps({"kind": "run", "build": name, "round": rnd, "tok_s": round(result["tok_s"], 1),
                              "reps": [round(r, 1) for r in result["reps"]]}), flush=True)
    lines = summarize(names, runs)
    for line in lines:
        print(json.dumps({**line, "tokens": args.tokens, "threads": args.threads}), flush=True)
    print(f"| build | decode tok/s (median of {args.rounds}) | min-max | spread | ratio to {names[0]} "
          "| paired ratio |\n| --- | --- | --- | --- | --- | --- |", file=sys.stderr)
    for line in lines:
        print(f"| {line['build']} | {line['median_tok_s']} | {line['min']}-{line['max']} | {line['spread_pct']} % "
              f"| {line['ratio']} | {line['paired_ratio']} |", file=sys.stderr)


if __name__ == "__main__":
    main()
