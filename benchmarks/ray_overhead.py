"""Ray executor benchmark: what ``--executor ray`` costs over the local process pool, side by side in one run.

Every section plays a sleep suite (each episode sleeps ``--sleep`` seconds, no model, no game) so the time
that is not sleeping is the executor's own. The Ray runs use a local Ray instance started before the run
(``ray_start_s`` is reported once per CPU count and not part of the timed runs); each shard runs one worker.

Sections (JSON lines on stdout):

* ``ray_vs_pool`` -- ``--episodes`` (24) episodes at each worker count of ``--workers`` (1,2): the local runner
  (:func:`ponder.envs.runner.run_eval`, ``--workers W``) and the Ray executor (a local instance with W CPUs,
  default sharding). Each line: ``wall_s``, ``episodes_per_s``, ``overhead_ms_per_episode`` = (wall x W -
  episodes x sleep) / episodes (worker time not spent in episodes), and for Ray the run's shard timings
  from ``ray_shards.jsonl`` (``queued_s`` / ``setup_s`` medians, record latency p50 shard to driver).
* ``ray_run_fixed`` -- one zero-work episode on Ray: the fixed cost of a run (the sink actor's process, the
  first drain, the run's files), subtracted below.
* ``ray_per_shard`` -- ``--zero`` (40) zero-work episodes as one shard each (``--shards N``, 1 CPU): (wall - fixed)
  / (N - 1) is Ray's scheduling overhead per shard (task submit, a worker, the shard's ``run_eval`` set-up).
* ``sink_capacity`` -- ``--sink`` (3000) records put into one sink actor as fast as Ray delivers them, then
  drained and appended with fsync as the driver does: the driver side's ceiling in records/s.
* ``ray_per_record`` -- the same episodes as one shard: (wall - fixed) / (N - 1) is the overhead per streamed
  record (sink actor call, drain, fsynced append); ``pool_per_record`` is the local runner's for comparison.
  The fixed cost (~0.9 s here) varies by ~0.1 s from run to run: use ``--zero`` 200 or more for these two lines
  (a smoke run's values are noise, even negative).

Usage::

    python benchmarks/ray_overhead.py                                  # the defaults above
    python benchmarks/ray_overhead.py --episodes 6 --sleep 0.05 --zero 8   # a smoke run (~1 min)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from ponder.core.records import Usage  # noqa: E402
from ponder.core.settings import load_settings  # noqa: E402
from ponder.envs.base import Episode, EpisodeResult, EvalContext  # noqa: E402
from ponder.envs.context import EvalOptions  # noqa: E402


def emit(**fields: object) -> None:
    """Print one JSON line."""
    print(json.dumps(fields), flush=True)


@dataclass
class SleepSuite:
    """``n`` episodes that each sleep ``sleep`` seconds and win (pickled by value to the Ray workers)."""

    n: int
    sleep: float
    name: str = "sleep"
    policies: tuple[str, ...] = ("walkthrough",)
    needs_process: bool = False

    def check_options(self, options: EvalOptions) -> None:
        """Every option applies."""

    def episodes(self, settings: object, data: Path | None = None, limit: int | None = None) -> list[Episode]:
        eps = [Episode(id=f"s{i:05d}", suite=self.name, task=f"sleep {i}", gold="x") for i in range(self.n)]
        return eps[:limit] if limit else eps

    def run_episode(self, episode: Episode, ctx: EvalContext) -> EpisodeResult:
        time.sleep(self.sleep)
        return EpisodeResult(episode_id=episode.id, suite=self.name, task=episode.task, policy=ctx.policy,
                             policy_kind="harness", success=True, score=1.0, prediction="x", gold="x",
                             status="solved", env_steps=1, usage=Usage())


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def shard_stats(out: Path) -> dict[str, Any]:
    """Medians of the shards' timings and the run's record latency from ``ray_shards.jsonl``."""
    rows = [json.loads(line) for line in (out / "ray_shards.jsonl").read_text().splitlines()]
    shards = [r for r in rows if "shard" in r]
    run = next((r["run"] for r in rows if "run" in r), {})
    return {"shards": len(shards), "queued_s_p50": _median([r["queued_s"] for r in shards]),
            "setup_s_p50": _median([r["setup_s"] for r in shards]), "nodes": sorted({r["node"] for r in shards}),
            "record_latency_p50_s": run.get("latency_p50_s")}


def timed(executor: str, suite: SleepSuite, workers: int, tmp: Path, shards: int | None = None) -> tuple[float, Path]:
    """One run of ``suite``; its wall seconds and run directory."""
    from ponder.envs.ray_executor import run_eval_ray
    from ponder.envs.ray_options import RayOptions
    from ponder.envs.runner import run_eval

    out = Path(tempfile.mkdtemp(prefix=f"{executor}-", dir=tmp))
    settings = load_settings(out_dir=tmp)
    options = EvalOptions(suite=suite.name, policy="walkthrough", workers=workers if executor == "pool" else 1,
                          out_dir=out / "run")
    start = time.perf_counter()
    if executor == "pool":
        run = run_eval(suite, options, settings, quiet=True, report=False)
    else:
        run = run_eval_ray(suite, options, settings, RayOptions(shards=shards), quiet=True, report=False)
    wall = time.perf_counter() - start
    assert run.summary.n == suite.n and run.new == suite.n, "every episode played once"
    return wall, out / "run"


def start_ray(cpus: int, tmp: Path) -> Any:
    """A local Ray instance with ``cpus`` CPUs (timed and reported)."""
    import ray

    start = time.perf_counter()
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, object_store_memory=80_000_000,
             _temp_dir=tempfile.mkdtemp(prefix="rb", dir=tmp), logging_level=logging.ERROR, log_to_driver=False)
    emit(bench="ray_start", cpus=cpus, ray_start_s=round(time.perf_counter() - start, 2))
    return ray


def ray_vs_pool(n: int, sleep: float, workers: list[int], tmp: Path) -> None:
    """The same suite on the local pool and on Ray at each worker count."""
    suite = SleepSuite(n, sleep)
    for w in workers:
        ray = start_ray(w, tmp)
        try:
            timed("ray", SleepSuite(w, 0.0), 1, tmp)  # warm: the first task on a worker imports ponder
            timed("pool", SleepSuite(w, 0.0), w, tmp)  # warm: the runner's own first-use imports
            for executor in ("pool", "ray"):
                wall, out = timed(executor, suite, w, tmp)
                extra = shard_stats(out) if executor == "ray" else {}
                emit(bench="ray_vs_pool", executor=executor, workers=w, episodes=n, sleep_s=sleep,
                     wall_s=round(wall, 3), episodes_per_s=round(n / wall, 3),
                     overhead_ms_per_episode=round(1000 * (wall * w - n * sleep) / n, 2), **extra)
        finally:
            ray.shutdown()


def per_shard_and_record(n: int, tmp: Path) -> None:
    """Zero-work episodes: one per shard, then all in one shard, and on the local runner; each less a one-episode
    run (the fixed cost of a run: the sink actor's process, the first drain, the run's files)."""
    suite = SleepSuite(n, 0.0)
    ray = start_ray(1, tmp)
    try:
        timed("ray", SleepSuite(1, 0.0), 1, tmp)
        fixed, _ = timed("ray", SleepSuite(1, 0.0), 1, tmp)
        emit(bench="ray_run_fixed", episodes=1, wall_s=round(fixed, 3))
        wall, out = timed("ray", suite, 1, tmp, shards=n)
        emit(bench="ray_per_shard", episodes=n, wall_s=round(wall, 3),
             ms_per_shard=round(1000 * (wall - fixed) / (n - 1), 2), **shard_stats(out))
        wall, out = timed("ray", suite, 1, tmp, shards=1)
        emit(bench="ray_per_record", records=n, wall_s=round(wall, 3),
             ms_per_record=round(1000 * (wall - fixed) / (n - 1), 2), **shard_stats(out))
    finally:
        ray.shutdown()
    fixed, _ = timed("pool", SleepSuite(1, 0.0), 1, tmp)
    wall, _ = timed("pool", suite, 1, tmp)
    emit(bench="pool_per_record", records=n, wall_s=round(wall, 3),
         ms_per_record=round(1000 * (wall - fixed) / (n - 1), 2))


def sink_capacity(n: int, tmp: Path) -> None:
    """The driver side's ceiling: ``n`` realistic records put into one sink actor as fast as Ray delivers them
    (calls pipelined from one caller), then drained and appended with fsync as the driver does."""
    from ponder.core.io import append_jsonl
    from ponder.envs.ray_shard import ShardSink

    ray = start_ray(1, tmp)
    try:
        sink = ray.remote(ShardSink).options(num_cpus=0).remote()
        ray.get(sink.done.remote([]))  # the actor's process is up
        usage = Usage(prompt_tokens=900, completion_tokens=120)
        records = [EpisodeResult(episode_id=f"r{i:06d}", suite="sink", task="t " * 100, policy="agent",
                                 policy_kind="agent", success=True, score=1.0, status="solved", usage=usage,
                                 metadata={"index": i, "node": "abcdef12", "shard": i % 64}).model_dump(mode="json")
                   for i in range(n)]
        start = time.perf_counter()
        ray.get([sink.put.remote(r, ['{"id": "t"}'], {}) for r in records])
        put_s = time.perf_counter() - start
        start = time.perf_counter()
        items, _ = ray.get(sink.drain.remote())
        drain_s = time.perf_counter() - start
        start = time.perf_counter()
        for record, _ in items:
            append_jsonl(tmp / "sink-results.jsonl", EpisodeResult.model_validate(record))
        append_s = time.perf_counter() - start
        emit(bench="sink_capacity", records=n, record_bytes=len(json.dumps(records[0])),
             puts_per_s=round(n / put_s), drain_s=round(drain_s, 3), appends_per_s=round(n / append_s),
             note="puts pipelined from one caller into one actor; appends: validate + fsynced append, as the driver")
    finally:
        ray.shutdown()


def textworld_ray_vs_pool(games: int, workers: list[int], tmp: Path) -> None:
    """A real process suite: TextWorld walkthroughs (no model) on the local process pool and on Ray, each worker
    count side by side; on Ray each shard runs the runner's process pool with one worker process: the default
    sharding (one shard per slot for a process suite) and four shards per slot (what a thread suite gets)."""
    from ponder.envs.ray_executor import run_eval_ray
    from ponder.envs.ray_options import RayOptions
    from ponder.envs.registry import get_suite
    from ponder.envs.runner import run_eval

    suite, settings = get_suite("textworld"), load_settings(out_dir=tmp)
    start = time.perf_counter()
    episodes = suite.episodes(settings, None, games)
    emit(bench="textworld_prepare", games=len(episodes), prepare_s=round(time.perf_counter() - start, 2))
    for w in workers:
        ray = start_ray(w, tmp)
        try:
            timed("ray", SleepSuite(w, 0.0), 1, tmp)  # warm: Ray's first worker processes import ponder
            for executor, shards in (("pool", None), ("ray", None), ("ray", 4 * w)):
                out = Path(tempfile.mkdtemp(prefix=f"tw-{executor}-", dir=tmp)) / "run"
                options = EvalOptions(suite="textworld", policy="walkthrough", out_dir=out,
                                      workers=w if executor == "pool" else 1)
                t0 = time.perf_counter()
                if executor == "pool":
                    run = run_eval(suite, options, settings, episodes=episodes, quiet=True, report=False)
                else:
                    run = run_eval_ray(suite, options, settings, RayOptions(shards=shards), episodes=episodes,
                                       quiet=True, report=False)
                wall = time.perf_counter() - t0
                extra = shard_stats(out) if executor == "ray" else {}
                emit(bench="textworld_ray_vs_pool", executor=executor, workers=w, games=len(episodes),
                     shards_asked=shards, wall_s=round(wall, 2), episodes_per_s=round(len(episodes) / wall, 3),
                     success_rate=run.summary.success_rate.value, **extra)
        finally:
            ray.shutdown()


def main() -> None:
    """Parse flags and run the sections."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=24)
    parser.add_argument("--sleep", type=float, default=0.2, help="Seconds each episode sleeps.")
    parser.add_argument("--workers", default="1,2", help="Worker counts (comma-separated).")
    parser.add_argument("--zero", type=int, default=40, help="Zero-work episodes for the per-shard/record runs (>= 2).")
    parser.add_argument("--sink", type=int, default=3000, help="Records for the sink-capacity section.")
    parser.add_argument("--games", type=int, default=12, help="TextWorld games (process suite; 0: skip).")
    args = parser.parse_args()
    emit(bench="env", python=sys.version.split()[0], platform=platform.platform(), cpus=os.cpu_count(),
         load_avg=[round(x, 2) for x in os.getloadavg()])
    # short: Ray's Unix socket paths (under the instance's temp dir) are limited to 107 characters
    with tempfile.TemporaryDirectory(prefix="prb-", dir="/tmp") as tmp:
        ray_vs_pool(args.episodes, args.sleep, [int(w) for w in args.workers.split(",")], Path(tmp))
        per_shard_and_record(args.zero, Path(tmp))
        sink_capacity(args.sink, Path(tmp))
        if args.games:
            textworld_ray_vs_pool(args.games, [int(w) for w in args.workers.split(",")], Path(tmp))


if __name__ == "__main__":
    main()
