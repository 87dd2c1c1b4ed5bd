"""The run folders under the viewer's roots, their files, rows and summaries, refreshed incrementally.

A run folder holds some of ``trajectories.jsonl``, ``results.jsonl`` + ``run.json`` (an eval),
``self_consistency.jsonl`` and ``search.jsonl`` (see ``training/export_sources.py`` for how they relate).
:class:`Catalog` finds every run folder under its roots (one walk; new folders appear on the next
:meth:`Catalog.refresh`); :class:`RunEntry` keeps each file's line index and builds a row per record line, parsing
only the lines added since its last refresh.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ponder.core.errors import DataError
from ponder.core.viewlinks import run_key
from ponder.envs.metrics import wilson_interval
from ponder.viewer.jsonl import JsonlFile, LineRef
from ponder.viewer.rows import EpisodeRow, result_row, trajectory_row

__all__ = ["Catalog", "EpisodeRow", "RunEntry", "RunSummary", "RUN_FILES", "MANIFEST", "LIVE_SECONDS"]

TRAJECTORIES, RESULTS, VOTES, SEARCHES = "trajectories.jsonl", "results.jsonl", "self_consistency.jsonl", "search.jsonl"
MANIFEST, REPORT = "run.json", "report.html"
#: The record files that make a folder a run folder (with :data:`MANIFEST`: an eval that has no result yet).
RUN_FILES = (TRAJECTORIES, RESULTS, VOTES, SEARCHES)
#: A run whose files changed this recently (seconds) is live.
LIVE_SECONDS = 60.0
#: An unfinished eval whose files have not changed for this long was killed: its page stops polling.
STALE_SECONDS = 1800.0
#: Folders never searched for runs.
_SKIP_DIRS = frozenset({"__pycache__", "node_modules", "site-packages"})


@dataclass
class RunSummary:
    """What the runs table and a run's page say about a run."""

    episodes: int
    problems: int
    successes: int
    success_rate: float | None
    ci_low: float | None
    ci_high: float | None
    mean_tokens: float | None
    strategy: str
    model: str
    agent: str
    suite: str
    started: str
    votes: int
    searches: int
    solved: int = 0  # rows whose status is ``solved`` (the agent answered; correct only where judged)


@dataclass
class _Facts:
    """What the id scans of a run's files learned besides ids (for the summary)."""

    traj_steps: dict[str, int] = field(default_factory=dict)
    models: Counter[str] = field(default_factory=Counter)
    agents: Counter[str] = field(default_factory=Counter)
    strategies: Counter[str] = field(default_factory=Counter)
    suites: Counter[str] = field(default_factory=Counter)
    first_created: str = ""


def _id_of(obj: dict[str, Any] | None) -> str | None:
    value = (obj or {}).get("id")
    return value if isinstance(value, str) and value else None


def _count(counter: Counter[str], value: object) -> None:
    if isinstance(value, str) and value:
        counter[value] += 1


