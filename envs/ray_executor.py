"""``run_eval_ray``: the evaluation runner's episodes as shards of Ray tasks, streamed into one resumable run.

The driver plans the episodes, skips those already in ``results.jsonl`` (resume, exactly as
:func:`~ponder.envs.runner.run_eval`), deals the rest into shards (:mod:`ponder.envs.sharding`) and submits
each as a Ray task (:func:`~ponder.envs.ray_shard.play_shard`) that runs ``run_eval`` whole with its own
``--workers``. Finished records stream to a sink actor on the driver's node; the driver drains it a few
times a second and appends each new record (first per id wins) with fsync, its trajectories beside it.

Faults: a shard whose worker process or node dies is retried by Ray (``max_retries``) and replays only the
episodes the sink has not recorded; when its retries are spent, its unfinished episodes are retried one
per shard, and one that still kills its worker becomes an ``env_error`` record. A ``ConfigError`` in a
shard stops the run with its message; Ctrl-C cancels every task and leaves a resumable run.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ponder.core.errors import ConfigError, PonderError
from ponder.core.io import append_jsonl
from ponder.envs.base import EpisodeResult
from ponder.envs.context import failed_result
from ponder.envs.ray_shard import TRAJECTORY_FILE, ShardSink, play_shard, remove_shard_dirs
from ponder.envs.runner import (
    RESULTS_FILE,
    EvalRun,
    check_options,
    check_out_dir,
    check_unique,
    finish_run,
    load_done,
    open_run,
)
from ponder.envs.sharding import PROCESS_SHARDS_PER_SLOT, SHARDS_PER_SLOT, Shard, shard_count, singles, split

if TYPE_CHECKING:
    from ponder.core.settings import Settings
    from ponder.envs.base import Episode, Suite
    from ponder.envs.context import EvalOptions
    from ponder.envs.progress import Progress
    from ponder.envs.ray_cluster import ShardResources
    from ponder.envs.ray_options import RayOptions

log = logging.getLogger(__name__)
#: Seconds between two drains of the sink.
POLL_S = 0.25
#: Per-shard timings of a run (queued, setup, wall, node), one JSON line per finished shard.
SHARDS_FILE = "ray_shards.jsonl"


def check_ray_options(options: EvalOptions, settings: Settings) -> None:
    """Reject what a sharded run cannot honour.

    Raises:
        ConfigError: ``--budget-total`` (one budget spread over the whole suite), or memory without a shared
            store (``memory_url``): each node's lessons would then depend on how episodes were sharded.
    """
    if options.budget_total is not None:
        raise ConfigError("--budget-total (one budget for the whole suite) is not offered with --executor ray")
    if options.memory not in (None, "none") and settings.memory_url is None:
        raise ConfigError(f"--memory {options.memory} with --executor ray needs a shared memory store (memory_url = "
                          "http://HOST:PORT, a Chroma server): with node-local stores the lessons would depend "
                          "on the sharding")


def run_eval_ray(suite: Suite, options: EvalOptions, settings: Settings, ray: RayOptions, *,
                 progress: Progress | None = None, episodes: list[Episode] | None = None, report: bool = True,
                 quiet: bool = False) -> EvalRun:
    """Like :func:`ponder.envs.runner.run_eval`, with each shard of episodes a Ray task.

    Args:
        suite: Any suite (its module must be importable on every node).
        options: What to run; ``options.workers`` is each shard's worker count (and CPUs).
        settings: Effective settings.
        ray: The cluster and the sharding.
        progress: A display (default: :class:`~ponder.envs.progress.Progress` on stderr).
        episodes: Play these instead of ``suite.episodes(...)``.
        report: Write ``report.md`` and ``report.html`` at the end.
        quiet: No progress display (when ``progress`` is not given).

    Raises:
        MissingExtraError: without the ``ray`` extra.
        ConfigError: for bad options, an existing run without ``resume``, or a configuration error in a shard.
        PonderError: when a shard fails with an unexpected error.
        KeyboardInterrupt: after cancelling the tasks (the run stays resumable).
    """
    from ponder.envs.progress import Progress
    from ponder.envs.ray_cluster import connect, import_ray

    check_options(suite, options)
    check_ray_options(options, settings)
    import_ray()
    if episodes is None:
        episodes = suite.episodes(settings, options.data, options.limit)
    check_unique(episodes)
    out_dir = Path(options.out_dir)
    check_out_dir(out_dir, options)
    fresh: list[EpisodeResult] = []
    if options.resume and not {ep.id for ep in episodes} - set(load_done(out_dir / RESULTS_FILE)):
        done = open_run(out_dir, suite, options, settings, episodes, {"executor": "ray", "shards": 0})  # no Ray needed
    else:
        with connect(ray.address, verbose=logging.getLogger().getEffectiveLevel() <= logging.INFO) as ray_mod:
            done, shards, need = _plan(ray_mod, suite, options, settings, ray, episodes)
            display = progress or Progress(len(episodes), list(done.values()), label=suite.name, quiet=quiet)
            driver = _Driver(ray_mod, suite, options, settings, ray, need, display)
            with display:
                fresh = driver.run(shards, total=len(episodes), already=len(done))
            _append_lines(out_dir / SHARDS_FILE, [_json({"run": driver.stats()})])
    return finish_run(out_dir, episodes, done, fresh, report=report)


def _plan(ray_mod: ModuleType, suite: Suite, options: EvalOptions, settings: Settings, ray: RayOptions,
          episodes: list[Episode]) -> tuple[dict[str, EpisodeResult], list[Shard[Episode]], ShardResources]:
    """Open the run (manifest with the executor), and deal the episodes not yet done into shards."""
    from ponder.envs.ray_cluster import alive_nodes, shard_resources, slots

    need = shard_resources(suite, options, settings)
    n_slots = slots(ray_mod, need)
    out_dir = Path(options.out_dir)
    wanted = {ep.id for ep in episodes}
    left = len(wanted - set(load_done(out_dir / RESULTS_FILE))) if options.resume else len(wanted)
    per_slot = PROCESS_SHARDS_PER_SLOT if suite.needs_process else SHARDS_PER_SLOT
    n = shard_count(left, n_slots, ray.shards, per_slot)
    executor = {"executor": "ray", "address": ray.address or "local", "shards": n,
                "nodes": len(alive_nodes(ray_mod)), "slots": n_slots}
    done = open_run(out_dir, suite, options, settings, episodes, executor)
    todo = [(i, ep) for i, ep in enumerate(episodes) if ep.id not in done]
    return done, split(todo, n), need


class _Driver:
    """Submits shards, drains the sink into the run's files, handles lost shards, errors and Ctrl-C."""

    def __init__(self, ray_mod: ModuleType, suite: Suite, options: EvalOptions, settings: Settings, ray: RayOptions,
                 need: ShardResources, display: Progress) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.ray, self.suite, self.options, self.settings, self.opts = ray_mod, suite, options, settings, ray
        self.display = display
        self.out_dir = Path(options.out_dir)
        here = ray_mod.get_runtime_context().get_node_id()
        self.sink = ray_mod.remote(ShardSink).options(
            num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False)).remote()
        self.task = ray_mod.remote(play_shard).options(**need.options(), max_retries=ray.max_retries,
                                                       retry_exceptions=False)
        self.shared = [ray_mod.put(x) for x in (suite, options, settings)]  # stored once, not once per shard
        self.run_id = uuid.uuid4().hex[:12]
        self.pending: dict[Any, Shard[Episode]] = {}
        self.fresh: list[EpisodeResult] = []
        self.next_id = 0
        self.latency: list[float] = []

    def submit(self, shards: list[Shard[Episode]]) -> None:
        """Start each shard as a Ray task."""
        for shard in shards:
            ref = self.task.remote(*self.shared, shard, self.sink, self.run_id, time.time())
            self.pending[ref] = shard
            self.next_id = max(self.next_id, shard.id + 1)

    def run(self, shards: list[Shard[Episode]], total: int, already: int) -> list[EpisodeResult]:
        """Play every shard to the end; the fresh records in arrival order."""
        self.submit(shards)
        try:
            while self.pending:
                ready, _ = self.ray.wait(list(self.pending), num_returns=len(self.pending), timeout=POLL_S)
                self.drain()
                for ref in ready:
                    self.finished(ref, self.pending.pop(ref))
            self.drain()  # what the last lost shard's env_error records and the last shards put
        except BaseException as exc:
            self.cancel()
            if isinstance(exc, KeyboardInterrupt):
                print(f"\ninterrupted: {already + len(self.fresh)} of {total} episodes recorded; continue with "
                      f"--resume --out {self.out_dir}", file=sys.stderr, flush=True)
            raise
        finally:
            remove_shard_dirs(self.run_id)  # on this node: what killed or cancelled workers left behind
        return self.fresh

    def drain(self) -> None:
        """Append what the sink accepted since the last drain: records (fsynced), trajectories and side lines."""
        items, side = self.ray.get(self.sink.drain.remote())
        now = time.time()
        side.setdefault(TRAJECTORY_FILE, [])[:0] = [line for _, trajectories in items for line in trajectories]
        for name, more in side.items():  # first, as in a local run: a recorded episode has its trajectories
            if _safe_name(name):
                _append_lines(self.out_dir / name, more)
        for record, _ in items:
            sent = record.get("metadata", {}).pop("sent", None)
            if sent is not None:
                self.latency.append(now - sent)
            result = EpisodeResult.model_validate(record)
            append_jsonl(self.out_dir / RESULTS_FILE, result)
            self.fresh.append(result)
            self.display.update(result)

    def finished(self, ref: Any, shard: Shard[Episode]) -> None:
        """A shard's task ended: log its timings, or handle its failure."""
        from ray import exceptions as rx

        died = (rx.WorkerCrashedError, rx.NodeDiedError, rx.LocalRayletDiedError, rx.OutOfMemoryError,
                rx.ObjectLostError)
        try:
            stats = self.ray.get(ref)
        except died as exc:  # its worker process or node died more often than max_retries
            self.lost(shard, exc)
            return
        except rx.RayTaskError as exc:  # the shard's own code raised: configuration error or a bug
            cause = exc.cause if isinstance(exc.cause, BaseException) else exc
            if isinstance(cause, ConfigError):
                raise ConfigError(str(cause)) from None
            raise PonderError(f"shard {shard.id} failed: {type(cause).__name__}: {cause}") from None
        except rx.RayError as exc:  # Ray could not run it (runtime env, scheduling, ...)
            raise PonderError(f"shard {shard.id} could not run on Ray: {type(exc).__name__}: {exc}") from None
        _append_lines(self.out_dir / SHARDS_FILE, [_json(stats)])

    def lost(self, shard: Shard[Episode], exc: BaseException) -> None:
        """Retry a lost shard's unfinished episodes one per shard; a lost one-episode shard is an ``env_error``."""
        recorded = set(self.ray.get(self.sink.done.remote([ep.id for _, ep in shard.items])))
        left = [(i, ep) for i, ep in shard.items if ep.id not in recorded]
        tries = self.opts.max_retries + 1
        log.warning("shard %s lost after %s tries (%s); %s episodes left", shard.id, tries, type(exc).__name__,
                    len(left))
        if not shard.single:
            self.submit(singles(left, self.next_id))
            return
        for index, episode in left:
            result = failed_result(episode, self.options, "env_error",
                                   f"its Ray worker died {tries} times ({type(exc).__name__})")
            result.metadata.update(index=index, shard=shard.id, node="")
            self.ray.get(self.sink.put.remote(result.model_dump(mode="json"), [], {}))

    def cancel(self) -> None:
        """Cancel every running shard and append whatever the sink still holds."""
        for ref in self.pending:
            try:
                self.ray.cancel(ref, force=True)
            except Exception as exc:  # noqa: BLE001 - best effort: the task may be finishing
                log.info("cancel: %s", exc)
        self.pending.clear()
        try:
            self.drain()
        except Exception as exc:  # noqa: BLE001 - the cluster may be gone: results so far are on disk
            log.warning("could not drain the last records: %s", exc)

    def stats(self) -> dict[str, Any]:
        """Figures of the run: its id, shards submitted (lost ones' retries included), per-record latency.

        The latency is from a shard sending a record to the driver appending it.
        """
        lat = sorted(self.latency)
        out: dict[str, Any] = {"run_id": self.run_id, "shards": self.next_id, "records": len(lat)}
        if lat:
            out.update(latency_p50_s=round(lat[len(lat) // 2], 4), latency_max_s=round(lat[-1], 4))
        return out


def _json(data: dict[str, Any]) -> str:
    import json

    return json.dumps(data, sort_keys=True)


def _safe_name(name: str) -> bool:
    """A plain ``*.jsonl`` file name of the run directory (not the results or manifest, no path)."""
    return name.endswith(".jsonl") and name == Path(name).name and name not in (RESULTS_FILE, SHARDS_FILE)


def _append_lines(path: Path, lines: list[str]) -> None:
    """Append raw JSON lines with one flush + fsync."""
    if not lines:
        return
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("".join(line.rstrip("\n") + "\n" for line in lines))
        fh.flush()
        os.fsync(fh.fileno())
