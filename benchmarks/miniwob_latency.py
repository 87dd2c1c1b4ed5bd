"""MiniWoB++ env latency in a real headless Chromium: browser start, reset, step (by action), task switch.

What is timed (wall clock, ``time.perf_counter``):

* ``browser_start`` -- ``MiniWoBEnv`` starting Chromium + chromedriver and loading the first task page
  (the first ``reset()`` minus the episode start); ``browser_close`` -- ``close()`` until every process of
  the browser is gone. ``--starts`` times.
* ``reset`` -- ``env.reset(seed)`` in a warm browser (the page is already loaded): MiniWoB's new episode,
  the DOM snapshot and the text rendering. ``--resets`` seeds per task in ``--tasks``.
* ``task_switch`` -- ``set_task(other)`` + ``reset()``: loading another task's page in the same browser.
* ``step`` -- ``env.step(action)`` while the hand-written solvers play ``--episodes`` seeds of each task,
  grouped by verb (``click`` / ``type`` / ``select``) and by whether the step ended the episode
  (``terminal``); ``invalid`` -- an action naming an unknown ref (answered without a browser step).

Output: one JSON line per metric (``n``, ``p50_ms``, ``p95_ms``, ``mean_ms``, ``max_ms``) and a ``summary``
line. Timings on a shared machine are noisy; p50 is the number to compare.

Usage::

    python benchmarks/miniwob_latency.py [--starts 3] [--resets 20] [--episodes 5] [--tasks click-test,...]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import defaultdict
from importlib import metadata

import numpy as np

from ponder.envs.miniwob.browser import alive, descendants, find_browser
from ponder.envs.miniwob.env import MiniWoBEnv
from ponder.envs.miniwob.page import parse_page
from ponder.envs.miniwob.solvers import SOLVERS

DEFAULT_TASKS = "click-test,click-button,choose-list,login-user,click-checkboxes,navigate-tree,enter-text"


def stats(name: str, seconds: list[float], **extra: object) -> dict[str, object]:
    """One JSON row of latency percentiles (milliseconds)."""
    ms = np.array(seconds) * 1000
    row: dict[str, object] = {"metric": name, **extra, "n": len(seconds)}
    if len(ms):
        row.update({"p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2),
                    "mean_ms": round(float(ms.mean()), 2), "max_ms": round(float(ms.max()), 2)})
    return row


def emit(row: dict[str, object]) -> None:
    print(json.dumps(row), flush=True)


def measure_starts(task: str, n: int) -> tuple[list[float], list[float], bool]:
    starts, closes, leaked = [], [], False
    for seed in range(n):
        env = MiniWoBEnv(task)
        env.reset(seed)
        starts.append(env.browser_seconds)
        tree = [env.browser_pid, *descendants(env.browser_pid)] if env.browser_pid else []
        t0 = time.perf_counter()
        env.close()
        closes.append(time.perf_counter() - t0)
        leaked = leaked or any(alive(p) for p in tree if p)
    return starts, closes, leaked


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--resets", type=int, default=20)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--tasks", default=DEFAULT_TASKS)
    args = parser.parse_args()
    paths = find_browser()
    if paths is None:
        emit({"metric": "skipped", "reason": "chromium / chromedriver not installed"})
        return 0
    tasks = [t for t in args.tasks.split(",") if t]
    emit({"metric": "env", "python": platform.python_version(), "machine": platform.machine(),
          "miniwob": metadata.version("miniwob"), "selenium": metadata.version("selenium"), "chrome": paths.chrome,
          "chromedriver": paths.chromedriver, "tasks": tasks})

    starts, closes, leaked = measure_starts(tasks[0], args.starts)
    emit(stats("browser_start", starts))
    emit(stats("browser_close", closes, leaked_processes=leaked))

    env = MiniWoBEnv(tasks[0], paths=paths)
    resets: dict[str, list[float]] = defaultdict(list)
    switches: list[float] = []
    steps: dict[str, list[float]] = defaultdict(list)
    invalid: list[float] = []
    wins = played = 0
    try:
        env.reset(0)
        for task in tasks:
            t0 = time.perf_counter()
            env.set_task(task)
            env.reset(0)
            switches.append(time.perf_counter() - t0)
            for seed in range(1, args.resets + 1):
                t0 = time.perf_counter()
                env.reset(seed)
                resets[task].append(time.perf_counter() - t0)
            solver = SOLVERS.get(task)
            for seed in range(args.episodes if solver else 0):
                reset = env.reset(seed)
                t0 = time.perf_counter()
                env.step("click [99999]")
                invalid.append(time.perf_counter() - t0)
                utterance, page, done_actions = reset.info["utterance"], parse_page(reset.observation), []
                played += 1
                for _ in range(12):
                    action = solver(utterance, page, done_actions)  # type: ignore[misc]
                    if not action:
                        break
                    t0 = time.perf_counter()
                    result = env.step(action)
                    seconds = time.perf_counter() - t0
                    done_actions.append(action)
                    steps[f"{action.split()[0]}{'_terminal' if result.done else ''}"].append(seconds)
                    if result.done:
                        wins += bool(result.info.get("won"))
                        break
                    page = parse_page(result.observation)
    finally:
        env.close()
    for task, values in resets.items():
        emit(stats("reset", values, task=task))
    all_resets = [v for values in resets.values() for v in values]
    emit(stats("reset", all_resets, task="all"))
    emit(stats("task_switch", switches))
    for kind, values in sorted(steps.items()):
        emit(stats("step", values, action=kind))
    all_steps = [v for values in steps.values() for v in values]
    emit(stats("step", all_steps, action="all"))
    emit(stats("step", invalid, action="invalid"))
    emit({"metric": "summary", "browser_start_p50_s": round(float(np.percentile(starts, 50)), 3),
          "reset_p50_ms": stats("r", all_resets).get("p50_ms"), "reset_p95_ms": stats("r", all_resets).get("p95_ms"),
          "step_p50_ms": stats("s", all_steps).get("p50_ms"), "step_p95_ms": stats("s", all_steps).get("p95_ms"),
          "solver_wins": wins, "solver_episodes": played, "leaked_processes": leaked})
    return 0


if __name__ == "__main__":
    sys.exit(main())
