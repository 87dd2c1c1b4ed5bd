"""Test-time search frontier: accuracy against tokens per strategy on one suite (JSON lines on stdout).

``--part suite`` (default) runs ``ponder eval SUITE`` once per strategy (a fresh process each, as a user runs
it; ``--out`` keeps every run directory, and a rerun resumes them), then prints one line per strategy
(``success``, Wilson 95% CI, tokens / model calls / env steps / wall per episode, the process's wall) and a
summary line, and writes ``comparison.md`` / ``comparison.html`` (the frontier plot: one point per
strategy, Wilson error bars, the ``random`` floor) into ``<out>/comparison``.

Strategies (``--strategies``, comma-separated) become ``ponder eval`` flags:

==============  ===========================================================================================
``single``      (nothing: one ReAct/PAL run)
``random``      ``--policy random`` (env suites: the no-model floor, same step cap)
``sc``          ``--strategy sc --samples N``
``best_of_n``   ``--strategy best_of_n --samples N [--verifier V]``
``beam``        ``--strategy beam --budget B [--verifier V]``
``lats``        ``--strategy lats --budget B [--verifier V]``
``refine``      ``--strategy refine [--verifier V]``
``adaptive``    ``--strategy adaptive --budget-total T`` (``--budget-total``; else per task ``--budget B``)
==============  ===========================================================================================

``--config 'label=FLAGS'`` (repeatable) adds any other configuration, e.g.
``--config 'lats-e2=--strategy lats --expansions 2 --budget 10000t'``. ``--tiers 1,2`` keeps those tiers of a
TextWorld suite (a derived suite file: same games, same ids).

``--part synthetic`` is the compute-optimal allocation check without a model (seconds,
:mod:`ponder.envs.adaptive_synthetic`): uniform allocation (N samples per question, verifier-weighted vote)
against adaptive allocation (two samples, then the rest by expected gain per token) on a mixed-difficulty
suite (per-sample accuracy 0.9 / 0.5 / 0.1 / 0), with the tokens uniform needs to match each adaptive point.

Usage::

    nice -n 5 .venv/bin/python benchmarks/frontier.py --suite textworld --tiers 1 \\
        --strategies single,random,sc,best_of_n,lats --budget 20000t --model embedded --out runs/bench/tw1
    .venv/bin/python benchmarks/frontier.py --suite gsm8k --limit 100 --agent pal \\
        --strategies single,best_of_n,beam --verifier execution,self --budget 20000t --out runs/bench/gsm8k
    .venv/bin/python benchmarks/frontier.py --part synthetic
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STRATEGIES = ("single", "random", "sc", "best_of_n", "beam", "lats", "refine", "adaptive")


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


def strategy_flags(name: str, args: argparse.Namespace) -> list[str]:
    """The ``ponder eval`` flags of a named strategy (see the module docstring)."""
    verifier = ["--verifier", args.verifier] if args.verifier else []
    flags: dict[str, list[str]] = {
        "single": [], "random": ["--policy", "random"],
        "sc": ["--strategy", "sc", "--samples", str(args.samples)],
        "best_of_n": ["--strategy", "best_of_n", "--samples", str(args.samples), *verifier],
        "beam": ["--strategy", "beam", "--budget", args.budget, *verifier],
        "lats": ["--strategy", "lats", "--budget", args.budget, *verifier],
        "refine": ["--strategy", "refine", *verifier],
        "adaptive": ["--strategy", "adaptive", *verifier,
                     *(["--budget-total", args.budget_total] if args.budget_total else ["--budget", args.budget])],
    }
    if name not in flags:
        raise SystemExit(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)} or use --config")
    return flags[name]


def configurations(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """``(label, flags)`` for every strategy and ``--config``."""
    out = [(name, strategy_flags(name, args)) for name in filter(None, args.strategies.split(","))]
    for item in args.config or []:
        label, sep, flags = item.partition("=")
        if not sep or not label.strip():
            raise SystemExit(f"--config wants 'label=FLAGS' (got {item!r})")
        out.append((label.strip(), shlex.split(flags)))
    return out


def tier_suite(tiers: str, out: Path, suite_file: str) -> Path:
    """A TextWorld suite file with only ``tiers`` of ``suite_file`` (the games and their ids unchanged)."""
    from ponder.envs.textworld.spec import suite_path

    spec = json.loads(suite_path(suite_file).read_text(encoding="utf-8"))
    keep = [t.strip() for t in tiers.split(",") if t.strip()]
    missing = [t for t in keep if t not in spec["tiers"]]
    if missing:
        raise SystemExit(f"tiers {missing} not in suite {suite_file!r} (has {sorted(spec['tiers'])})")
    spec["tiers"] = {t: spec["tiers"][t] for t in keep}
    spec["name"] = f"{spec['name']}-tiers-{'-'.join(keep)}"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{spec['name']}.json"
    path.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    return path


def common_flags(args: argparse.Namespace, out: Path) -> list[str]:
    """Flags every configuration shares: model, agent, data, limit, seed, workers, caps."""
    flags = ["--model", args.model, "--seed", str(args.seed), "--workers", str(args.workers),
             "--timeout", str(args.timeout), "--quiet"]
    for name in ("agent", "limit", "max_steps", "temperature"):
        value = getattr(args, name)
        if value is not None:
            flags += [f"--{name.replace('_', '-')}", str(value)]
    data = args.data
    if args.tiers:
        data = str(tier_suite(args.tiers, out / "suites", args.data or "default"))
    return flags + (["--data", data] if data else [])


def run_one(label: str, flags: list[str], common: list[str], args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """One ``ponder eval`` process (resumed when its directory has results); its frontier line."""
    from ponder.envs.report import load_run
    from ponder.envs.report_search import frontier_points

    run_dir = out / label
    resume = ["--resume"] if (run_dir / "results.jsonl").is_file() else []
    cmd = [sys.executable, "-m", "ponder.cli", "eval", args.suite, *common, *flags, "--out", str(run_dir), *resume]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.run_timeout, check=False)
    wall = round(time.perf_counter() - start, 2)
    if proc.returncode != 0 or not (run_dir / "results.jsonl").is_file():
        return {"event": "error", "strategy": label, "flags": flags, "exit": proc.returncode, "wall_s": wall,
                "stderr": proc.stderr[-1500:]}
    (point,) = frontier_points([load_run(run_dir)])
    rate = point["rate"]
    return {"event": "strategy", "strategy": label, "flags": flags, "run": str(run_dir), "n": point["n"],
            "success": round(rate.value, 4), "ci_low": round(rate.low, 4), "ci_high": round(rate.high, 4),
            "tokens_per_ep": round(point["tokens"], 1), "model_calls_per_ep": round(point["calls"], 2),
            "env_steps_per_ep": round(point["env_steps"], 2), "wall_per_ep_s": round(point["wall"], 2),
            "process_wall_s": wall}


def part_suite(args: argparse.Namespace) -> None:
    from ponder.envs.report import write_comparison

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    common = common_flags(args, out)
    rows = []
    for label, flags in configurations(args):
        row = run_one(label, flags, common, args, out)
        emit(row)
        rows.append(row)
    done = [Path(r["run"]) for r in rows if r["event"] == "strategy"]
    summary: dict[str, Any] = {"event": "summary", "suite": args.suite, "model": args.model,
                               "strategies": [r["strategy"] for r in rows if r["event"] == "strategy"],
                               "errors": [r["strategy"] for r in rows if r["event"] == "error"]}
    if len(done) >= 2:
        md, page, _ = write_comparison(done, out / "comparison")
        summary.update(comparison_md=str(md), comparison_html=str(page))
    emit(summary)


def part_synthetic(args: argparse.Namespace) -> None:
    from ponder.envs.adaptive_synthetic import SAMPLE_TOKENS, questions, simulate_adaptive, simulate_uniform

    qs = questions(args.per_level)
    uniform = {n: simulate_uniform(qs, n) for n in (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 24, 32)}
    for n, (acc, tokens) in uniform.items():
        emit({"event": "uniform", "samples_per_question": n, "accuracy": acc, "tokens": tokens})
    for per_q in (2.5, 3, 4, 6, 8, 12):
        budget = int(per_q * SAMPLE_TOKENS * len(qs))
        acc, spent, levels = simulate_adaptive(qs, budget)
        match = min((n for n, (a, _) in uniform.items() if a >= acc), default=None)
        emit({"event": "adaptive", "budget_per_question": per_q, "budget_tokens": budget, "tokens": spent,
              "accuracy": acc, "by_level": levels, "uniform_samples_to_match": match,
              "uniform_tokens_to_match": uniform[match][1] if match else None,
              "saving": round(1 - spent / uniform[match][1], 3) if match else None})
    emit({"event": "summary", "part": "synthetic", "questions": len(qs), "sample_tokens": SAMPLE_TOKENS})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("suite", "synthetic"), default="suite")
    parser.add_argument("--suite", default="textworld")
    parser.add_argument("--strategies", default="single,random,sc,best_of_n,lats")
    parser.add_argument("--config", action="append", help="'label=FLAGS' (repeatable): another configuration")
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--agent", default=None)
    parser.add_argument("--data", default=None, help="a data file (QA suites) or TextWorld suite name/file")
    parser.add_argument("--tiers", default=None, help="TextWorld tiers to keep, e.g. 1,2")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--samples", type=int, default=5, help="N of sc and best_of_n")
    parser.add_argument("--budget", default="20000t", help="per-task budget of beam, lats (and adaptive)")
    parser.add_argument("--budget-total", default=None, help="the suite budget of adaptive, e.g. 200000t")
    parser.add_argument("--verifier", default=None, help="e.g. self,env or execution,self (default: per strategy)")
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per episode")
    parser.add_argument("--run-timeout", type=float, default=6 * 3600.0, help="seconds per configuration")
    parser.add_argument("--out", default="runs/bench/frontier")
    parser.add_argument("--per-level", type=int, default=100, help="synthetic questions per difficulty level")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    part_synthetic(args) if args.part == "synthetic" else part_suite(args)


if __name__ == "__main__":
    sys.exit(main())
