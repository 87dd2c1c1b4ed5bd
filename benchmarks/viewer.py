"""``ponder view`` on a large eval folder: indexing, paging and one record, beside loading the files whole.

Writes an eval folder of ``--episodes`` (20,000) results and trajectories (each trajectory ``--steps`` steps with
observations of ``--obs-chars`` characters) into a temporary folder, then measures (JSON lines on stdout):

* ``viewer_first_load`` -- the catalog's first refresh (index every line, build the rows), its peak Python heap
  (tracemalloc) and the files' size.
* ``baseline_load_whole`` -- the same files read whole and validated into ponder's models (what a viewer without
  a line index would do on every page), same measures.
* ``viewer_refresh_idle`` / ``viewer_refresh_append`` -- a refresh with nothing new, and after appending 100
  episodes (only the new bytes are read).
* ``viewer_pages`` -- median milliseconds of the run page (page 1; filtered by text; sorted by tokens,
  descending; the last page), an episode page (its trajectory read by one seek) and a trajectory page, through
  Starlette's test client (server-side rendering included, no network).

Usage::

    python benchmarks/viewer.py
    python benchmarks/viewer.py --episodes 5000 --steps 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ponder.core.records import Step, Trajectory, Usage
from ponder.envs.base import EpisodeResult


def _records(i: int, steps: int, obs_chars: int) -> tuple[str, str]:
    body = [Step(index=k, kind="action", thought=f"step {k} of episode {i}", action="calculator",
                 action_input=f"{i} * {k}", observation=("x" * obs_chars), prompt_tokens=400 + k,
                 completion_tokens=30) for k in range(steps)]
    traj = Trajectory(task=f"Question {i}: what is {i} * 7?", agent="react", model="embedded", steps=body,
                      final_answer=str(i * 7), status="solved" if i % 3 else "max_steps", usage=Usage.from_steps(body))
    result = EpisodeResult(episode_id=f"gsm8k-{i}", suite="gsm8k", task=traj.task, success=i % 3 != 0,
                           status=traj.status, failure="" if i % 3 else "max_steps", prediction=traj.final_answer,
                           gold=str(i * 7), usage=traj.usage, trajectory_ids=[traj.id])
    return result.model_dump_json(), traj.model_dump_json()


def write_run(folder: Path, start: int, count: int, steps: int, obs_chars: int) -> None:
    """Append ``count`` episodes (results and trajectories) to the eval folder ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "results.jsonl").open("a") as res, (folder / "trajectories.jsonl").open("a") as trajs:
        for i in range(start, start + count):
            result, traj = _records(i, steps, obs_chars)
            res.write(result + "\n")
            trajs.write(traj + "\n")
    if not (folder / "run.json").exists():
        (folder / "run.json").write_text(json.dumps({"suite": "gsm8k", "model": "embedded", "strategy": "single"}))


def measured(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``fn()``'s value, its wall seconds and its peak traced Python heap in MiB.

    ``fn`` runs twice: timed alone, then under tracemalloc (which slows it several-fold) for the heap.
    """
    start = time.perf_counter()
    value = fn()
    wall = time.perf_counter() - start
    del value
    tracemalloc.start()
    value = fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return value, wall, peak


def load_whole(folder: Path) -> int:
    """The baseline: both files read whole and validated."""
    results = [EpisodeResult.model_validate_json(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    trajs = {t.id: t for t in (Trajectory.model_validate_json(line)
                               for line in (folder / "trajectories.jsonl").read_text().splitlines())}
    return len(results) + len(trajs)


def page_times(client: Any, urls: dict[str, str], repeats: int) -> dict[str, float]:
    """Median milliseconds per URL (each fetched ``repeats`` times; every answer must be 200)."""
    out = {}
    for name, url in urls.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            response = client.get(url)
            times.append(1000 * (time.perf_counter() - start))
            if response.status_code != 200:
                raise SystemExit(f"{url}: HTTP {response.status_code}")
        out[name] = round(statistics.median(times), 2)
    return out


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark; JSON lines on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20000)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--obs-chars", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    from starlette.testclient import TestClient

    from ponder.core.viewlinks import run_key
    from ponder.viewer.app import create_app
    from ponder.viewer.catalog import Catalog

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "eval"
        write_run(folder, 0, args.episodes, args.steps, args.obs_chars)
        size = sum(p.stat().st_size for p in folder.glob("*.jsonl")) / 2**20
        catalog, wall, peak = measured(lambda: (c := Catalog([Path(tmp)]), c.refresh(), c)[-1])
        entry = catalog.runs()[0]
        print(json.dumps({"section": "viewer_first_load", "episodes": args.episodes, "files_mib": round(size, 1),
                          "wall_s": round(wall, 3), "peak_heap_mib": round(peak, 1), "rows": len(entry.rows)}))
        count, wall, peak = measured(lambda: load_whole(folder))
        print(json.dumps({"section": "baseline_load_whole", "records": count, "files_mib": round(size, 1),
                          "wall_s": round(wall, 3), "peak_heap_mib": round(peak, 1)}))
        start = time.perf_counter()
        entry.refresh()
        idle = time.perf_counter() - start
        write_run(folder, args.episodes, 100, args.steps, args.obs_chars)
        start = time.perf_counter()
        entry.refresh()
        append = time.perf_counter() - start
        print(json.dumps({"section": "viewer_refresh", "idle_ms": round(1000 * idle, 2),
                          "append_100_ms": round(1000 * append, 2), "rows": len(entry.rows)}))
        client = TestClient(create_app([Path(tmp)]), base_url="http://127.0.0.1")
        key = run_key(folder)
        tid = entry.rows[len(entry.rows) // 2].trajectory_ids[0]
        urls = {"run_page_1": f"/run/{key}", "run_text_filter": f"/run/{key}?q=Question+777",
                "run_sorted_tokens_desc": f"/run/{key}?sort=tokens&desc=1",
                "run_last_page": f"/run/{key}?page=100000", "episode": f"/run/{key}/episode/{len(entry.rows) // 2}",
                "trajectory": f"/run/{key}/trajectory/{tid}"}
        print(json.dumps({"section": "viewer_pages", "median_ms": page_times(client, urls, args.repeats)}))


if __name__ == "__main__":
    main()
