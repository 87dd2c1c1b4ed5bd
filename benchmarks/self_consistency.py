"""Self-consistency cost: SC×N vs the same N samples one after another vs one sample, and early-stopping savings.

Part 1 (real model, ``--agents react,pal``, the same GSM8K questions for every configuration; per question the
configurations run back to back, in an order rotated from one question to the next so drift spreads evenly):

* ``sc``          -- ``run_self_consistency`` with N samples (temperature 0.7, sample ``i`` seed ``i``), as
  ``ponder run --samples N`` runs it: a continuous-batching backend (the llama.cpp engine) takes the N branches'
  calls concurrently; a backend that only decodes explicit batches (transformers) gets them gathered by the
  micro-batcher;
* ``sequential``  -- the same N samples (same seeds, same settings) one after another (``wave=1``);
* ``single``      -- one sample at the same temperature (seed 0: sample 0).

Reported per question: wall seconds, tokens, the answers of every sample in both runs (``same_samples``: the
per-sample answers agree, as they must with per-request seeds), the most samples in flight at once (from the
record's sample start/end times), tokens per second (prompt + completion: when the samples' texts differ between
the two runs, the walls compare different amounts of work, the throughput does not) and the ratios
``sc / sequential`` (goal <= 0.6) and ``sc / single``. The summary per agent: means, the ratio of the summed walls
and ``throughput_sc_vs_sequential``.

Part 2 (scripted answer distributions, no model): tokens and samples saved by ``--early-stop`` per stop rule at
equal final answers (``certain`` never changes the answer; ``beta`` and ``esc`` may, the count is reported).

Part ``waves`` (real model, only when asked for): early stopping (``certain``) with every sample launched at once
(the default on a continuous-batching backend: what the vote no longer needs is cancelled) vs waves of half the
samples, per question and agent: wall, tokens, samples run and discarded, answers; ``ratio_all_vs_half`` < 1 means
launching everything saves wall time.

Usage::

    python benchmarks/self_consistency.py --part real [--model embedded] [--agents react,pal] [--questions 10]
        [--samples 8] [--max-tokens 256] [--max-steps 6]
    python benchmarks/self_consistency.py --part early-stop
    python benchmarks/self_consistency.py --part waves [--agents react] [--questions 10]
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
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CONFIGS = ("sc", "sequential", "single")


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def gsm8k_questions(data_dir: Path, n: int) -> list[dict]:
    rows = [json.loads(line) for line in (data_dir / "gsm8k" / "test_dev.jsonl").read_text().splitlines() if line]
    return rows[:n]


def max_in_flight(samples: list[Any]) -> int:
    """The most samples running at the same moment, from their start and end offsets."""
    events = sorted([(s.start_s, 1) for s in samples if s.start_s is not None]
                    + [(s.end_s, -1) for s in samples if s.end_s is not None], key=lambda e: (e[0], e[1]))
    peak = now = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def run_config(name: str, question: str, agent: str, args: argparse.Namespace, settings: Any,
               backend: Any) -> dict[str, Any]:
    """One configuration on one question: its wall time, tokens and answers."""
    from ponder.agents.runner import run_agent
    from ponder.graphs.self_consistency import SCConfig, run_self_consistency

    start = time.perf_counter()
    if name == "single":
        traj = run_agent(question, agent=agent, settings=settings, model=backend, write=False)
        return {"wall": round(time.perf_counter() - start, 2), "tokens": traj.usage.total_tokens,
                "answer": traj.final_answer, "status": traj.status}
    config = SCConfig(samples=args.samples, temperature=0.7, seed=0, **({"wave": 1} if name == "sequential" else {}))
    result = run_self_consistency(question, config=config, agent=agent, settings=settings, model=backend,
                                  write=False)
    return {"wall": round(time.perf_counter() - start, 2), "tokens": result.usage.total_tokens,
            "answer": result.final_answer, "agreement": result.agreement,
            "samples": [s.trajectory.final_answer for s in result.samples],
            "in_flight": max_in_flight(result.samples), "batches": result.batch_sizes[:12]}


def question_row(q: dict, index: int, agent: str, args: argparse.Namespace, settings: Any,
                 backend: Any) -> dict[str, Any]:
    """Every configuration on question ``q``, in an order rotated by ``index``."""
    row: dict[str, Any] = {"event": "question", "agent": agent, "id": q["id"], "gold": q["answer"]}
    order = CONFIGS[index % len(CONFIGS):] + CONFIGS[:index % len(CONFIGS)]
    row["order"] = list(order)
    for name in order:
        row[name] = run_config(name, q["question"], agent, args, settings, backend)
    row["same_samples"] = row["sc"]["samples"] == row["sequential"]["samples"]
    row["ratio_sc_vs_sequential"] = round(row["sc"]["wall"] / max(row["sequential"]["wall"], 1e-9), 3)
    row["ratio_sc_vs_single"] = round(row["sc"]["wall"] / max(row["single"]["wall"], 1e-9), 3)
    for name in CONFIGS:
        row[name]["tokens_per_s"] = round(row[name]["tokens"] / max(row[name]["wall"], 1e-9), 1)
    return row


def summary(agent: str, rows: list[dict], args: argparse.Namespace, backend: Any) -> dict[str, Any]:
    """Means over the questions and the ratios of the summed walls."""
    walls = {name: [r[name]["wall"] for r in rows] for name in CONFIGS}
    out: dict[str, Any] = {"event": "summary", "agent": agent, "model": args.model, "backend": backend.backend_name,
                           "questions": len(rows), "samples": args.samples, "max_tokens": args.max_tokens,
                           "max_steps": args.max_steps}
    out.update({f"{name}_s": round(statistics.mean(w), 2) for name, w in walls.items()})
    out["ratio_sc_vs_sequential"] = round(sum(walls["sc"]) / sum(walls["sequential"]), 3)
    out["ratio_sc_vs_single"] = round(sum(walls["sc"]) / sum(walls["single"]), 3)
    out["mean_ratio_sc_vs_sequential"] = round(statistics.mean(r["ratio_sc_vs_sequential"] for r in rows), 3)
    out["mean_ratio_sc_vs_single"] = round(statistics.mean(r["ratio_sc_vs_single"] for r in rows), 3)
    tokens = {name: sum(r[name]["tokens"] for r in rows) for name in CONFIGS}
    out["tokens_per_s"] = {name: round(tokens[name] / sum(walls[name]), 1) for name in CONFIGS}
    out["throughput_sc_vs_sequential"] = round(out["tokens_per_s"]["sc"] / out["tokens_per_s"]["sequential"], 3)
    out["same_samples"] = sum(r["same_samples"] for r in rows)
    out["mean_in_flight"] = round(statistics.mean(r["sc"]["in_flight"] for r in rows), 2)
    out["goal_met"] = out["ratio_sc_vs_sequential"] <= 0.6
    return out


def load(args: argparse.Namespace) -> tuple[Any, Any, list[str]]:
    """Settings, the loaded backend (warmed up per agent) and the agents of a real-model part."""
    from ponder.agents.runner import run_agent
    from ponder.core.settings import load_settings
    from ponder.models.spec import load_model

    settings = load_settings(model=args.model, max_tokens=args.max_tokens, max_steps=args.max_steps,
                             temperature=0.7, seed=0, tools=["calculator"], out_dir="/tmp/ponder-bench-sc")
    start = time.perf_counter()
    backend = load_model(args.model, settings)
    emit({"event": "load", "model": args.model, "backend": backend.backend_name,
          "seconds": round(time.perf_counter() - start, 2), "capabilities": backend.capabilities.model_dump(),
          "load_info": {k: v for k, v in backend.load_info.items() if isinstance(v, str | int | float | bool)}})
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    for agent in agents:
        run_agent("What is 1 + 1?", agent=agent, settings=settings, model=backend, write=False)  # warm-up
    return settings, backend, agents


def part_real(args: argparse.Namespace) -> None:
    settings, backend, agents = load(args)
    rows: dict[str, list[dict]] = {agent: [] for agent in agents}
    for index, q in enumerate(gsm8k_questions(Path(settings.data_dir), args.questions)):
        for agent in agents:
            rows[agent].append(question_row(q, index, agent, args, settings, backend))
            emit(rows[agent][-1])
    for agent in agents:
        emit(summary(agent, rows[agent], args, backend))


def part_waves(args: argparse.Namespace) -> None:
    """Early stopping (``certain``) with every sample launched at once vs waves of half: wall, tokens, answers."""
    from ponder.graphs.self_consistency import SCConfig, run_self_consistency

    settings, backend, agents = load(args)
    waves = {"all": args.samples, "half": max(1, (args.samples + 1) // 2)}
    rows: list[dict] = []
    for index, q in enumerate(gsm8k_questions(Path(settings.data_dir), args.questions)):
        for agent in agents:
            row: dict[str, Any] = {"event": "waves", "agent": agent, "id": q["id"]}
            for name in (("all", "half") if index % 2 == 0 else ("half", "all")):
                config = SCConfig(samples=args.samples, temperature=0.7, seed=0, early_stop=True, wave=waves[name])
                start = time.perf_counter()
                result = run_self_consistency(q["question"], config=config, agent=agent, settings=settings,
                                              model=backend, write=False)
                row[name] = {"wall": round(time.perf_counter() - start, 2), "tokens": result.usage.total_tokens,
                             "answer": result.final_answer, "samples_run": result.samples_run,
                             "discarded": result.samples_discarded, "stop": result.stop_reason}
            row["same_answer"] = row["all"]["answer"] == row["half"]["answer"]
            rows.append(row)
            emit(row)
    for agent in agents:
        mine = [r for r in rows if r["agent"] == agent]
        walls = {name: sum(r[name]["wall"] for r in mine) for name in waves}
        emit({"event": "waves_summary", "agent": agent, "questions": len(mine), "samples": args.samples,
              "all_s": round(walls["all"] / len(mine), 2), "half_s": round(walls["half"] / len(mine), 2),
              "ratio_all_vs_half": round(walls["all"] / walls["half"], 3),
              "tokens_all": sum(r["all"]["tokens"] for r in mine),
              "tokens_half": sum(r["half"]["tokens"] for r in mine),
              "same_answer": sum(r["same_answer"] for r in mine)})


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
    parser.add_argument("--part", choices=["all", "real", "early-stop", "waves"], default="all")
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--agents", default="react,pal", help="comma-separated agents for the real part")
    parser.add_argument("--questions", type=int, default=10)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--max-steps", type=int, default=6)
    parser.add_argument("--tasks", type=int, default=100, help="scripted tasks per distribution (early stopping)")
    parser.add_argument("--wave", type=int, default=2, help="wave size for the early-stopping part")
    args = parser.parse_args()
    if args.part in ("all", "early-stop"):
        part_early_stop(args)
    if args.part in ("all", "real"):
        part_real(args)
    if args.part == "waves":
        part_waves(args)


if __name__ == "__main__":
    sys.exit(main())
