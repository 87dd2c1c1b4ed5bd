"""The options of one evaluation run and how a worker turns them into an :class:`EvalContext`.

:class:`EvalOptions` is plain data (picklable), so process workers rebuild their context from it:
each worker loads the model once (:func:`ponder.models.spec.load_model` caches it per process) and
opens the memory store once.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from ponder.core.errors import ConfigError
from ponder.core.settings import Settings
from ponder.envs.base import Episode, EpisodeResult, EvalContext, FailureKind, policy_kind
from ponder.graphs.strategies.spec import RunSpec, parse_spec

if TYPE_CHECKING:
    from ponder.models.base import ModelBackend


class EvalOptions(RunSpec):
    """Everything ``ponder eval`` was asked for besides the settings (model, seed live there).

    An evaluation's options *are* a :class:`~ponder.graphs.strategies.spec.RunSpec` (agent, samples, vote,
    trials, memory, ...: declared and validated there, once) plus what to evaluate and how the run is
    organized. ``agent`` ``None`` means the settings' agent; ``memory`` ``None`` means no memory.
    Bad strategy options raise :class:`~ponder.core.errors.ConfigError` naming the option.
    """

    suite: str
    data: Path | None = None
    limit: int | None = Field(None, ge=1)
    policy: str = "agent"
    workers: int = Field(1, ge=1, le=256)
    timeout: float = Field(600.0, gt=0)
    out_dir: Path = Path("runs/eval")
    resume: bool = False
    extra: dict[str, Any] = Field(default_factory=dict)
    budget_total: str | None = Field(None, description="Tokens for the whole suite ('200000t'), spread by "
                                                       "--strategy adaptive (ponder.envs.adaptive).")

    def __init__(self, **data: Any) -> None:
        spec = parse_spec({k: v for k, v in data.items() if k in RunSpec.model_fields})  # one line per bad option
        if data.get("budget_total") is not None:
            data["budget_total"] = check_budget_total(data["budget_total"], spec)
        super().__init__(**data)

    @model_validator(mode="before")
    @classmethod
    def _no_memory_unless_asked(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("memory") is None:
            return {**data, "memory": "none"}
        return data


def check_budget_total(text: str, spec: RunSpec) -> str:
    """``--budget-total`` as given (stripped), checked: a budget ``Budget.parse`` reads, with ``--strategy adaptive``.

    Raises:
        ConfigError: one line naming ``--budget-total``.
    """
    from ponder.graphs.self_consistency.stopping import Budget

    if spec.strategy_name != "adaptive":
        raise ConfigError(f"--budget-total applies to --strategy adaptive (got --strategy {spec.strategy_name})")
    try:
        Budget.parse(text)
    except ConfigError as exc:
        raise ConfigError(f"--budget-total: {exc}") from None
    return str(text).strip()


def build_context(options: EvalOptions, settings: Settings, model: ModelBackend | None = None) -> EvalContext:
    """A worker's context: the model loaded once (none for harness policies), memory opened once.

    Args:
        options: The run's options.
        settings: Effective settings.
        model: Use this backend instead of loading ``settings.model`` (thread workers, tests, the Python API).
    """
    if options.policy != "agent":
        model = None
    elif model is None:
        from ponder.models.spec import load_model

        model = load_model(settings.model, settings)
    memory_context = None
    if options.memory not in (None, "none"):
        from ponder.graphs.strategies.trials import open_memory

        memory_context = open_memory(settings, options.memory, namespace=None, task_family=options.suite)
    own = options.model_dump(include=set(RunSpec.model_fields))  # the run spec alone: what a suite runs
    spec = parse_spec({**own, "agent": options.agent or settings.agent, "memory": options.memory or "none"})
    return EvalContext(settings=settings, policy=options.policy, model=model, spec=spec,
                       memory_context=memory_context, out_dir=options.out_dir, episode_timeout=options.timeout,
                       extra=dict(options.extra))


def with_deadline(ctx: EvalContext, deadline: float) -> EvalContext:
    """A copy of ``ctx`` for one episode; ``extra["deadline"]`` is its ``time.monotonic()`` deadline.

    Suites may check it between steps (see :func:`past_deadline`) to stop a timed-out episode early;
    the runner records the timeout either way.
    """
    return dataclasses.replace(ctx, extra={**ctx.extra, "deadline": deadline})


def past_deadline(ctx: EvalContext) -> bool:
    """Whether this episode's deadline (set by the runner) has passed."""
    import time

    deadline = ctx.extra.get("deadline")
    return deadline is not None and time.monotonic() > deadline


class EpisodeTimeoutError(Exception):
    """Raised inside a suite (e.g. from an ``on_step`` callback) once the episode's deadline has passed."""


def failed_result(episode: Episode, options: EvalOptions | EvalContext, failure: FailureKind, error: str,
                  status: str = "error") -> EpisodeResult:
    """The record of an episode the runner had to fail itself (timeout, crash, dead worker)."""
    policy = options.policy
    spec = options if isinstance(options, RunSpec) else options.spec
    return EpisodeResult(episode_id=episode.id, suite=episode.suite, task=episode.task, tier=episode.tier,
                         gold=episode.gold, policy=policy, policy_kind=policy_kind(policy),
                         success=False, score=0.0, status=status, failure=failure, error=error,
                         samples=spec.samples, trials=spec.trials)