@dataclass(eq=False)  # identity: an entry is one folder, kept across refreshes
class RunEntry:
    """One run folder: its manifest, its files' line indexes and one :class:`EpisodeRow` per record line.

    Attributes:
        key: :func:`ponder.core.viewlinks.run_key` of the folder.
        path: The folder.
        name: The folder relative to the root it was found under (the root's own name for the root itself).
        kind: ``eval`` (``results.jsonl`` or ``run.json``) or ``runs`` (trajectories only: ``ponder run``).
        manifest: ``run.json`` ({} when missing or unreadable: ``manifest_error`` says why).
        manifest_error: Why ``run.json`` could not be read; ``None`` when it was, or is missing.
        trajectories: ``trajectories.jsonl`` when present.
        results: ``results.jsonl`` when present.
        votes: ``self_consistency.jsonl`` when present.
        searches: ``search.jsonl`` when present.
        has_report: ``report.html`` exists.
        rows: One row per line of ``results.jsonl`` (eval) or ``trajectories.jsonl`` (runs), bad lines included.
    """

    key: str
    path: Path
    name: str
    kind: Literal["eval", "runs"] = "runs"
    manifest: dict[str, Any] = field(default_factory=dict)
    manifest_error: str | None = None
    trajectories: JsonlFile | None = None
    results: JsonlFile | None = None
    votes: JsonlFile | None = None
    searches: JsonlFile | None = None
    has_report: bool = False
    rows: list[EpisodeRow] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _ids: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)
    _done: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)  # file -> (generation, lines)
    _stable_rows: int = field(default=0, repr=False)
    _rows_key: tuple[str, int] = field(default=("", -1), repr=False)
    _facts: _Facts = field(default_factory=_Facts, repr=False)
    _manifest_stamp: tuple[float, int] | None = field(default=None, repr=False)

    @classmethod
    def open(cls, path: Path, name: str) -> RunEntry:
        """The entry of run folder ``path``, refreshed once."""
        entry = cls(key=run_key(path), path=Path(path), name=name)
        entry.refresh()
        return entry

    def refresh(self) -> None:
        """Re-read the manifest when it changed, index what each file gained, then build the new rows."""
        with self._lock:
            self._read_manifest()
            self.has_report = (self.path / REPORT).is_file()
            for attr, name in (("trajectories", TRAJECTORIES), ("results", RESULTS), ("votes", VOTES),
                               ("searches", SEARCHES)):
                jf = getattr(self, attr)
                if jf is None and (self.path / name).is_file():
                    jf = JsonlFile(self.path / name)
                    setattr(self, attr, jf)
                if jf is not None:
                    jf.refresh()
            self.kind = "eval" if self.results is not None or (self.path / MANIFEST).is_file() else "runs"
            self._scan_ids()
            self._build_rows()

    def _read_manifest(self) -> None:
        path = self.path / MANIFEST
        try:
            st = path.stat()
        except OSError:
            self.manifest, self.manifest_error, self._manifest_stamp = {}, None, None
            return
        stamp = (st.st_mtime, st.st_size)
        if stamp == self._manifest_stamp:
            return
        self._manifest_stamp = stamp
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            self.manifest, self.manifest_error = {}, f"{MANIFEST}: {exc}"
            return
        if not isinstance(data, dict):
            self.manifest, self.manifest_error = {}, f"{MANIFEST}: not a JSON object"
            return
        self.manifest, self.manifest_error = data, None

    def _new_lines(self, name: str, jf: JsonlFile) -> Iterator[tuple[LineRef, dict[str, Any] | None]]:
        """The lines of ``jf`` not consumed yet under ``name`` (all after a restart), streamed; marks them consumed.

        Only complete lines are marked: an unfinished last line comes again next time.
        """
        generation, done = self._done.get(name, (-1, 0))
        if generation != jf.generation:
            done = 0
            self._ids[name] = {}
            if name == TRAJECTORIES:
                self._facts.traj_steps.clear()
                self._facts.models.clear()
                self._facts.agents.clear()
        self._done[name] = (jf.generation, max(done, jf.complete))
        return jf.scan(done)

    def _scan_ids(self) -> None:
        """Extend the id → line maps of trajectories, votes and searches (and the facts the summary uses)."""
        for name, jf in ((TRAJECTORIES, self.trajectories), (VOTES, self.votes), (SEARCHES, self.searches)):
            if jf is None:
                continue
            lines = self._new_lines(name, jf)  # (may start the map over)
            ids = self._ids.setdefault(name, {})
            for ref, obj in lines:
                ident = _id_of(obj)
                if ident is None or obj is None:
                    continue
                ids.setdefault(ident, ref.number)
                if name == TRAJECTORIES:
                    steps = obj.get("steps")
                    self._facts.traj_steps[ident] = len(steps) if isinstance(steps, list) else 0
                    self._learn(obj)
                elif name == SEARCHES:
                    _count(self._facts.strategies, obj.get("strategy"))
                else:
                    self._facts.strategies["sc"] += 1

    def _learn(self, obj: dict[str, Any]) -> None:
        facts = self._facts
        _count(facts.models, obj.get("model"))
        _count(facts.agents, obj.get("agent"))
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            _count(facts.strategies, meta.get("strategy"))
        if not facts.first_created and isinstance(obj.get("created"), str):
            facts.first_created = obj["created"]

    def _build_rows(self) -> None:
        """Append rows for the lines added since last time; the unfinished last line's row is rebuilt."""
        name, jf = (RESULTS, self.results) if self.kind == "eval" else (TRAJECTORIES, self.trajectories)
        if jf is None:
            self.rows, self._stable_rows, self._rows_key = [], 0, (name, -1)
            return
        if self._rows_key != (name, jf.generation):
            self.rows, self._stable_rows, self._rows_key = [], 0, (name, jf.generation)
        rows = self.rows[:self._stable_rows]
        for ref, obj in jf.scan(self._stable_rows):
            if name == RESULTS:
                row = result_row(ref, obj, self._facts.traj_steps)
                if obj is not None and row.problem is None:
                    _count(self._facts.suites, obj.get("suite"))
                    if not self._facts.first_created and isinstance(obj.get("finished"), str):
                        self._facts.first_created = obj["finished"]
            else:
                row = trajectory_row(ref, obj)
            rows.append(row)
        self.rows = rows
        self._stable_rows = max(self._stable_rows, jf.complete)

    def trajectory_line(self, traj_id: str) -> int | None:
        """The line of ``trajectories.jsonl`` holding trajectory ``traj_id``; ``None`` when unknown."""
        with self._lock:
            return self._ids.get(TRAJECTORIES, {}).get(traj_id)

    def vote_line(self, record_id: str) -> int | None:
        """The line of ``self_consistency.jsonl`` holding the record ``record_id``; ``None`` when unknown."""
        with self._lock:
            return self._ids.get(VOTES, {}).get(record_id)

    def search_line(self, tree_id: str) -> int | None:
        """The line of ``search.jsonl`` holding the search tree ``tree_id``; ``None`` when unknown."""
        with self._lock:
            return self._ids.get(SEARCHES, {}).get(tree_id)

    def summary(self) -> RunSummary:
        """Counts, the success rate with its Wilson 95 % interval, and what ran (manifest first, else the records)."""
        with self._lock:
            rows = list(self.rows)
            facts, manifest = self._facts, self.manifest
            ok = [r for r in rows if r.problem is None]
            judged = [r for r in ok if r.success is not None]
            successes = sum(1 for r in judged if r.success)
            rate = low = high = None
            if judged:
                rate = successes / len(judged)
                low, high = wilson_interval(successes, len(judged))
            settings = manifest.get("settings") if isinstance(manifest.get("settings"), dict) else {}
            policy = manifest.get("policy")
            agent = settings.get("agent") if policy in (None, "agent") else policy
            return RunSummary(
                episodes=len(ok), problems=len(rows) - len(ok), successes=successes, success_rate=rate,
                ci_low=low, ci_high=high,
                mean_tokens=sum(r.tokens for r in ok) / len(ok) if ok else None,
                strategy=_first_text(manifest.get("strategy"), _joined(facts.strategies, 1))
                or ("single" if rows else ""),
                model=_first_text(manifest.get("model"), settings.get("model") if policy in (None, "agent") else None,
                                  _joined(facts.models)),
                agent=_first_text(agent, _joined(facts.agents)),
                suite=_first_text(manifest.get("suite"), _joined(facts.suites)) if self.kind == "eval" else "",
                started=_first_text(manifest.get("started"), facts.first_created),
                votes=self._ok_lines(self.votes), searches=self._ok_lines(self.searches),
                solved=sum(1 for r in ok if r.status == "solved"))

    @staticmethod
    def _ok_lines(jf: JsonlFile | None) -> int:
        return 0 if jf is None else sum(1 for ref in jf.lines if ref.state == "ok")

    @property
    def live(self) -> bool:
        """Whether records may still be coming: files changed in the last minute, or an unfinished eval's.

        An eval is unfinished while its manifest exists but its report does not; one whose files have not changed
        for :data:`STALE_SECONDS` (a killed run) is not live any more.
        """
        with self._lock:
            stamps = [jf.mtime for jf in (self.trajectories, self.results, self.votes, self.searches)
                      if jf is not None and jf.mtime is not None]
            manifest = self.path / MANIFEST
            try:
                stamps.append(manifest.stat().st_mtime)
            except OSError:  # no manifest (a `ponder run` folder), or it went away meanwhile
                pass
            if not stamps:
                return False
            idle = time.time() - max(stamps)
            unfinished = self.kind == "eval" and manifest.is_file() and not (self.path / REPORT).is_file()
            return idle < (STALE_SECONDS if unfinished else LIVE_SECONDS)


