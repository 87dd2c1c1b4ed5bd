"""What ``ponder export sft`` reads: trajectories and what their records say about them.

A RUN is a file or a folder. A folder (searched recursively) is every run folder under it; a run folder holds
some of ``trajectories.jsonl`` (``ponder run``, and every eval), ``results.jsonl`` (an eval: the episode id,
its success and gold, the ``trajectory_ids``), ``self_consistency.jsonl`` (votes: which samples carry the voted
answer) and ``search.jsonl`` (search trees: the chosen path; each explored path's trajectory carries its
verifier ``score``). A file named like one of them is read with its folder's trajectories; a file of another
name is sniffed by its first record. Lines that are not records (torn writes, foreign JSON) are counted, never
fatal. Each trajectory becomes one :class:`Episode`, once: a self-consistency sample beats an eval episode,
which beats a search path, which beats a plain run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ponder.core.answers import is_correct
from ponder.core.errors import DataError
from ponder.core.records import Trajectory
from ponder.envs.base import EpisodeResult
from ponder.graphs.search.tree import SEARCH_FILE, SearchTree
from ponder.graphs.self_consistency.records import SC_FILE, SelfConsistencyResult
from ponder.training.rationalize import split_hint

T = TypeVar("T", bound=BaseModel)
TRAJECTORIES, RESULTS = "trajectories.jsonl", "results.jsonl"
#: The files of a run folder, by kind.
RUN_FILES = {TRAJECTORIES: "trajectories", RESULTS: "results", SC_FILE: "self_consistency", SEARCH_FILE: "search"}
#: Which source wins when one trajectory appears in several records (lower first).
_RANK = {"self_consistency": 0, "eval": 1, "search": 2, "run": 3}


@dataclass
class Episode:
    """One trajectory to export, with what its records say about it.

    Attributes:
        traj: The trajectory.
        source: ``run``, ``eval``, ``self_consistency`` or ``search``.
        origin: The file it came from.
        task_id: The episode / task id, when a record gives one.
        gold: The reference answer, when known (eval results, an ``--answers`` file).
        correct: Whether the answer is right (eval scoring, a search's label, an answers file); ``None``: unknown.
        score: The verifier's score, when the record has one.
        voted: Self-consistency: whether this sample's answer is the voted answer; ``None``: not a vote.
    """

    traj: Trajectory
    source: str
    origin: Path
    task_id: str | None = None
    gold: str | None = None
    correct: bool | None = None
    score: float | None = None
    voted: bool | None = None

    @property
    def task(self) -> str:
        """The question without a STaR hint (a rationalization run records the hinted question as its task)."""
        return split_hint(self.traj.task)[0]

    @property
    def hint(self) -> bool:
        """Whether the rationale was written with the answer as a hint (STaR rationalization)."""
        return bool(self.traj.metadata.get("hint")) or split_hint(self.traj.task)[1]


@dataclass
class Loaded:
    """Everything read from the RUNS: the episodes, the files and how many lines were not records."""

    episodes: list[Episode] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    torn: int = 0
    missing_trajectories: int = 0


def read_records(path: Path, model: type[T], loaded: Loaded) -> Iterator[T]:
    """Validated records of a JSONL file; a line that is not one is counted in ``loaded.torn`` and skipped."""
    loaded.files.append(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            yield model.model_validate(json.loads(line))
        except (ValueError, ValidationError):
            loaded.torn += 1


def load_runs(paths: list[Path]) -> Loaded:
    """Read every RUN (file or folder) into episodes, one per trajectory.

    Raises:
        DataError: for a path that does not exist, or a folder with no run files.
    """
    loaded = Loaded()
    chosen: dict[str, Episode] = {}
    for path in paths:
        for folder, names in _run_folders(path):
            for ep in _read_folder(folder, names, loaded):
                kept = chosen.get(ep.traj.id)
                if kept is None or _RANK[ep.source] < _RANK[kept.source]:
                    chosen[ep.traj.id] = ep
    loaded.episodes = list(chosen.values())
    return loaded


def _run_folders(path: Path) -> list[tuple[Path, set[str]]]:
    """``(folder, run files to read there)`` for one RUN argument."""
    if not path.exists():
        raise DataError(f"no such file or folder: {path}")
    if path.is_dir():
        found: dict[Path, set[str]] = {}
        for name in RUN_FILES:
            for hit in sorted(path.rglob(name)):
                found.setdefault(hit.parent, set()).add(name)
        if not found:
            raise DataError(f"{path} holds no run records ({', '.join(RUN_FILES)})")
        return sorted(found.items())
    if path.name not in RUN_FILES:  # another name: that file alone, read as the kind its first record is
        return [(path, {f"{RUN_FILES[_sniff(path)]}:"})]
    if path.name == SC_FILE:
        return [(path.parent, {SC_FILE})]
    beside = {n for n in (TRAJECTORIES, RESULTS, SEARCH_FILE) if (path.parent / n).is_file()}
    if path.name != TRAJECTORIES:  # results or search trees: with the trajectories they point into
        beside &= {TRAJECTORIES}
    return [(path.parent, {path.name} | beside)]


def _sniff(path: Path) -> str:
    """The run-file kind of a file by its first JSON object (default: trajectories)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    return _kind_of(obj)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    return TRAJECTORIES


def _kind_of(obj: dict[str, Any]) -> str:
    if obj.get("kind") == "search_tree":
        return SEARCH_FILE
    if "votes" in obj and "samples" in obj:
        return SC_FILE
    if "trajectory_ids" in obj and "episode_id" in obj:
        return RESULTS
    return TRAJECTORIES


def _read_folder(folder: Path, names: set[str], loaded: Loaded) -> Iterator[Episode]:
    """The episodes of one run folder (or, for ``kind:`` markers, one oddly named file)."""
    single = next((n for n in names if n.endswith(":")), None)
    if single is not None:  # one file of another name, read as its kind
        kind, path = single[:-1], folder
        if kind == "self_consistency":
            yield from _sc_episodes(path, loaded)
        elif kind == "trajectories":
            yield from (_plain(t, path) for t in read_records(path, Trajectory, loaded))
        else:
            raise DataError(f"{path}: {kind} records need the trajectories.jsonl of their run folder; pass the "
                            "folder or a file named results.jsonl / search.jsonl inside it")
        return
    trajs: dict[str, Trajectory] = {}
    if TRAJECTORIES in names:
        trajs = {t.id: t for t in read_records(folder / TRAJECTORIES, Trajectory, loaded)}
    if SC_FILE in names:
        yield from _sc_episodes(folder / SC_FILE, loaded)
    used: set[str] = set()
    if RESULTS in names:
        for ep in _eval_episodes(folder / RESULTS, trajs, loaded):
            used.add(ep.traj.id)
            yield ep
    trees = {t.id: t for t in read_records(folder / SEARCH_FILE, SearchTree, loaded)} if SEARCH_FILE in names else {}
    for traj in trajs.values():
        if traj.id not in used:
            yield _search_episode(traj, trees, folder / TRAJECTORIES)


def _plain(traj: Trajectory, origin: Path) -> Episode:
    task_id = traj.metadata.get("episode_id") or traj.metadata.get("task_id")
    return Episode(traj, "run", origin, task_id=str(task_id) if task_id else None, score=_score(traj))


def _score(traj: Trajectory) -> float | None:
    value = traj.metadata.get("score")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _search_episode(traj: Trajectory, trees: dict[str, SearchTree], origin: Path) -> Episode:
    ep = _plain(traj, origin)
    tree = trees.get(str(traj.metadata.get("search_tree_id")))
    if tree is not None:
        ep.source = "search"
        chosen = bool(tree.chosen) and traj.metadata.get("search_node") == tree.chosen[-1]
        ep.correct = tree.success if chosen else None
    return ep


def _eval_episodes(path: Path, trajs: dict[str, Trajectory], loaded: Loaded) -> Iterator[Episode]:
    for result in read_records(path, EpisodeResult, loaded):
        voting = bool(result.metadata.get("self_consistency_id"))
        for tid in result.trajectory_ids:
            traj = trajs.get(tid)
            if traj is None:
                loaded.missing_trajectories += 1
                continue
            if len(result.trajectory_ids) == 1:
                correct = result.success and traj.status == "solved"
            else:  # a vote, trials or a search: judge each trajectory's own answer
                correct = traj.status == "solved" and is_correct(traj.final_answer, result.gold)
            yield Episode(traj, "eval", path.parent / TRAJECTORIES, task_id=result.episode_id, gold=result.gold,
                          correct=correct, score=_score(traj),
                          voted=is_correct(traj.final_answer, result.prediction) if voting else None)


def _sc_episodes(path: Path, loaded: Loaded) -> Iterator[Episode]:
    """The voting samples of each self-consistency record (earlier trials and discarded samples are left out)."""
    for record in read_records(path, SelfConsistencyResult, loaded):
        task_id = record.metadata.get("episode_id") or record.metadata.get("task_id")
        for sample in record.voters():
            voted = sample.key is not None and sample.key == record.winner_key
            yield Episode(sample.trajectory, "self_consistency", path, task_id=str(task_id) if task_id else None,
                          score=_score(sample.trajectory), voted=voted)
