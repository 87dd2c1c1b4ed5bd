"""The environment protocol, the evaluation record, and what a suite must provide to the runner.

An :class:`Env` is a text environment: ``reset()`` gives the first observation (and the admissible
actions when the environment knows them), ``step(action)`` gives the next observation, a reward and
whether the episode is over. Invalid actions are answered the way the environment answers them (an
observation), never with an exception: only our own bugs or a broken environment process raise.

A :class:`Suite` turns a data file or a generated game set into :class:`Episode` objects and plays one
episode at a time into an :class:`EpisodeResult`, the one record that ``ponder eval`` appends to
``results.jsonl``. The runner (``envs/runner.py``) owns concurrency, resume, progress and reports; the
suites own data loading, scoring and the policy that plays (the agent or a harness-check policy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, Field

from ponder.core.records import Trajectory, Usage
from ponder.graphs.strategies.spec import RunSpec

if TYPE_CHECKING:
    from ponder.core.settings import Settings
    from ponder.envs.context import EvalOptions
    from ponder.memory.context import MemoryContext
    from ponder.models.base import ModelBackend


#: Who played an episode: the agent, a harness-check policy (walkthrough, hand-written solver), or a baseline
#: shown beside the agent's results (``random``: uniform over the admissible actions; no model).
PolicyKind = Literal["agent", "harness", "baseline"]

#: Policies whose results are baselines (a floor to compare the agent with), not harness checks.
BASELINE_POLICIES = frozenset({"random"})


def policy_kind(policy: str) -> PolicyKind:
    """The kind of ``policy``: ``agent``, ``baseline`` (:data:`BASELINE_POLICIES`) or else ``harness``."""
    if policy == "agent":
        return "agent"
    return "baseline" if policy in BASELINE_POLICIES else "harness"

#: Why an episode did not succeed (reports group failures by this).
FailureKind = Literal["", "wrong_answer", "no_answer", "max_steps", "parse_error", "timeout", "env_error",
                      "error", "tests_failed"]


class Episode(BaseModel):
    """One unit of evaluation: a question, a game, a web task."""

    id: str = Field(description="Unique within the suite and stable across machines (resume keys on it).")
    suite: str
    task: str = Field(description="The question or instruction shown to the agent.")
    gold: str | None = None
    tier: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


class EpisodeResult(BaseModel):
    """The record of one finished episode: one line of ``results.jsonl``."""

    episode_id: str
    suite: str
    task: str
    tier: str = ""
    policy: str = Field("agent", description="'agent', a baseline ('random') or a harness policy, e.g. 'walkthrough'.")
    policy_kind: PolicyKind = "agent"
    success: bool = False
    score: float = Field(0.0, description="The suite's main metric for this episode (reward, EM, pass).")
    metrics: dict[str, float] = Field(default_factory=dict, description="e.g. em, f1, reward.")
    prediction: str | None = None
    gold: str | None = None
    status: str = "error"
    failure: FailureKind = ""
    error: str | None = None
    usage: Usage = Field(default_factory=Usage)
    env_steps: int = 0
    samples: int = 1
    trials: int = 1
    trajectory_ids: list[str] = Field(default_factory=list)
    trajectory: Trajectory | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    finished: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


@dataclass
class EvalContext:
    """What a suite needs to play an episode (injected by the runner; one per worker).

    Attributes:
        settings: Effective settings (model, agent, max_steps, data_dir, ...).
        policy: ``agent`` or a harness policy name the suite offers (``walkthrough``, ``solver``).
        model: The backend, loaded once per worker; ``None`` for harness policies.
        spec: How an agent episode runs: agent, samples and vote, trials, memory mode, ... (a
            :class:`~ponder.graphs.strategies.spec.RunSpec`; suites with their own loop, e.g. envs, may ignore it;
            ``agent`` ``None``: the settings' agent).
        memory_context: An open memory context when ``spec.memory`` is on.
        out_dir: The run directory (trajectories go to ``out_dir/trajectories.jsonl``).
        episode_timeout: Seconds one episode may take.
        extra: Suite-specific options.
    """

    settings: Settings
    policy: str = "agent"
    model: ModelBackend | None = None
    spec: RunSpec = field(default_factory=RunSpec)
    memory_context: MemoryContext | None = None
    out_dir: Path = Path("runs/eval")
    episode_timeout: float = 600.0
    extra: dict[str, Any] = field(default_factory=dict)


class Suite(Protocol):
    """A named set of episodes and how to play and score one."""

    name: str
    #: Harness-check policies this suite offers besides ``agent`` (e.g. ``("walkthrough",)``).
    policies: tuple[str, ...]
    #: Whether episodes hold a heavy resource (game process, browser): the runner uses processes then.
    needs_process: bool

    def check_options(self, options: EvalOptions) -> None:
        """Reject options this suite cannot honour (raise :class:`~ponder.core.errors.ConfigError`)."""
        ...

    def episodes(self, settings: Settings, data: Path | None = None, limit: int | None = None) -> list[Episode]:
        """The suite's episodes in a stable order (``data`` replaces the shipped file; bad rows raise DataError)."""
        ...

    def run_episode(self, episode: Episode, ctx: EvalContext) -> EpisodeResult:
        """Play and score one episode. The model's failures are results; only our bugs raise."""
        ...
