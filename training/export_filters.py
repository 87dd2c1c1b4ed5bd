"""Which episodes ``ponder export sft`` keeps: filters, the prompt check, the held-out guard and dedup.

Every dropped episode is counted under the first reason that dropped it (:data:`REASONS`, in the order they are
checked); ``prompt_unverified`` counts kept episodes whose trajectory predates the prompt fingerprint.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ponder.core.answers import is_correct
from ponder.core.errors import ConfigError
from ponder.core.hashing import messages_sha256
from ponder.core.settings import Settings
from ponder.training.export_sources import Episode
from ponder.training.held_out import HeldOut, TaskKey, question_key
from ponder.training.prompt import agent_prefix

#: Why an episode was dropped, in the order the checks run.
REASONS = ("other_agent", "agent_filter", "run_error", "native_tool_calls", "parse_errors", "hint", "no_gold",
           "not_solved", "below_min_score", "not_voted", "prompt_changed", "held_out", "duplicate_task")
#: Agents whose runs become training conversations.
EXPORTABLE_AGENTS = ("react", "pal")


@dataclass(frozen=True)
class ExportFilters:
    """What to keep.

    Attributes:
        solved_only: Eval episodes that succeeded; other runs that ended ``solved`` (and, with an answer key,
            whose answer is right; a task the key lacks is dropped as ``no_gold``).
        min_score: Drop records whose verifier score is below this (records without a score are kept).
        voted_only: Self-consistency samples whose answer is the voted one (other records are kept).
        dedup: ``task``: one example per task (the right one, then the best-scoring, then the fewest steps);
            ``none``: every episode.
        agent: Only this agent's runs (``react`` or ``pal``).
        exclude_hints: Drop rationales written with the answer as a hint.
        keep_parse_errors: Keep trajectories with malformed replies (and their format reminders).
        allow_prompt_drift: Keep trajectories whose recorded prompt differs from the one rebuilt today.
        answers: The answer key (``--answers``), or ``None``.
        held_out: The evaluation tasks no example may come from, or ``None``.
    """

    solved_only: bool = False
    min_score: float | None = None
    voted_only: bool = False
    dedup: Literal["task", "none"] = "task"
    agent: str | None = None
    exclude_hints: bool = False
    keep_parse_errors: bool = False
    allow_prompt_drift: bool = False
    answers: AnswerKey | None = None
    held_out: HeldOut | None = None


@dataclass
class AnswerKey:
    """Gold answers by task id and by normalized question (``--answers FILE``)."""

    by_id: dict[str, str] = field(default_factory=dict)
    by_question: dict[str, str] = field(default_factory=dict)

    def gold(self, ep: Episode) -> str | None:
        """The gold answer of ``ep``'s task, if the key has it."""
        if ep.task_id and ep.task_id in self.by_id:
            return self.by_id[ep.task_id]
        return self.by_question.get(question_key(ep.task))


@dataclass
class Selection:
    """The kept episodes, the drops by reason, the notes and the held-out episodes found."""

    kept: list[Episode] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    held_out: list[TaskKey] = field(default_factory=list)


class PromptCheck:
    """Rebuilds an agent's prompt prefix for a tool set and compares its fingerprint with the recorded one."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._prefix = functools.cache(self._build)

    def _build(self, agent: str, tools: tuple[str, ...]) -> tuple[list, str] | None:
        try:
            prefix = agent_prefix(agent, tools, self.settings)
        except ConfigError:  # a tool that does not exist any more: the prompt cannot be rebuilt
            return None
        return prefix, messages_sha256(prefix)

    def tools_of(self, ep: Episode) -> tuple[str, ...]:
        """The tools the run had (recorded), else the settings' (ReAct) or none (PAL)."""
        recorded = ep.traj.metadata.get("tools")
        if isinstance(recorded, list):
            return tuple(str(t) for t in recorded)
        return tuple(self.settings.tools) if ep.traj.agent == "react" else ()

    def prefix(self, ep: Episode) -> list | None:
        """The rebuilt prefix of ``ep`` (``None`` when it cannot be rebuilt)."""
        built = self._prefix(ep.traj.agent, self.tools_of(ep))
        return built[0] if built else None

    def verdict(self, ep: Episode) -> Literal["same", "changed", "unverified"]:
        """Whether the rebuilt prompt is the one the run sent (``unverified``: the run recorded no fingerprint)."""
        built = self._prefix(ep.traj.agent, self.tools_of(ep))
        if built is None:
            return "changed"
        recorded = ep.traj.metadata.get("prompt_sha256")
        if not recorded:
            return "unverified"
        return "same" if recorded == built[1] else "changed"


