"""Local sandbox latency: session cold start and warm runs, against a plain subprocess.

Configurations (all in one process, after one untimed warm-up of each):

* ``local_cold_start`` -- ``LocalSandbox(...)`` then its first ``run(snippet)``: a new isolated session
  (bwrap + interpreter start + handshake) until the first result (``--sessions``, default 10);
* ``local_warm_exec`` -- ``run(snippet)`` in one live session (``--runs``, default 100);
* ``plain_subprocess`` -- ``subprocess.run([sys.executable, "-c", snippet])``: no isolation, no limits,
  no state; the floor for "a fresh process per run" (``--plain-runs``, default 20).

Output: one JSON line per configuration (``p50_ms``, ``p95_ms``, ``min_ms``, ``n``) and a summary line
with the goals (warm p50 <= 30 ms, cold start p50 <= 500 ms) and ``goal_met``.

Usage::

    python benchmarks/sandbox.py [--sessions 10] [--runs 100] [--plain-runs 20] [--isolation auto]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from ponder.tools.sandbox.local import LocalSandbox

SNIPPET = "total = sum(i * i for i in range(1000))\ntotal"
GOAL_WARM_MS = 30.0
GOAL_COLD_MS = 500.0


def stats(name: str, samples: list[float], **extra: object) -> dict:
    ms = sorted(s * 1000 for s in samples)
    p95 = statistics.quantiles(ms, n=20, method="inclusive")[18] if len(ms) > 1 else ms[0]
    return {"config": name, "n": len(ms), "p50_ms": round(statistics.median(ms), 3), "p95_ms": round(p95, 3),
            "min_ms": round(ms[0], 3), **extra}


def timed(call: Callable[[], object], times: int) -> list[float]:
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def cold_start(isolation: str) -> None:
    with LocalSandbox(isolation=isolation) as sandbox:
        result = sandbox.run(SNIPPET)
    assert result.value == "332833500", result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--plain-runs", type=int, default=20)
    parser.add_argument("--isolation", default="auto", choices=["auto", "bwrap", "unshare", "none"])
    args = parser.parse_args(argv)
    env = {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine()}

    first_start = time.perf_counter()
    cold_start(args.isolation)  # untimed warm-up (imports, isolation probe); reported separately
    first_ms = round((time.perf_counter() - first_start) * 1000, 3)
    cold = timed(lambda: cold_start(args.isolation), args.sessions)

    with LocalSandbox(isolation=args.isolation) as sandbox:
        isolation = sandbox.isolation_in_use
        sandbox.run(SNIPPET)
        warm = timed(lambda: sandbox.run(SNIPPET), args.runs)

    plain_argv = [sys.executable, "-c", SNIPPET.replace("\ntotal", "\nprint(total)")]
    subprocess.run(plain_argv, check=True, capture_output=True)
    plain = timed(lambda: subprocess.run(plain_argv, check=True, capture_output=True), args.plain_runs)

    rows = [stats("local_cold_start", cold, isolation=isolation, first_in_process_ms=first_ms),
            stats("local_warm_exec", warm, isolation=isolation),
            stats("plain_subprocess", plain, isolation="none")]
    for row in rows:
        print(json.dumps({**row, **env}), flush=True)
    warm_p50, cold_p50 = rows[1]["p50_ms"], rows[0]["p50_ms"]
    print(json.dumps({
        "summary": "sandbox", "isolation": isolation,
        "warm_p50_ms": warm_p50, "goal_warm_p50_ms": GOAL_WARM_MS,
        "cold_p50_ms": cold_p50, "goal_cold_ms": GOAL_COLD_MS,
        "warm_vs_plain_subprocess": round(rows[2]["p50_ms"] / warm_p50, 1),
        "goal_met": warm_p50 <= GOAL_WARM_MS and cold_p50 <= GOAL_COLD_MS, **env,
    }), flush=True)


if __name__ == "__main__":
    main()
