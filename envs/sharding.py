"""How a distributed evaluation splits its episodes into shards and merges what comes back (no Ray here).

* :func:`shard_count` / :func:`split`: the episodes still to play become ``N`` shards, several per worker
  slot of the cluster so a slow shard (a straggler) holds up little; episodes are dealt round-robin, so
  a suite ordered by difficulty gives every shard a similar mix.
* :class:`FirstWins`: the merge rule of ``docs/scaling.md``: one record per episode id, the first that
  arrives; a retried shard's duplicate (and the trajectories sent with it) is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: Shards per worker slot when ``--shards`` is not given.
SHARDS_PER_SLOT = 4
#: Shards per slot by default for suites that run in worker processes (games, browsers): each shard starts its own
#: process pool (a spawned interpreter, the game engine, the model), measured at about 4 s per shard for TextWorld
#: here (benchmarks/ray_overhead.py), so one shard per slot unless ``--shards`` asks for more.
PROCESS_SHARDS_PER_SLOT = 1


@dataclass(frozen=True)
class Shard(Generic[T]):
    """A unit of work: ``items`` are ``(global index, episode)`` pairs; ``single`` marks a one-episode retry shard."""

    id: int
    items: tuple[tuple[int, T], ...]
    single: bool = False


def shard_count(todo: int, slots: int, requested: int | None = None, per_slot: int = SHARDS_PER_SLOT) -> int:
    """How many shards ``todo`` episodes become: ``requested`` or ``per_slot`` per slot, never more than ``todo``.

    Args:
        todo: Episodes still to play.
        slots: Shards the cluster can run at once (at least one is assumed).
        requested: ``--shards N`` when given.
        per_slot: Shards per slot by default.
    """
    if todo <= 0:
        return 0
    wanted = requested if requested is not None else per_slot * max(1, slots)
    return max(1, min(todo, wanted))


def split(items: Sequence[tuple[int, T]], n: int, first_id: int = 0) -> list[Shard[T]]:
    """Deal ``items`` round-robin into ``n`` non-empty shards numbered from ``first_id`` (each shard keeps order)."""
    n = min(n, len(items))
    return [Shard(id=first_id + k, items=tuple(items[k::n])) for k in range(n)]


def singles(items: Iterable[tuple[int, T]], first_id: int) -> list[Shard[T]]:
    """One shard per item (the episodes of a shard whose worker kept dying, each retried alone)."""
    return [Shard(id=first_id + k, items=(item,), single=True) for k, item in enumerate(items)]


@dataclass
class FirstWins:
    """Merge of streamed records by episode id, first record wins; new accepted items wait to be drained.

    An item is ``(record, trajectory lines)``, the record a JSON-ready dict with ``episode_id``. Lines of other
    run files (``search.jsonl``, ``self_consistency.jsonl``, trajectories no record names) travel as *side*
    lines by file name.
    """

    seen: set[str] = field(default_factory=set)
    _new: list[tuple[dict[str, Any], list[str]]] = field(default_factory=list)
    _side: dict[str, list[str]] = field(default_factory=dict)
    dropped: int = 0

    def put(self, record: dict[str, Any], trajectories: list[str], side: dict[str, list[str]] | None = None) -> bool:
        """Keep ``record`` with its lines unless its episode id already came (then drop them all); whether kept."""
        key = record["episode_id"]
        if key in self.seen:
            self.dropped += 1
            return False
        self.seen.add(key)
        self._new.append((record, trajectories))
        self.put_side(side or {})
        return True

    def put_side(self, side: dict[str, list[str]]) -> None:
        """Lines for other run files by name (or trajectories no kept record names)."""
        for name, lines in side.items():
            if lines:
                self._side.setdefault(name, []).extend(lines)

    def done(self, ids: Iterable[str]) -> list[str]:
        """Those of ``ids`` already recorded."""
        return [i for i in ids if i in self.seen]

    def drain(self) -> tuple[list[tuple[dict[str, Any], list[str]]], dict[str, list[str]]]:
        """The items and side lines (by file name) accepted since the last drain."""
        new, side = self._new, self._side
        self._new, self._side = [], {}
        return new, side
