"""STaR's data step: sampled trajectories that reach the gold answer become chat training examples.

A trajectory is *correct* when it ended with a final answer (``status == "solved"``) that the suite scores as
right (numeric match for gsm8k / svamp). Its training conversation is the agent's real prompt
(:func:`~ponder.training.prompt.agent_prefix`), the ORIGINAL question turn, then its steps
(:meth:`~ponder.core.records.Step.to_messages`). Trajectories with a ``parse_error`` step are left out unless
asked (training on them teaches the malformed output the format reminder answered).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from ponder.core.io import read_jsonl
from ponder.core.records import Trajectory
from ponder.envs.base import Episode
from ponder.envs.qa import QASuite
from ponder.models.base import Message
from ponder.training.examples import ChatTurn, SFTExample
from ponder.training.prompt import prefix_sha256, run_conversation


class DataStats(BaseModel):
    """What one round's data step found (``round-r/data.stats.json``)."""

    questions: int = 0
    samples: int = 0
    correct_samples: int = 0
    questions_solved: int = 0
    kept: int = 0
    malformed_dropped: int = 0
    unusable: int = Field(0, description="Correct, but sent another prompt or used native tool calls.")
    rationalize_tried: int = 0
    rationalized: int = 0
    rationale_dropped: dict[str, int] = Field(default_factory=dict)
    seed_examples: int = 0
    examples: int = 0

    def drop(self, reason: str) -> None:
        """Count one rationale that was not kept."""
        self.rationale_dropped[reason] = self.rationale_dropped.get(reason, 0) + 1


def trajectories_by_episode(run_dir: Path) -> dict[str, list[Trajectory]]:
    """The trajectories of an eval run by ``metadata["episode_id"]``, in sample order (empty when none)."""
    path = run_dir / "trajectories.jsonl"
    grouped: dict[str, list[Trajectory]] = {}
    if not path.is_file():
        return grouped
    for traj in read_jsonl(path, Trajectory):
        grouped.setdefault(str(traj.metadata.get("episode_id", "")), []).append(traj)
    for trajs in grouped.values():
        trajs.sort(key=lambda t: int(str(t.metadata.get("sample", 0))))
    return grouped


def is_correct(traj: Trajectory, episode: Episode, suite: QASuite) -> bool:
    """Whether ``traj`` ended with an answer the suite scores as right."""
    return traj.status == "solved" and suite.score(traj.final_answer, episode)[0]


def malformed(traj: Trajectory) -> bool:
    """Whether any step of ``traj`` was malformed (answered with a format reminder)."""
    return any(step.kind == "parse_error" for step in traj.steps)


def to_example(traj: Trajectory, episode: Episode, prefix: Sequence[Message], *, hint: bool,
               round_no: int) -> SFTExample | None:
    """The training conversation of ``traj`` with the original question.

    The question turn is rebuilt from ``episode.task``, so a rationalized run's hint never reaches the data.
    ``None`` when the run did not send ``prefix`` (its recorded ``prompt_sha256`` differs) or did not use the text
    tool protocol.
    """
    recorded = traj.metadata.get("prompt_sha256")
    if recorded is not None and recorded != prefix_sha256(prefix):
        return None
    turns = run_conversation(prefix, episode.task, traj.steps)
    if any(turn["role"] not in ("system", "user", "assistant") for turn in turns):
        return None
    meta = {"source": "star", "task_id": episode.id, "task": episode.task, "agent": traj.agent,
            "episode_id": episode.id, "trajectory_id": traj.id, "answer": episode.gold, "hint": hint,
            "round": round_no, "sample": traj.metadata.get("sample"), "prompt_sha256": prefix_sha256(prefix)}
    return SFTExample(messages=[ChatTurn(role=t["role"], content=str(t["content"])) for t in turns], metadata=meta)


def keep_correct(trajs: Sequence[Trajectory], episode: Episode, suite: QASuite, prefix: Sequence[Message],
                 stats: DataStats, *, limit: int, keep_malformed: bool, round_no: int) -> list[SFTExample]:
    """Up to ``limit`` distinct correct trajectories of one question as examples (counted in ``stats``)."""
    correct = [t for t in trajs if is_correct(t, episode, suite)]
    stats.samples += len(trajs)
    stats.correct_samples += len(correct)
    stats.questions_solved += bool(correct)
    kept: list[SFTExample] = []
    seen: set[tuple[str, ...]] = set()
    for traj in correct:
        if malformed(traj) and not keep_malformed:
            stats.malformed_dropped += 1
            continue
        key = tuple(step.raw for step in traj.steps)
        example = to_example(traj, episode, prefix, hint=False, round_no=round_no)
        if example is None:
            stats.unusable += 1
        if key in seen or example is None or len(kept) >= limit:
            continue
        seen.add(key)
        kept.append(example)
    stats.kept += len(kept)
    return kept
