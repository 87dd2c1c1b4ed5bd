"""Self-consistency cost: SC×N (batched) vs one trajectory vs N sequential trajectories, and early-stopping savings.

Part 1 (real model, one run, the same GSM8K questions for every configuration, interleaved per question):

* ``single``      -- one ReAct trajectory (``run_agent``), temperature 0.7, seed 0;
* ``sc_batched``  -- ``run_self_consistency`` with N samples in one wave; with a backend that decodes batches
  natively (``transformers``) the branches' model calls are gathered by the micro-batcher;
* ``sequential``  -- the same N samples one after another (``batch=False``, one branch at a time).

Reported: wall seconds per question and the ratios ``sc_batched / single`` (goal <= 2.5) and
``sequential / single`` (about N), plus tokens and the batch sizes the micro-batcher formed.

Part 2 (scripted answer distributions, no model): tokens and samples saved by ``--early-stop`` per stop rule at
equal final answers (``certain`` never changes the answer; ``beta`` and ``esc`` may, the count is reported).

Usage::

    python benchmarks/self_consistency.py [--model transformers] [--questions 5] [--samples 8] [--max-tokens 64]
    python benchmarks/self_consistency.py --part early-stop
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def gsm8k_questions(data_dir: Path, n: int) -> list[dict]:
    rows = [json.loads(line) for line in (data_dir / "gsm8k" / "test_dev.jsonl").read_text().splitlines() if line]
    return rows[:n]


def part_real(args: argparse.Namespace) -> None:
    from ponder.agents.runner import run_agent
    from ponder.core.settings import load_settings
    from ponder.graphs.self_consistency import SCConfig, run_self_consistency
    from ponder.models.spec import load_model

    settings = load_settings(model=args.model, max_tokens=args.max_tokens, max_steps=args.max_steps,
                             temperature=0.7, seed=0, tools=["calculator"], out_dir="/tmp/ponder-bench-sc")
    start = time.perf_counter()
    backend = load_model(args.model, settings)
    emit({"event": "load", "model": args.model, "backend": backend.backend_name,
          "seconds": round(time.perf_counter() - start, 2)})
    run_agent("What is 1 + 1?", settings=settings, model=backend, write=False)  # warm-up
    walls: dict[str, list[float]] = {"single": [], "sc_batched": [], "sequential": []}
    for q in gsm8k_questions(Path(settings.data_dir), args.questions):
        row: dict = {"event": "question", "id": q["id"], "gold": q["answer"]}
        t = time.perf_counter()
        traj = run_agent(q["question"], settings=settings, model=backend, write=False)
        walls["single"].append(time.perf_counter() - t)
        row["single"] = {"wall": round(walls["single"][-1], 2), "tokens": traj.usage.total_tokens,
                         "answer": traj.final_answer}
        for name, config in (("sc_batched", SCConfig(samples=args.samples, batch_window=0.5)),
                             ("sequential", SCConfig(samples=args.samples, wave=1, batch=False))):
            t = time.perf_counter()
            result = run_self_consistency(q["question"], config=config, settings=settings, model=backend, write=False)
            walls[name].append(time.perf_counter() - t)
            row[name] = {"wall": round(walls[name][-1], 2), "tokens": result.usage.total_tokens,
                         "answer": result.final_answer, "agreement": result.agreement,
                         "batches": result.batch_sizes[:12]}
        emit(row)
    single = statistics.mean(walls["single"])
    summary = {"event": "summary", "model": args.model, "backend": backend.backend_name,
               "questions": args.questions, "samples": args.samples, "max_tokens": args.max_tokens,
               "single_s": round(single, 2),
               "sc_batched_s": round(statistics.mean(walls["sc_batched"]), 2),
               "sequential_s": round(statistics.mean(walls["sequential"]), 2),
               "ratio_sc_vs_single": round(sum(walls["sc_batched"]) / sum(walls["single"]), 2),
               "ratio_sequential_vs_single": round(sum(walls["sequential"]) / sum(walls["single"]), 2)}
    summary["goal_met"] = summary["ratio_sc_vs_single"] <= 2.5
    emit(summary)


def part_early_stop(args: argparse.Namespace) -> None:
    """Early stopping on scripted answer distributions: samples/tokens saved and answers changed per rule."""
    from ponder.core.settings import load_settings
    from ponder.graphs.self_consistency import SCConfig, run_self_consistency
    from ponder.models.scripted import ScriptedModel

    rng = random.Random(0)
    settings = load_settings(tools=["calculator"], out_dir="/tmp/ponder-bench-sc")
    distributions = {"confident (p=0.9)": 0.9, "leaning (p=0.6)": 0.6, "split (p=0.4)": 0.4}
    for label, p in distributions.items():
        tasks = []
        for _ in range(args.tasks):
            answers = {i: "42" if rng.random() < p else rng.choice(["41", "40", "24"]) for i in range(args.samples)}
            tasks.append(answers)
        for rule in ("none", "certain", "beta", "esc"):
            run_tokens = saved_samples = changed = 0
            for answers in tasks:
                model = ScriptedModel(lambda m, params, a=answers: f"Thought: t\nFinal Answer: {a[params.seed]}")
                config = SCConfig(samples=args.samples, early_stop=rule != "none",
                                  stop_rule=rule if rule != "none" else "certain", wave=args.wave)
                result = run_self_consistency("Q?", config=config, settings=settings, model=model, write=False)
                full = run_self_consistency("Q?", config=SCConfig(samples=args.samples), settings=settings,
                                            model=ScriptedModel(lambda m, params, a=answers:
                                                                f"Thought: t\nFinal Answer: {a[params.seed]}"),
                                            write=False)
                run_tokens += result.usage.total_tokens
                saved_samples += result.samples_saved
                changed += result.final_answer != full.final_answer
            emit({"event": "early_stop", "distribution": label, "rule": rule, "tasks": args.tasks,
                  "samples": args.samples, "wave": args.wave, "samples_run_mean": round(
                      args.samples - saved_samples / args.tasks, 2), "samples_saved_pct": round(
                      100 * saved_samples / (args.tasks * args.samples), 1), "tokens": run_tokens,
                  "answers_changed": changed})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["all", "real", "early-stop"], default="all")
    parser.add_argument("--model", default="transformers")
    parser.add_argument("--questions", type=int, default=5)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=100, help="scripted tasks per distribution (early stopping)")
    parser.add_argument("--wave", type=int, default=2, help="wave size for the early-stopping part")
    args = parser.parse_args()
    if args.part in ("all", "early-stop"):
        part_early_stop(args)
    if args.part in ("all", "real"):
        part_real(args)


if __name__ == "__main__":
    sys.exit(main())
