"""One table row per line of a run's records: :class:`EpisodeRow` from a result or a trajectory, never raising.

A line that is not a JSON object, or an object that is not a valid record, still becomes a row: with ``problem``
saying why (``line 7: torn (no newline, not JSON: ...)``), so the viewer shows it instead of hiding or crashing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ponder.core.records import Trajectory
from ponder.envs.base import EpisodeResult
from ponder.viewer.jsonl import LineRef

#: Characters of a task kept in a row.
TASK_CHARS = 300
#: Answers and gold answers are cut to this many characters in a row (the text search sees the cut).
ANSWER_CHARS = 2000


@dataclass
class EpisodeRow:
    """One episode (eval: a line of ``results.jsonl``) or one trajectory (runs: a line of ``trajectories.jsonl``).

    Attributes:
        line: The line number in its file.
        id: The episode id (eval) or the trajectory id (runs); for a bad line, its id when one can be read.
        task: The task, cut at :data:`TASK_CHARS` characters.
        tier: The episode's tier ("" when none).
        status: The result's or trajectory's status; ``torn`` / ``malformed`` for a bad line.
        failure: ``EpisodeResult.failure`` ("" for a success and for runs).
        success: Eval: the result's success; runs: ``None`` (correctness unknown).
        score: The result's score; runs: the trajectory's ``metadata["score"]`` when it has one.
        tokens: Total tokens used.
        steps: Runs: the trajectory's steps; eval: ``env_steps``, else its trajectories' steps when known,
            else its model calls.
        seconds: Wall-clock seconds.
        prediction: The answer given.
        gold: The reference answer.
        trajectory_ids: Eval: the result's trajectory ids; runs: ``[id]``.
        vote_id: The self-consistency record's id (``metadata["self_consistency_id"]``).
        problem: Why the line is not a record; ``None`` for a good row.
    """

    line: int
    id: str = ""
    task: str = ""
    tier: str = ""
    status: str = ""
    failure: str = ""
    success: bool | None = None
    score: float | None = None
    tokens: int = 0
    steps: int = 0
    seconds: float = 0.0
    prediction: str | None = None
    gold: str | None = None
    trajectory_ids: list[str] = field(default_factory=list)
    vote_id: str | None = None
    problem: str | None = None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _vote_id(metadata: Mapping[str, object]) -> str | None:
    value = metadata.get("self_consistency_id")
    return str(value) if value else None


def validation_reason(exc: ValidationError, model: str) -> str:
    """A short reason for a failed validation: the first error's field and message, and how many more."""
    errors = exc.errors()
    if not errors:
        return f"not a valid {model}"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "record"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"not a valid {model}: {where}: {first.get('msg', 'invalid')}{more}"


def problem_row(ref: LineRef, obj: Mapping[str, Any] | None = None, reason: str | None = None) -> EpisodeRow:
    """The row of a line that is not a record: a torn or malformed line, or an object that failed validation."""
    obj = obj or {}
    ident = obj.get("episode_id", obj.get("id"))
    status = ref.state if ref.state != "ok" else "malformed"
    why = reason or ref.error or status
    if ref.state == "malformed":
        why = f"malformed ({why})"
    elif ref.state == "torn":
        why = f"torn (no newline, {why})"
    return EpisodeRow(line=ref.number, id=_text(ident)[:200], task=_text(obj.get("task"))[:TASK_CHARS],
                      status=status, problem=f"line {ref.number}: {why}")


def trajectory_row(ref: LineRef, obj: Mapping[str, Any] | None) -> EpisodeRow:
    """The row of one line of ``trajectories.jsonl`` (a ``runs`` folder)."""
    if ref.state != "ok" or obj is None:
        return problem_row(ref, obj)
    try:
        traj = Trajectory.model_validate(obj)
    except ValidationError as exc:
        return problem_row(ref, obj, validation_reason(exc, "Trajectory"))
    meta = traj.metadata
    return EpisodeRow(line=ref.number, id=traj.id, task=traj.task[:TASK_CHARS], tier=_text(meta.get("tier")),
                      status=traj.status, success=None, score=_number(meta.get("score")),
                      tokens=traj.usage.total_tokens, steps=len(traj.steps), seconds=traj.usage.wall_seconds,
                      prediction=_cut(traj.final_answer),
                      gold=_cut(_text(meta["gold"])) if meta.get("gold") is not None else None,
                      trajectory_ids=[traj.id], vote_id=_vote_id(meta))


def result_row(ref: LineRef, obj: Mapping[str, Any] | None, traj_steps: Mapping[str, int]) -> EpisodeRow:
    """The row of one line of ``results.jsonl`` (an eval); ``traj_steps``: step counts of known trajectories."""
    if ref.state != "ok" or obj is None:
        return problem_row(ref, obj)
    try:
        result = EpisodeResult.model_validate(obj)
    except ValidationError as exc:
        return problem_row(ref, obj, validation_reason(exc, "EpisodeResult"))
    steps = result.env_steps
    if not steps and result.trajectory is not None:
        steps = len(result.trajectory.steps)
    if not steps and result.trajectory_ids and all(t in traj_steps for t in result.trajectory_ids):
        steps = sum(traj_steps[t] for t in result.trajectory_ids)
    if not steps:
        steps = result.usage.model_calls
    return EpisodeRow(line=ref.number, id=result.episode_id, task=result.task[:TASK_CHARS], tier=result.tier,
                      status=result.status, failure=result.failure, success=result.success, score=result.score,
                      tokens=result.usage.total_tokens, steps=steps, seconds=result.usage.wall_seconds,
                      prediction=_cut(result.prediction), gold=_cut(result.gold),
                      trajectory_ids=list(result.trajectory_ids),
                      vote_id=_vote_id(result.metadata))


def _cut(text: str | None) -> str | None:
    """An answer kept in a row: at most :data:`ANSWER_CHARS` characters (the record keeps it whole)."""
    return text if text is None or len(text) <= ANSWER_CHARS else text[: ANSWER_CHARS - 1] + "…"
