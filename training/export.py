"""``ponder export sft``: trajectories (runs, evals, votes, searches) as training data.

:func:`export_sft` reads the RUNS (:mod:`ponder.training.export_sources`), keeps what the filters allow
(:mod:`ponder.training.export_filters`), guards the held-out tasks (:mod:`ponder.training.held_out`) and writes:

* ``chat`` (default): :class:`~ponder.training.examples.SFTExample` JSONL, TRL's conversational format, each
  conversation starting with the agent's real prompt (the prefix rebuilt by :func:`~ponder.training.prompt.
  agent_prefix` for the run's agent and tools, checked against the fingerprint the run recorded), the question,
  then every step's turns (:meth:`~ponder.core.records.Step.to_messages`; the reply is the step's raw text); a
  conversation ends with the model's last reply. ``metadata`` says where it came from.
* ``openai``: the same conversations as ``{"messages": [...]}`` only (OpenAI's fine-tuning validator knows
  ``messages``, ``tools`` and ``parallel_tool_calls``; ponder does not count on it ignoring other keys).
* ``atif``: one ATIF v1.4 document per line (:mod:`ponder.training.atif`).

The counts (read, kept, dropped by reason, notes, torn lines) go to ``FILE.stats.json`` beside the output.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ponder.core.errors import ConfigError, PonderError
from ponder.core.io import write_atomic
from ponder.core.settings import Settings, load_settings
from ponder.models.base import Message
from ponder.training.examples import ChatTurn, SFTExample
from ponder.training.export_filters import REASONS, ExportFilters, PromptCheck, Selection, select
from ponder.training.export_sources import Episode, Loaded, load_runs
from ponder.training.prompt import run_conversation

ExportFormat = Literal["chat", "openai", "atif"]
#: How many held-out tasks a refusal names.
NAMED = 3


class HeldOutError(ConfigError):
    """Kept episodes whose task is in a held-out file (the export is refused; exit 2)."""


class NothingExportedError(PonderError):
    """The filters left nothing to write (exit 1)."""


@dataclass
class ExportReport:
    """What an export read, kept and dropped, and where it wrote."""

    out: Path
    stats_path: Path
    format: str
    read: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)
    torn_lines: int = 0
    missing_trajectories: int = 0
    files: list[str] = field(default_factory=list)
    held_out_files: list[str] = field(default_factory=list)
    by_source: dict[str, int] = field(default_factory=dict)

    def stats(self) -> dict[str, Any]:
        """The JSON written to ``stats_path``."""
        return {"out": str(self.out), "format": self.format, "read": self.read, "kept": self.kept,
                "dropped": self.dropped, "notes": self.notes, "kept_by_source": self.by_source,
                "torn_lines": self.torn_lines, "missing_trajectories": self.missing_trajectories,
                "files": self.files, "held_out_files": self.held_out_files}


def stats_path_for(out: Path) -> Path:
    """``FILE.stats.json`` beside ``FILE``."""
    return out.with_name(out.name + ".stats.json")


def export_sft(runs: Sequence[Path], out: Path, filters: ExportFilters, fmt: ExportFormat = "chat",
               settings: Settings | None = None) -> ExportReport:
    """Export the trajectories of ``runs`` to ``out`` in ``fmt``; the counts go to ``FILE.stats.json``.

    Raises:
        DataError: for a missing RUN path or a folder without run records (exit 2).
        HeldOutError: when a kept episode's task is in a strict held-out file (exit 2; nothing is written).
        NothingExportedError: when no trajectory was read or none passed the filters (exit 1; the stats are
            written).
    """
    settings = settings or load_settings()
    loaded = load_runs([Path(p) for p in runs])
    check = PromptCheck(settings)
    selection = select(loaded.episodes, filters, check)
    report = _report(out, fmt, loaded, selection, filters)
    if selection.held_out:
        _refuse(selection)
    if not loaded.episodes:
        raise NothingExportedError(f"no trajectories in {', '.join(map(str, runs))} "
                                   f"({loaded.torn} unreadable line(s))")
    write_atomic(report.stats_path, json.dumps(report.stats(), indent=2) + "\n")
    if not selection.kept:
        raise NothingExportedError(f"nothing exported: all {report.read} trajectories were dropped "
                                   f"({_reasons(report.dropped)}); see {report.stats_path}")
    version = _version()
    lines = [_line(ep, check, fmt, version) for ep in selection.kept]
    write_atomic(out, "".join(line + "\n" for line in lines))
    return report


def _refuse(selection: Selection) -> None:
    hits = selection.held_out
    named = ", ".join(f"{h.label!r} ({h.file.name})" for h in hits[:NAMED])
    raise HeldOutError(f"refusing to export: {len(hits)} kept episode(s) are held-out evaluation tasks, e.g. "
                       f"{named}{', ...' if len(hits) > NAMED else ''}; pass --drop-held-out to drop them")


def _reasons(dropped: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in dropped.items()) or "none"


def _report(out: Path, fmt: str, loaded: Loaded, selection: Selection, filters: ExportFilters) -> ExportReport:
    by_source: dict[str, int] = {}
    for ep in selection.kept:
        by_source[ep.source] = by_source.get(ep.source, 0) + 1
    guard = filters.held_out
    return ExportReport(
        out=out, stats_path=stats_path_for(out), format=fmt, read=len(loaded.episodes), kept=len(selection.kept),
        dropped={r: selection.dropped[r] for r in REASONS if selection.dropped[r]}, notes=dict(selection.notes),
        torn_lines=loaded.torn, missing_trajectories=loaded.missing_trajectories,
        files=[str(p) for p in loaded.files], by_source=by_source,
        held_out_files=[f"{p}{'' if strict else ' (shipped eval file)'}" for p, strict in guard.files] if guard
        else [])


def _version() -> str:
    from ponder import __version__

    return __version__


def conversation(ep: Episode, prefix: list[Message]) -> list[ChatTurn]:
    """The training conversation of ``ep``: ``prefix``, the question, each step's turns, ending on a reply."""
    return [ChatTurn(role=m["role"], content=m["content"]) for m in run_conversation(prefix, ep.task, ep.traj.steps)]


def example_metadata(ep: Episode, check: PromptCheck) -> dict[str, Any]:
    """Where an example came from (``SFTExample.metadata``)."""
    traj = ep.traj
    meta: dict[str, Any] = {
        "source": ep.source, "task_id": ep.task_id, "task": ep.task, "agent": traj.agent,
        "episode_id": ep.task_id, "trajectory_id": traj.id, "answer": traj.final_answer, "hint": ep.hint,
        "gold": ep.gold, "correct": ep.correct, "score": ep.score, "voted": ep.voted, "status": traj.status,
        "model": traj.model, "tools": list(check.tools_of(ep)), "prompt_sha256": traj.metadata.get("prompt_sha256"),
        "prompt": check.verdict(ep), "steps": len(traj.steps), "origin": str(ep.origin)}
    return {k: v for k, v in meta.items() if v is not None}


def _line(ep: Episode, check: PromptCheck, fmt: ExportFormat, version: str) -> str:
    prefix = check.prefix(ep)
    assert prefix is not None  # select() dropped episodes whose prompt cannot be rebuilt
    if fmt == "atif":
        from ponder.training.atif import to_atif

        return to_atif(ep, prefix, version, example_metadata(ep, check)).model_dump_json(exclude_none=True)
    example = SFTExample(messages=conversation(ep, prefix), metadata=example_metadata(ep, check))
    if fmt == "openai":
        return json.dumps({"messages": [t.model_dump() for t in example.messages]}, ensure_ascii=False)
    return example.model_dump_json()
