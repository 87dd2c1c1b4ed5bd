"""``run_eval``: play a suite's episodes with W workers, appending each result as it ends, resumable.

Layout of a run directory:

* ``run.json`` -- the manifest: suite, options, settings that matter, model, start time, ponder
  version and git commit, plus one entry per (re)start.
* ``results.jsonl`` -- one :class:`~ponder.envs.base.EpisodeResult` per finished episode, appended
  with flush + fsync as each episode ends (``core.io.append_jsonl``). ``--resume`` reads it
  (a torn last line from a killed run is cut off first) and plays only the episodes not in it, so a
  ``kill -9`` loses no finished episode and duplicates none.
* ``trajectories.jsonl`` -- the agents' trajectories (``EpisodeResult.trajectory_ids`` point into it).
* ``report.md`` / ``report.html`` -- written at the end (:mod:`ponder.envs.report`).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.core.errors import ConfigError, DataError
from ponder.core.io import append_jsonl, read_jsonl, write_atomic
from ponder.core.settings import PACKAGE_DIR, Settings
from ponder.envs.base import Episode, EpisodeResult, Suite, policy_kind
from ponder.envs.context import EvalOptions
from ponder.envs.metrics import Summary, summarize

if TYPE_CHECKING:
    from ponder.envs.progress import Progress
    from ponder.models.base import ModelBackend

RESULTS_FILE = "results.jsonl"
MANIFEST_FILE = "run.json"
#: Settings recorded in the manifest (what changes results).
_SETTINGS_KEYS = ("model", "agent", "temperature", "top_p", "max_tokens", "seed", "max_steps", "tools", "sandbox",
                  "exec_timeout", "search_mode", "search_k", "search_corpus", "data_dir", "memory_namespace",
                  "constrained_steps", "mcp_servers", "tool_calling", "output_schema")


@dataclass
class EvalRun:
    """What :func:`run_eval` returns.

    Attributes:
        out_dir: The run directory.
        results: Every result of the run in episode order (resumed ones included).
        summary: Success rate, score and compute with 95% intervals.
        new: Episodes played by this call (the rest came from ``results.jsonl``).
    """

    out_dir: Path
    results: list[EpisodeResult]
    summary: Summary
    new: int


def check_options(suite: Suite, options: EvalOptions) -> None:
    """Reject options the suite cannot honour before anything runs.

    The strategy options themselves were checked when ``options`` was built (a ``RunSpec``); each suite's
    ``check_options(options)`` (raising :class:`ConfigError`) checks its own limits, e.g. self-consistency
    support.

    Raises:
        ConfigError: naming the bad option.
    """
    policies = ("agent", *suite.policies)
    if options.policy not in policies:
        raise ConfigError(f"--policy {options.policy!r} is not offered by suite {suite.name!r}; "
                          f"choose one of: {', '.join(policies)}")
    if options.policy != "agent" and (options.samples > 1 or options.trials > 1 or options.memory != "none"
                                      or options.strategy_name != "single"):
        raise ConfigError("--strategy, --samples, --trials and --memory apply to --policy agent only")
    suite.check_options(options)


def load_done(path: Path) -> dict[str, EpisodeResult]:
    """Finished results by episode id from ``results.jsonl`` (empty when missing); a torn last line is cut off.

    Raises:
        DataError: for a malformed line other than a torn last one.
    """
    if not path.is_file():
        return {}
    repair_tail(path)
    done: dict[str, EpisodeResult] = {}
    for result in read_jsonl(path, EpisodeResult):
        done.setdefault(result.episode_id, result)
    return done


def repair_tail(path: Path) -> bool:
    """Cut an unterminated last line (a write killed midway) so later appends start on a fresh line.

    Returns:
        Whether anything was cut.
    """
    with open(path, "rb+") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size == 0:
            return False
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return False
        fh.seek(0)
        data = fh.read()
        keep = data.rfind(b"\n") + 1
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    return True


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The repository's commit (with ``-dirty`` when modified), or ``None`` outside a git checkout (once a process)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PACKAGE_DIR, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PACKAGE_DIR,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha


def write_manifest(out_dir: Path, suite: Suite, options: EvalOptions, settings: Settings, n_episodes: int,
                   resumed: int, executor: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create or extend ``run.json``; a resumed run must be the same suite.

    ``executor`` describes a distributed start (``{"executor": "ray", "address": ..., "shards": ..., "nodes": ...}``)
    and goes into this start's entry.

    Raises:
        ConfigError: when resuming a directory that holds another suite's run.
    """
    from ponder import __version__

    path = out_dir / MANIFEST_FILE
    now = datetime.now(UTC).isoformat(timespec="seconds")
    start = {"started": now, "resumed_from": resumed, "workers": options.workers, **(executor or {})}
    if path.is_file():
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("suite") != suite.name:
            raise ConfigError(f"{out_dir} holds a run of suite {manifest.get('suite')!r}, not {suite.name!r}")
        manifest.setdefault("starts", []).append(start)
    else:
        manifest = {
            "suite": suite.name, "episodes": n_episodes, "policy": options.policy,
            "policy_kind": policy_kind(options.policy),
            "strategy": options.strategy_name if options.policy == "agent" else None,
            "options": options.model_dump(mode="json", exclude={"resume", "out_dir"}),
            "settings": {k: v for k, v in settings.model_dump(mode="json").items() if k in _SETTINGS_KEYS},
            "model": settings.model if options.policy == "agent" else None,
            "started": now, "ponder_version": __version__, "git_commit": git_commit(), "starts": [start],
        }
    write_atomic(path, json.dumps(manifest, indent=2) + "\n")
    return manifest