def select(episodes: Sequence[Episode], filters: ExportFilters, check: PromptCheck) -> Selection:
    """Apply ``filters`` to ``episodes``: the kept ones (in input order) and the counts."""
    out = Selection()
    candidates: list[Episode] = []
    for ep in episodes:
        _judge(ep, filters.answers)
        reason = _first_failure(ep, filters, check)
        if reason is None and filters.held_out is not None:
            hit = filters.held_out.match(ep.task_id, ep.task)
            if hit is not None:
                if hit.strict and not filters.held_out.drop:
                    out.held_out.append(hit)
                reason = "held_out"
        if reason is not None:
            out.dropped[reason] += 1
            continue
        if check.verdict(ep) == "unverified":
            out.notes["prompt_unverified"] += 1
        candidates.append(ep)
    out.kept = _dedup(candidates, out.dropped) if filters.dedup == "task" else candidates
    return out


def _judge(ep: Episode, answers: AnswerKey | None) -> None:
    """Give ``ep`` the answer key's gold and verdict when its own record had none."""
    if answers is None or ep.correct is not None:
        return
    gold = answers.gold(ep)
    if gold is not None:
        ep.gold = gold
        ep.correct = ep.traj.status == "solved" and is_correct(ep.traj.final_answer, gold)


def _first_failure(ep: Episode, f: ExportFilters, check: PromptCheck) -> str | None:
    traj = ep.traj
    checks: list[tuple[str, Callable[[], bool]]] = [
        ("other_agent", lambda: traj.agent not in EXPORTABLE_AGENTS),
        ("agent_filter", lambda: f.agent is not None and traj.agent != f.agent),
        ("run_error", lambda: traj.status == "error" or not traj.steps),
        ("native_tool_calls", lambda: traj.metadata.get("tool_protocol") == "native"
         or any(s.tool_call_id is not None for s in traj.steps)),
        ("parse_errors", lambda: not f.keep_parse_errors and any(s.kind == "parse_error" for s in traj.steps)),
        ("hint", lambda: f.exclude_hints and ep.hint),
        ("no_gold", lambda: f.solved_only and ep.correct is None and f.answers is not None),
        ("not_solved", lambda: f.solved_only and not (ep.correct if ep.correct is not None
                                                      else traj.status == "solved")),
        ("below_min_score", lambda: f.min_score is not None and ep.score is not None and ep.score < f.min_score),
        ("not_voted", lambda: f.voted_only and ep.voted is False),
        ("prompt_changed", lambda: check.prefix(ep) is None  # a tool that no longer exists: no prompt at all
         or (not f.allow_prompt_drift and check.verdict(ep) == "changed")),
    ]
    return next((reason for reason, failed in checks if failed()), None)


def _dedup(episodes: list[Episode], dropped: Counter[str]) -> list[Episode]:
    """One episode per task (by normalized question): right first, then best score, fewest steps, fewest tokens."""
    best: dict[str, Episode] = {}
    for ep in episodes:
        key = question_key(ep.task)
        if key not in best or _rank(ep) > _rank(best[key]):
            best[key] = ep
    dropped["duplicate_task"] += len(episodes) - len(best)
    keep = {id(ep) for ep in best.values()}
    return [ep for ep in episodes if id(ep) in keep]


def _rank(ep: Episode) -> tuple[float, ...]:
    score = ep.score if ep.score is not None else float("-inf")
    return (float(bool(ep.correct)), score, -len(ep.traj.steps), -ep.traj.usage.completion_tokens)