def _joined(counter: Counter[str], most: int | None = None) -> str:
    """The counted values, most common first, joined by ``", "`` (only the first ``most`` when given)."""
    return ", ".join(value for value, _ in counter.most_common(most))


def _first_text(*values: object) -> str:
    """The first non-empty string of ``values`` ("" when none)."""
    return next((v for v in values if isinstance(v, str) and v), "")


class Catalog:
    """Every run folder under some roots (thread-safe).

    Args:
        roots: Folders searched recursively for run folders (a file stands for its folder).

    Raises:
        DataError: for a root that does not exist.
    """

    def __init__(self, roots: list[Path]) -> None:
        self.roots: list[Path] = []
        for root in roots:
            root = Path(root)
            if not root.exists():
                raise DataError(f"no such folder: {root}")
            self.roots.append(root if root.is_dir() else root.parent)
        self._lock = threading.RLock()
        self._runs: dict[str, RunEntry] = {}

    def refresh(self) -> None:
        """Find the run folders again (new ones appear, vanished ones go) and refresh each."""
        with self._lock:
            found: dict[str, tuple[Path, str]] = {}
            for root in self.roots:
                for folder in _run_folders(root):
                    rel = folder.relative_to(root).as_posix()
                    name = (root.resolve().name or str(root)) if rel == "." else rel
                    found.setdefault(run_key(folder), (folder, name))
            runs: dict[str, RunEntry] = {}
            for key, (folder, name) in found.items():
                entry = self._runs.get(key)
                if entry is None:
                    runs[key] = RunEntry.open(folder, name)
                else:
                    entry.refresh()
                    runs[key] = entry
            self._runs = runs

    def runs(self) -> list[RunEntry]:
        """The run folders found by the last refresh, sorted by name."""
        with self._lock:
            return sorted(self._runs.values(), key=lambda e: (e.name, str(e.path)))

    def get(self, key: str) -> RunEntry | None:
        """The run folder with ``key``; ``None`` when there is none."""
        with self._lock:
            return self._runs.get(key)


def _run_folders(root: Path) -> list[Path]:
    """The folders under ``root`` (itself included) that hold a run file or a manifest; hidden folders skipped."""
    wanted = {*RUN_FILES, MANIFEST}
    out: list[Path] = []
    for folder, dirs, files in os.walk(root, onerror=lambda _exc: None):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
        if wanted.intersection(files):
            out.append(Path(folder))
    return out
