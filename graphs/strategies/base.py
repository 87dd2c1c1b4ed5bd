"""The strategy interface: how many times, and how, a task is attempted, as objects that wrap each other.

A :class:`Strategy` turns one task into one :class:`Outcome`: ``strategy.run(task, ctx, label=None)``.
The context (:class:`StrategyContext`) carries what every run needs (settings, model, the agent, tool and
executor factories, the open memory, where records go, progress callbacks); a strategy that wraps another
passes it a modified copy (:meth:`StrategyContext.derive`): self-consistency gives each sample its own
seed and a memory context holding its writes, trials numbers its attempts.

- ``Single(agent)``: one agent run (:func:`ponder.agents.runner.run_agent`).
- ``Trials(inner, attempts, learn)``: the inner strategy up to K times with memory carried between attempts
  (Reflexion reflections after failures, ExpeL insights after the attempts), stopping at the first success.
- ``SelfConsistency(inner, spec)``: N independent inner runs and a vote (with early stopping and budgets).
- ``WithMemory(inner, mode)``: opens the memory context for the task (its label included) around the inner.

``Trials(SelfConsistency(Single))`` votes in every attempt and reflects on the voted answer's failure;
``SelfConsistency(Trials(Single))`` votes over samples that are each a trials run with memory of their own
(held writes: only the chosen sample's reach the store). :func:`ponder.graphs.strategies.build.build_strategy`
builds them from a :class:`~ponder.graphs.strategies.spec.RunSpec`.

**How a search strategy plugs in.** A tree search (expand / score / back up partial trajectories) is one
more ``Strategy``: its ``run`` expands nodes by running an inner strategy (or the agent kernel step by step)
from a node's partial trajectory, scores the results with a verifier or value model, backs the scores up,
and returns an :class:`Outcome` whose ``trajectories`` are the explored paths, whose ``candidates`` are the
scored leaves (:class:`Candidate`: answer, score, trajectory index), whose ``attempts`` are the child
outcomes (the tree) and whose ``answer`` / ``chosen`` is the best leaf. Because it only consumes and returns
this interface, ``Trials(Search(...))`` and ``SelfConsistency(Search(...))`` compose without changes, and
usage adds up through ``Usage.__add__``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from ponder.core.answers import AnswerKind
from ponder.core.records import Step, Trajectory, Usage
from ponder.core.settings import Settings
from ponder.core.types import AgentName, Status
from ponder.models.base import ModelBackend

if TYPE_CHECKING:
    from ponder.core.environment import Env
    from ponder.memory.context import MemoryContext
    from ponder.memory.schema import MemoryStore
    from ponder.tools.base import Tool
    from ponder.tools.executor import CodeExecutor

#: What produced an outcome.
OutcomeKind = Literal["single", "trials", "self_consistency", "memory", "best_of_n", "beam", "lats", "refine",
                      "adaptive"]


class Candidate(BaseModel):
    """A scored answer: a vote row of self-consistency, a leaf of a search."""

    answer: str | None = None
    key: str | None = Field(None, description="The normalized answer (what the vote or scorer compared).")
    score: float = Field(0.0, description="Votes, vote weight, verifier score or backed-up value.")
    trajectories: list[int] = Field(default_factory=list, description="Indices into Outcome.trajectories.")


class Outcome(BaseModel):
    """What a strategy made of one task.

    Attributes:
        kind: The strategy that produced it.
        task: The task.
        answer: The final answer (``None``: none).
        status: How it ended (the chosen trajectory's status; ``error`` when nothing ran).
        trajectories: Every trajectory run, in order (attempts, samples, explored paths).
        chosen: Index into ``trajectories`` of the one that stands for the answer (``None``: none).
        usage: Everything spent, judge and reflection calls of the wrappers included.
        candidates: Scored answers, best first (votes; leaves of a search).
        attempts: The inner outcomes (trials' attempts, self-consistency's samples), in order.
        records: Records made besides the trajectories, inner ones included, in order (e.g. one
            ``SelfConsistencyResult`` per trial of a trials-of-votes run).
        metadata: Strategy-specific facts (stop reason, agreement, insights, ...).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    kind: OutcomeKind
    task: str
    answer: str | None = None
    status: Status = "error"
    trajectories: list[Trajectory] = Field(default_factory=list)
    chosen: int | None = None
    usage: Usage = Field(default_factory=Usage)
    candidates: list[Candidate] = Field(default_factory=list)
    attempts: list[Outcome] = Field(default_factory=list)
    records: list[BaseModel] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def trajectory(self) -> Trajectory | None:
        """The chosen trajectory."""
        return self.trajectories[self.chosen] if self.chosen is not None else None

    @classmethod
    def of(cls, kind: OutcomeKind, task: str, attempts: list[Outcome], chosen: Outcome | None, *,
           extra: Usage | None = None, **fields: Any) -> Outcome:
        """An outcome made of inner ``attempts``: their trajectories and records in order, ``chosen``'s answer."""
        trajectories = [t for a in attempts for t in a.trajectories]
        fields["records"] = [r for a in attempts for r in a.records] + list(fields.get("records", []))
        index = None
        if chosen is not None and chosen.trajectory is not None:
            index = next(i for i, t in enumerate(trajectories) if t is chosen.trajectory)
        usage = sum((a.usage for a in attempts), extra or Usage())
        return cls(kind=kind, task=task, answer=chosen.answer if chosen else None,
                   status=chosen.status if chosen else "error", trajectories=trajectories, chosen=index,
                   usage=usage, attempts=attempts, **fields)


@dataclass
class StrategyContext:
    """What a strategy run needs besides the task.

    Attributes:
        settings: Effective settings (sampling, step caps, memory settings, ``out_dir``).
        model: The backend every run shares.
        agent: The agent that runs (``react`` or ``pal``).
        tools: Makes ReAct tools for one run (default: ``settings.tools``, fresh per run).
        executor: Makes a PAL executor for one run (default: a fresh sandbox session per run).
        memory: The open memory context (``None``: memory off); set by :class:`WithMemory`.
        store: The memory store :class:`WithMemory` uses (default: opened from the settings, closed after).
        task_family: Stored with every memory (e.g. ``gsm8k``).
        answer_kind: How answers are compared with a label (success of a trial).
        out_dir: Where records are appended (default: ``settings.out_dir``).
        write: Append trajectories and records (samples of a vote run with ``False``).
        on_step: Called with each step of every run (not inside self-consistency samples, which run in parallel).
        on_attempt: Called with the number (from 1) and outcome of each trial (not inside samples).
        on_sample: Called with each finished self-consistency sample (from the sample's thread).
        metadata: Stored with every trajectory.
        env: Makes a fresh, unreset environment (an env episode: ``Single`` plays it with the env agent; searches
            fork it); ``None``: a question for ``agent``.
        max_steps: The step cap of each run (default: ``settings.max_steps``; env suites pass the tier's).
        max_reward: The most reward the environment gives (``env`` verifier normalization), if known.
    """

    settings: Settings
    model: ModelBackend
    agent: AgentName = "react"
    tools: Callable[[], list[Tool]] | None = None
    executor: Callable[[], CodeExecutor] | None = None
    memory: MemoryContext | None = None
    store: MemoryStore | None = None
    task_family: str = ""
    answer_kind: AnswerKind = "auto"
    out_dir: Path | None = None
    write: bool = True
    on_step: Callable[[Step], None] | None = None
    on_attempt: Callable[[int, Outcome], None] | None = None
    on_sample: Callable[[Any], None] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    env: Callable[[], Env] | None = None
    max_steps: int | None = None
    max_reward: float | None = None

    def derive(self, *, metadata: dict[str, Any] | None = None, **changes: Any) -> StrategyContext:
        """A copy with ``changes``; ``metadata`` is merged into the current metadata."""
        if metadata:
            changes["metadata"] = {**self.metadata, **metadata}
        return dataclasses.replace(self, **changes)


@runtime_checkable
class Strategy(Protocol):
    """Runs one task and returns its :class:`Outcome`."""

    def run(self, task: str, ctx: StrategyContext, label: str | None = None) -> Outcome:
        """Attempt ``task``; ``label`` (the gold answer, when known) decides success."""
        ...
