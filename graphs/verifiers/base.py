"""The verifier protocol: score a finished or partial trajectory in [0, 1], with what the scoring cost.

A :class:`Trace` is what a verifier sees: the task, the agent's steps so far and, for environments, the reward
and outcome (a :class:`~ponder.core.records.Trajectory` converts with :meth:`Trace.from_trajectory`; the search
stepper builds traces of partial runs). A :class:`Verifier` returns a :class:`Score`: the value in [0, 1], the
tokens and model calls it spent (strategies add them to the run's usage, so budgets count verifier calls), and
optionally one value per step (a process reward model).

Verifiers (``build_verifier`` in :mod:`ponder.graphs.verifiers.registry` parses ``"self:0.5,env"``):

- ``env`` — the environment's success and (normalized) reward;
- ``execution`` — PAL: the program ran and returned a value of the expected kind; code: the visible tests
  (the docstring's examples) pass in the sandbox, through the trusted grader;
- ``self`` — the model rates the trajectory; the expected value over the score tokens' probabilities;
- ``prm`` — a process reward model: the probability of the "good step" token after each step;
- ``agreement`` — self-consistency's vote share of the trace's answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from ponder.core.answers import AnswerKind
from ponder.core.records import Step, Trajectory, Usage
from ponder.core.settings import Settings
from ponder.core.types import Status
from ponder.models.base import ModelBackend

if TYPE_CHECKING:
    from ponder.tools.executor import CodeExecutor


class Trace(BaseModel):
    """A finished or partial attempt, as a verifier sees it.

    Attributes:
        task: The task (question, game objective, code prompt).
        agent: ``react``, ``pal`` or ``env``.
        steps: The steps so far.
        final_answer: The answer, when the run gave one.
        status: How it ended; ``None`` for a partial trace (the run goes on).
        reward: The environment's total reward so far (0 outside environments).
        max_reward: The most reward the environment gives (``None``: unknown).
        done: The environment said the episode is over.
        won: The environment's verdict (``None``: not an environment, or not over).
        progress: The environment's intermediate rewards summed (TextWorld's quest progress), when it gives them.
    """

    task: str
    agent: str = "react"
    steps: list[Step] = Field(default_factory=list)
    final_answer: str | None = None
    status: Status | None = None
    reward: float = 0.0
    max_reward: float | None = None
    done: bool = False
    won: bool | None = None
    progress: float | None = None

    @property
    def partial(self) -> bool:
        """Whether the run is still going (no status yet)."""
        return self.status is None

    @classmethod
    def from_trajectory(cls, traj: Trajectory, *, max_reward: float | None = None) -> Trace:
        """The trace of a finished trajectory (env runs: reward and outcome from its metadata)."""
        env = traj.agent == "env"
        won = (traj.status == "solved") if env else None
        return cls(task=traj.task, agent=traj.agent, steps=list(traj.steps), final_answer=traj.final_answer,
                   status=traj.status, reward=float(traj.metadata.get("reward", 0.0) or 0.0),
                   max_reward=max_reward, done=env and traj.final_answer in ("won", "lost"), won=won,
                   progress=traj.metadata.get("progress"))


class Score(BaseModel):
    """A verifier's verdict on one trace.

    Attributes:
        value: In [0, 1]; higher is better.
        per_step: One value per step (process reward models), else ``None``.
        prompt_tokens: Prompt tokens the verifier's model calls cost.
        completion_tokens: Completion tokens they cost.
        model_calls: Model calls made.
        detail: One line saying why (shown in records and reports; feedback for ``refine``).
        parts: The components' values of a combined verifier, by name.
    """

    value: float = Field(ge=0.0, le=1.0)
    per_step: list[float] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_calls: int = 0
    detail: str = ""
    parts: dict[str, float] = Field(default_factory=dict)

    @property
    def usage(self) -> Usage:
        """What this score cost, as a :class:`Usage` (to add to a run's)."""
        return Usage(prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
                     model_calls=self.model_calls)


@dataclass
class VerifyContext:
    """What a verifier may use besides the trace.

    Attributes:
        model: The run's model (the ``self`` verifier asks it; ``prm`` uses it when no PRM spec is given).
        settings: Effective settings.
        answer_kind: How answers compare (``number`` for GSM8K; ``code`` for HumanEval).
        executor: Makes a sandbox session (``execution`` runs visible tests through the trusted grader).
        votes: Answer key -> vote share of the samples so far (``agreement``); ``None``: no vote.
        entry_point: The function a code task must define (``execution`` on code), if known.
    """

    model: ModelBackend
    settings: Settings
    answer_kind: AnswerKind = "auto"
    executor: Callable[[], CodeExecutor] | None = None
    votes: dict[str, float] | None = None
    entry_point: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class Verifier(Protocol):
    """Scores a trace in [0, 1].

    Attributes:
        name: The verifier's name (``self``, ``env``, ``self:0.5+env:0.5`` for a combination).
    """

    name: str

    def score(self, trace: Trace, ctx: VerifyContext) -> Score:
        """Score ``trace`` (finished or partial); never raises on the model's output (a bad reply scores 0.5)."""
        ...
