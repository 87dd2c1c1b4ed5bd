"""What runs on the Ray cluster: a shard of episodes played by the single-machine runner, and the sink it streams to.

:func:`play_shard` (a Ray task) asks the sink which of its episodes are already recorded (a retried shard
replays nothing finished), then runs :func:`ponder.envs.runner.run_eval` whole on the rest in a node-local
run directory, with a :class:`ShardStream` as its progress display: each finished record goes to the
:class:`ShardSink` actor (on the driver's node) as it ends, with the trajectory lines it names.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.envs.base import Episode, EpisodeResult
from ponder.envs.progress import Progress
from ponder.envs.runner import RESULTS_FILE
from ponder.envs.sharding import FirstWins, Shard

if TYPE_CHECKING:
    from ponder.core.settings import Settings
    from ponder.envs.base import Suite
    from ponder.envs.context import EvalOptions

TRAJECTORY_FILE = "trajectories.jsonl"


class ShardSink:
    """The driver-side merge (a Ray actor pinned to the driver's node): first record per episode id wins.

    Shards :meth:`put` records as they finish and ask :meth:`done` when they (re)start; the driver
    :meth:`drain` s what is new every few hundred milliseconds and appends it to the run's files.
    """

    def __init__(self) -> None:
        self.merge = FirstWins()

    def put(self, record: dict[str, Any], trajectories: list[str], side: dict[str, list[str]]) -> bool:
        """Record one finished episode (dropped when its id already came); returns whether it was kept."""
        return self.merge.put(record, trajectories, side)

    def put_side(self, side: dict[str, list[str]]) -> None:
        """Lines of other run files, by name."""
        self.merge.put_side(side)

    def done(self, ids: list[str]) -> list[str]:
        """Those of ``ids`` already recorded."""
        return self.merge.done(ids)

    def drain(self) -> tuple[list[tuple[dict[str, Any], list[str]]], dict[str, list[str]]]:
        """New records (with their trajectory lines) and side lines by file name since the last call."""
        return self.merge.drain()


class _Tail:
    """The complete lines appended to one file since the last read (a line still being written waits)."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0

    def read(self) -> list[str]:
        if not self.path.is_file():
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        return [line for line in data[:end].decode("utf-8").splitlines() if line.strip()]


class ShardStream(Progress):
    """The progress display of a shard's ``run_eval``: sends each finished record (and its trajectories) to the sink.

    Other JSONL files the suite or strategy appends to in the run directory (``search.jsonl``,
    ``self_consistency.jsonl``, ...) are streamed with the records, by name.

    Args:
        sink: The :class:`ShardSink` actor handle.
        out_dir: The shard's node-local run directory.
        index: Each episode id's index in the whole run.
        tags: Added to every record's metadata (``node``, ``shard``).
    """

    def __init__(self, sink: Any, out_dir: Path, index: dict[str, int], tags: dict[str, Any]) -> None:
        super().__init__(len(index), [], quiet=True)
        self._sink, self._dir, self._index, self._tags = sink, out_dir, index, tags
        self._tails: dict[str, _Tail] = {}
        self._trajectories: dict[str, str] = {}  # trajectory id -> its line, not yet sent

    def _read(self) -> dict[str, list[str]]:
        """New lines of the run directory's JSONL files (trajectories kept aside by id), by file name."""
        side: dict[str, list[str]] = {}
        for path in sorted(self._dir.glob("*.jsonl")):
            if path.name not in self._tails and path.name != RESULTS_FILE:
                self._tails[path.name] = _Tail(path)
        for name, tail in self._tails.items():
            lines = tail.read()
            if name != TRAJECTORY_FILE:
                side[name] = lines
                continue
            for raw in lines:
                try:
                    key = str(json.loads(raw).get("id", ""))
                except (json.JSONDecodeError, AttributeError):
                    key = ""
                self._trajectories[key or f"loose-{uuid.uuid4().hex}"] = raw
        return side

    def update(self, result: EpisodeResult) -> None:
        """Send ``result`` with its global index, node and shard, the trajectory lines it names, and side lines."""
        import ray

        super().update(result)
        side = self._read()
        lines = [self._trajectories.pop(t) for t in result.trajectory_ids if t in self._trajectories]
        result.metadata.update(index=self._index[result.episode_id], **self._tags, sent=time.time())
        ray.get(self._sink.put.remote(result.model_dump(mode="json"), lines, side))

    def finish(self) -> None:
        """Send what is left: side lines and the trajectory lines no record named."""
        import ray

        side = self._read()
        side[TRAJECTORY_FILE] = list(self._trajectories.values())
        self._trajectories.clear()
        if any(side.values()):
            ray.get(self._sink.put_side.remote(side))


def shard_dir(run_id: str, shard_id: int | str) -> Path:
    """A shard's node-local run directory (``*`` as ``shard_id``: the pattern of all of a run's)."""
    return Path(tempfile.gettempdir()) / f"ponder-ray-{run_id}-{shard_id}"


def remove_shard_dirs(run_id: str) -> None:
    """Remove this node's shard directories of a run (those of workers killed mid-shard included)."""
    pattern = shard_dir(run_id, "*")
    for path in pattern.parent.glob(pattern.name):
        shutil.rmtree(path, ignore_errors=True)


def cpu_bound(settings: Settings, cpus: float | None) -> Settings:
    """``settings`` with llama.cpp's threads set to the CPUs Ray gave the shard, unless the user pinned a number.

    llama.cpp's default is every physical core of the machine; two shards on one node would then each spin that
    many threads on the same cores (measured here: an embedded-model eval 3.5x slower on 2 cores).
    """
    if settings.llamacpp_threads is not None or not cpus:
        return settings
    return settings.model_copy(update={"llamacpp_threads": max(1, int(cpus))})


def play_shard(suite: Suite, options: EvalOptions, settings: Settings, shard: Shard[Episode], sink: Any,
               run_id: str, submitted: float) -> dict[str, Any]:
    """Play the shard's episodes not yet recorded with :func:`~ponder.envs.runner.run_eval` (a Ray task).

    Returns:
        Timings for the scaling figures: node, episodes played, queued (submit to start), setup (start to
        the runner's start) and wall seconds.
    """
    import ray

    from ponder.core.tracing import configure_tracing, flush_tracing
    from ponder.envs.ray_cluster import short_node_id
    from ponder.envs.runner import run_eval

    started = time.time()
    node = short_node_id(ray.get_runtime_context().get_node_id())
    recorded = set(ray.get(sink.done.remote([ep.id for _, ep in shard.items])))
    todo = [(i, ep) for i, ep in shard.items if ep.id not in recorded]
    stats = {"shard": shard.id, "node": node, "episodes": len(todo), "queued_s": round(started - submitted, 4)}
    if not todo:
        return {**stats, "setup_s": 0.0, "wall_s": round(time.time() - started, 4)}
    configure_tracing(settings)
    settings = cpu_bound(settings, ray.get_runtime_context().get_assigned_resources().get("CPU"))
    out_dir = shard_dir(run_id, shard.id)
    shutil.rmtree(out_dir, ignore_errors=True)  # a previous attempt of this shard died here
    stream = ShardStream(sink, out_dir, {ep.id: i for i, ep in todo}, {"node": node, "shard": shard.id})
    opts = options.model_copy(update={"out_dir": out_dir, "resume": False, "workers": min(options.workers, len(todo))})
    ready = time.time()
    try:
        run_eval(suite, opts, settings, episodes=[ep for _, ep in todo], progress=stream, report=False, quiet=True)
        stream.finish()
    finally:
        flush_tracing()
        shutil.rmtree(out_dir, ignore_errors=True)
    return {**stats, "setup_s": round(ready - started, 4), "wall_s": round(time.time() - started, 4)}
