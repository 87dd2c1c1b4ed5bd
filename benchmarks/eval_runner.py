"""Evaluation-runner benchmark: TextWorld walkthrough throughput at W=1 vs W=2, and runner overhead on QA.

Sections (JSON lines on stdout):

* ``textworld_walkthrough`` -- the first ``--games`` (50) games of the ``textworld`` suite played by the
  ``walkthrough`` harness policy (no model) through :func:`ponder.envs.runner.run_eval`, once per worker
  count in ``--workers`` (default 1,2; worker processes, as the suite ``needs_process``). Games are
  generated into the cache first; that is reported once as ``prepare_s`` and not timed in the runs.
  Each line: ``wall_s`` (run_eval end to end, worker start-up included), ``episodes_per_s``,
  ``success_rate`` (must be 1.0: the walkthrough wins every game), ``goal_met`` (W=2 within 60 s).
  A ``textworld_speedup`` line gives wall(W=1) / wall(W=k).
* ``qa_runner_overhead`` -- ``--qa-episodes`` (200) GSM8K episodes through ``run_eval`` (threads), with
  ``policy=gold`` (no agent: the runner alone, including the fsynced append per episode) and with the
  ReAct agent on an in-memory scripted model that answers at once. ``overhead_ms_per_episode`` is
  (run wall - the agents' own wall) / episodes at W=1.

Usage::

    python benchmarks/eval_runner.py                       # both sections
    python benchmarks/eval_runner.py --skip-textworld      # QA only (no game generation)
    python benchmarks/eval_runner.py --games 10 --workers 1,2,4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent


def emit(**fields: object) -> None:
    """Print one JSON line."""
    print(json.dumps(fields), flush=True)


def textworld(games: int, workers: list[int], goal_s: float) -> None:
    """Walkthrough runs of ``games`` TextWorld games at each worker count."""
    from ponder.core.settings import load_settings
    from ponder.envs.context import EvalOptions
    from ponder.envs.registry import get_suite
    from ponder.envs.runner import run_eval

    settings = load_settings()
    suite = get_suite("textworld")
    start = time.perf_counter()
    episodes = suite.episodes(settings, None, games)
    emit(bench="textworld_prepare", games=len(episodes), prepare_s=round(time.perf_counter() - start, 2),
         note="game generation (cached after the first run) and loading; not part of the timed runs")
    walls: dict[int, float] = {}
    for w in workers:
        with tempfile.TemporaryDirectory(prefix="ponder-bench-tw-") as tmp:
            options = EvalOptions(suite="textworld", policy="walkthrough", workers=w, timeout=120,
                                  out_dir=Path(tmp) / "run")
            start = time.perf_counter()
            run = run_eval(suite, options, settings, episodes=episodes, quiet=True, report=False)
            wall = time.perf_counter() - start
        walls[w] = wall
        s = run.summary
        emit(bench="textworld_walkthrough", workers=w, episodes=s.n, wall_s=round(wall, 2),
             episodes_per_s=round(s.n / wall, 3), mean_episode_s=round(s.wall_seconds.value, 3),
             success_rate=s.success_rate.value, env_steps_mean=round(s.env_steps.value, 2),
             failures=s.failures, goal_s=goal_s if w == 2 else None,
             goal_met=(wall <= goal_s) if w == 2 else None)
    if 1 in walls:
        emit(bench="textworld_speedup", **{f"w{w}": round(walls[1] / walls[w], 2) for w in walls if w != 1})


def qa_overhead(n: int, workers: list[int]) -> None:
    """Runner overhead per episode on GSM8K: gold policy (no agent) and a ReAct agent on a scripted model."""
    from ponder.core.settings import load_settings
    from ponder.envs.context import EvalOptions
    from ponder.envs.registry import get_suite
    from ponder.envs.runner import run_eval
    from ponder.models.scripted import ScriptedModel

    suite = get_suite("gsm8k")
    with tempfile.TemporaryDirectory(prefix="ponder-bench-qa-") as tmp:
        settings = load_settings(out_dir=tmp)
        episodes = suite.episodes(settings, None, n)
        gold = {e.task: e.gold for e in episodes}

        def reply(messages, params):  # noqa: ANN001, ANN202
            question = next(m["content"] for m in reversed(messages) if m["content"].startswith("Question: "))
            return f"Thought: I now know the final answer\nFinal Answer: {gold[question.removeprefix('Question: ')]}"

        for policy in ("gold", "agent"):
            for w in workers:
                options = EvalOptions(suite="gsm8k", policy=policy, workers=w, out_dir=Path(tmp) / f"{policy}-{w}")
                model = ScriptedModel(reply) if policy == "agent" else None
                start = time.perf_counter()
                run = run_eval(suite, options, settings, episodes=episodes, quiet=True, report=False, model=model)
                wall = time.perf_counter() - start
                agent_s = sum(r.usage.wall_seconds for r in run.results) if policy == "agent" else 0.0
                emit(bench="qa_runner_overhead", suite="gsm8k", policy=policy, workers=w, episodes=run.summary.n,
                     wall_s=round(wall, 3), ms_per_episode=round(1000 * wall / n, 3),
                     agent_ms_per_episode=round(1000 * agent_s / n, 3),
                     overhead_ms_per_episode=round(1000 * (wall - agent_s / w) / n, 3) if w == 1 else None,
                     success_rate=run.summary.success_rate.value)
        start = time.perf_counter()
        from ponder.envs.report import write_report

        write_report(Path(tmp) / f"agent-{workers[0]}")
        emit(bench="qa_report", episodes=n, report_s=round(time.perf_counter() - start, 3))


def main() -> None:
    """Parse flags and run the sections."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", type=int, default=50)
    parser.add_argument("--workers", default="1,2", help="Worker counts for TextWorld (comma-separated).")
    parser.add_argument("--goal", type=float, default=60.0, help="Seconds allowed at W=2.")
    parser.add_argument("--qa-episodes", type=int, default=200)
    parser.add_argument("--qa-workers", default="1,4")
    parser.add_argument("--skip-textworld", action="store_true")
    parser.add_argument("--skip-qa", action="store_true")
    args = parser.parse_args()
    emit(bench="env", python=sys.version.split()[0], platform=platform.platform(), cpus=os.cpu_count(),
         load_avg=[round(x, 2) for x in os.getloadavg()])
    if not args.skip_qa:
        qa_overhead(args.qa_episodes, [int(w) for w in args.qa_workers.split(",")])
    if not args.skip_textworld:
        textworld(args.games, [int(w) for w in args.workers.split(",")], args.goal)


if __name__ == "__main__":
    main()