def check_unique(episodes: list[Episode]) -> None:
    """Reject duplicate episode ids (resume and the distributed merge key on them).

    Raises:
        DataError: naming the duplicate.
    """
    seen: set[str] = set()
    for ep in episodes:
        if ep.id in seen:
            raise DataError(f"duplicate episode id {ep.id!r} in suite {ep.suite!r} (resume keys on ids)")
        seen.add(ep.id)


def run_eval(suite: Suite, options: EvalOptions, settings: Settings, *, progress: Progress | None = None,
             episodes: list[Episode] | None = None, report: bool = True, quiet: bool = False,
             model: ModelBackend | None = None) -> EvalRun:
    """Evaluate ``suite``: W workers, per-episode timeout, fsynced results, resume, report.

    Args:
        suite: Any :class:`~ponder.envs.base.Suite` (threads unless ``suite.needs_process``).
        options: What to run (``options.out_dir`` is the run directory).
        settings: Effective settings (model, agent, seed, data_dir, ...).
        progress: A display (default: :class:`~ponder.envs.progress.Progress` on stderr).
        episodes: Play these instead of ``suite.episodes(...)`` (tests, custom selections).
        report: Write ``report.md`` and ``report.html`` at the end.
        quiet: No progress display (when ``progress`` is not given).
        model: A backend to share instead of loading ``settings.model`` (thread workers only: process
            workers always load their own).

    Raises:
        ConfigError: for options the suite cannot honour, an existing run without ``resume``, or a
            configuration error met while playing.
        DataError: for a malformed data file (with its line) or results file.
    """
    from ponder.envs.progress import Progress

    check_options(suite, options)
    if episodes is None:
        episodes = suite.episodes(settings, options.data, options.limit)
    check_unique(episodes)
    out_dir = Path(options.out_dir)
    done = open_run(out_dir, suite, options, settings, episodes)
    todo = deque((i, ep) for i, ep in enumerate(episodes) if ep.id not in done)
    fresh: list[EpisodeResult] = []
    if todo:
        display = progress or Progress(len(episodes), list(done.values()), label=suite.name, quiet=quiet)
        opts = options.model_copy(update={"out_dir": out_dir, "workers": min(options.workers, len(todo))})
        fresh = _play(suite, opts, settings, model, todo, display)
    return finish_run(out_dir, episodes, done, fresh, report=report)


def finish_run(out_dir: Path, episodes: list[Episode], done: dict[str, EpisodeResult], fresh: list[EpisodeResult],
               *, report: bool) -> EvalRun:
    """The run's results in episode order (resumed and fresh), summarized; the report written when asked."""
    order = {ep.id: i for i, ep in enumerate(episodes)}
    results = sorted([*done.values(), *fresh], key=lambda r: order.get(r.episode_id, len(order)))
    run = EvalRun(out_dir=out_dir, results=results, summary=summarize(results), new=len(fresh))
    if report:
        from ponder.envs.report import write_report

        write_report(out_dir)
    return run


def check_out_dir(out_dir: Path, options: EvalOptions) -> None:
    """Refuse a run directory that already has results unless resuming.

    Raises:
        ConfigError: when the run has results and ``options.resume`` is off.
    """
    results_path = out_dir / RESULTS_FILE
    if results_path.is_file() and results_path.stat().st_size and not options.resume:
        raise ConfigError(f"{results_path} already exists; pass --resume to continue that run or choose another --out")


def open_run(out_dir: Path, suite: Suite, options: EvalOptions, settings: Settings, episodes: list[Episode],
             executor: dict[str, Any] | None = None) -> dict[str, EpisodeResult]:
    """Create (or, with ``resume``, reopen) the run directory and write its manifest: the episodes already done.

    Raises:
        ConfigError: when the run has results and ``options.resume`` is off.
    """
    check_out_dir(out_dir, options)
    results_path = out_dir / RESULTS_FILE
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = {ep.id for ep in episodes}
    done = {k: v for k, v in load_done(results_path).items() if k in wanted}
    write_manifest(out_dir, suite, options, settings, len(episodes), len(done), executor)
    return done


def _play(suite: Suite, options: EvalOptions, settings: Settings, model: ModelBackend | None,
          todo: deque[tuple[int, Episode]], display: Progress) -> list[EpisodeResult]:
    """Play ``todo`` on a worker pool, appending each result to the run's results file as it comes."""
    from ponder.envs.workers import ProcessPool, ThreadPool

    results_path = Path(options.out_dir) / RESULTS_FILE
    fresh: list[EpisodeResult] = []
    pool = ProcessPool(suite, options, settings) if suite.needs_process else ThreadPool(suite, options, settings, model)
    try:
        with display:
            while todo or pool.busy():
                while todo and pool.free() > 0:
                    pool.submit(*todo.popleft())
                for index, result in pool.collect(wait_s=0.5):
                    result.metadata["index"] = index
                    append_jsonl(results_path, result)
                    fresh.append(result)
                    display.update(result)
    finally:
        pool.close()
    return fresh


def default_out_dir(settings: Settings, suite: str) -> Path:
    """``<out_dir>/eval/<suite>-<UTC time>`` for a run without ``--out``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return Path(settings.out_dir) / "eval" / f"{suite}-{stamp}"
