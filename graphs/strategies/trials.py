"""``Trials``: the same task up to K times, learning between trials (Reflexion) and after them (ExpeL).

Each trial is one run of the inner strategy (one agent run, or a whole self-consistency vote) with the same
:class:`~ponder.memory.context.MemoryContext` (opened by :class:`WithMemory`): a failed trial leaves a
reflection that the next trial retrieves (the same task is the most similar one), a successful trial is
stored as an experience. The loop stops at the first success: a correct answer when ``label`` is known,
else status ``solved``. With ExpeL on, insights are then extracted by comparing each failed trial with the
successful one, or, when the first trial succeeded, from a batch of similar successful experiences.

:func:`run_trials` is the function form (one agent per trial) kept for existing callers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.core.answers import AnswerKind
from ponder.core.errors import ConfigError
from ponder.core.records import Step, Trajectory
from ponder.core.settings import Settings, load_settings
from ponder.core.types import AgentName, MemoryMode, choices
from ponder.graphs.strategies.base import Outcome, Strategy, StrategyContext
from ponder.graphs.strategies.single import Single
from ponder.memory.context import MemoryContext
from ponder.memory.experience import compact_trajectory, retrieve_experiences
from ponder.memory.insights import InsightUpdate, compare_trajectories, learn_from_successes
from ponder.memory.reflection import failure_reason
from ponder.models.base import GenerationParams, ModelBackend

if TYPE_CHECKING:
    from ponder.memory.schema import MemoryStore
    from ponder.tools.base import Tool
    from ponder.tools.executor import CodeExecutor


def open_memory(settings: Settings, mode: str, *, store: MemoryStore | None = None, namespace: str | None = None,
                task_family: str = "", label: str | None = None,
                answer_kind: AnswerKind = "auto") -> MemoryContext | None:
    """The memory context for ``mode`` (``None`` for ``none``), opening the configured store when none is given.

    Raises:
        ConfigError: for an unknown mode.
    """
    if mode not in choices(MemoryMode):
        raise ConfigError(f"unknown memory mode {mode!r}; choose one of: {', '.join(choices(MemoryMode))}")
    if mode == "none":
        return None
    if store is None:
        from ponder.memory.store import open_store

        store = open_store(settings)
    return MemoryContext(store=store, mode=mode, namespace=namespace or settings.memory_namespace,  # type: ignore[arg-type]
                         k=settings.memory_k, task_family=task_family, label=label, answer_kind=answer_kind)


@dataclass
class WithMemory:
    """Runs ``inner`` with a memory context for the task (``mode`` ``none``: without memory).

    The context carries the task's label (a wrong answer is a failure worth a reflection). The store is the
    context's (``StrategyContext.store``) or, when none is given, opened from the settings and closed after.
    """

    inner: Strategy
    mode: MemoryMode = "both"
    namespace: str | None = None

    def run(self, task: str, ctx: StrategyContext, label: str | None = None) -> Outcome:
        """Open the memory, run the inner strategy with it, close a store it opened."""
        if self.mode == "none":
            return self.inner.run(task, ctx.derive(memory=None), label)
        store = ctx.store
        if store is None:
            from ponder.memory.store import open_store

            opened = store = open_store(ctx.settings)
        else:
            opened = None
        memory = open_memory(ctx.settings, self.mode, store=store, namespace=self.namespace,
                             task_family=ctx.task_family, label=label, answer_kind=ctx.answer_kind)
        try:
            return self.inner.run(task, ctx.derive(memory=memory), label)
        finally:
            if opened is not None:
                opened.close()


@dataclass
class Trials:
    """Runs ``inner`` up to ``attempts`` times with the context's memory, stopping at the first success.

    Attributes:
        inner: What one trial runs (``Single``, ``SelfConsistency``, ...).
        attempts: Most trials (K >= 1).
        learn: Extract ExpeL insights after the trials (when the memory has ExpeL on).
    """

    inner: Strategy
    attempts: int = 3
    learn: bool = True

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError(f"trials must be at least 1 (got {self.attempts})")

    def run(self, task: str, ctx: StrategyContext, label: str | None = None) -> Outcome:
        """Run the trials; the outcome's answer is the last trial's (the first success, or the last failure).

        Each trial's trajectories carry ``metadata["trial"]`` / ``["trials"]``; ExpeL insight updates go to
        ``metadata["insights"]`` of the outcome and of the last trial's chosen trajectory.
        """
        done: list[Outcome] = []
        for trial in range(1, self.attempts + 1):
            outcome = self.inner.run(task, ctx.derive(metadata={"trial": trial, "trials": self.attempts}), label)
            done.append(outcome)
            if ctx.on_attempt is not None:
                ctx.on_attempt(trial, outcome)
            if outcome_succeeded(outcome, label, ctx.answer_kind):
                break
        metadata: dict[str, Any] = {}
        if ctx.memory is not None and ctx.memory.expel and self.learn:
            params = GenerationParams(temperature=ctx.settings.temperature, top_p=ctx.settings.top_p,
                                      max_tokens=ctx.settings.max_tokens, seed=ctx.settings.seed)
            runs = [o.trajectory for o in done if o.trajectory is not None]
            updates = learn_insights(ctx.memory, ctx.model, params, runs, label, ctx.answer_kind)
            if updates:
                metadata["insights"] = [_summary(u) for u in updates]
                if done[-1].trajectory is not None:
                    done[-1].trajectory.metadata["insights"] = metadata["insights"]
        return Outcome.of("trials", task, done, done[-1], metadata=metadata)


def outcome_succeeded(outcome: Outcome, label: str | None = None, kind: AnswerKind = "auto") -> bool:
    """Whether an outcome succeeded: a correct answer when ``label`` is known, else status ``solved``."""
    return failure_reason(outcome.status, outcome.answer, label, kind) is None


def succeeded(traj: Trajectory, label: str | None = None, kind: AnswerKind = "auto") -> bool:
    """Whether a trial succeeded: a correct answer when ``label`` is known, else status ``solved``."""
    return failure_reason(traj.status, traj.final_answer, label, kind) is None


def learn_insights(ctx: MemoryContext, model: ModelBackend, params: GenerationParams, runs: list[Trajectory],
                   label: str | None = None, kind: AnswerKind = "auto") -> list[InsightUpdate]:
    """ExpeL insight extraction over the trials of one task.

    Each failed run is compared with the successful one; with no failure, the successful run is compared
    with up to ``k - 1`` similar successful experiences of *other* tasks (skipped when there are none).
    Nothing happens when no run succeeded.
    """
    wins = [t for t in runs if succeeded(t, label, kind)]
    if not wins:
        return []
    win = wins[-1]
    win_text = compact_trajectory(win.task, win.steps, win.final_answer, include_errors=False)
    fails = [t for t in runs if not succeeded(t, label, kind)]
    if fails:
        return [compare_trajectories(ctx, model, params, win.task,
                                     compact_trajectory(f.task, f.steps, f.final_answer), win_text)
                for f in fails]
    others = [h.record.text for h in retrieve_experiences(ctx, win.task, win.agent) if h.record.task != win.task]
    if not others:
        return []
    return [learn_from_successes(ctx, model, params, [win_text, *others[: max(1, ctx.k - 1)]])]


def _summary(update: InsightUpdate) -> dict[str, Any]:
    report = asdict(update.report)
    report["results"] = [r.model_dump(exclude_defaults=True) for r in update.report.results]
    return {"ops": [asdict(op) for op in update.parsed.ops], "invalid_lines": len(update.parsed.invalid),
            **report}


def run_trials(
    task: str, *, trials: int = 3, memory: MemoryMode = "both", label: str | None = None,
    settings: Settings | None = None, model: ModelBackend | None = None, store: MemoryStore | None = None,
    agent: AgentName | None = None, namespace: str | None = None, task_family: str = "",
    answer_kind: AnswerKind = "auto", tools: list[Tool] | None = None, executor: CodeExecutor | None = None,
    on_step: Callable[[Step], None] | None = None, on_trial: Callable[[int, Trajectory], None] | None = None,
    out_dir: str | Path | None = None, write: bool = True, learn: bool = True,
) -> list[Trajectory]:
    """Run ``task`` up to ``trials`` times with memory, stopping at the first success (one agent run per trial).

    The function form of ``WithMemory(Trials(Single(agent, tools, executor), trials, learn), memory)``; the
    arguments are the fields of :class:`Trials`, :class:`WithMemory`, :class:`Single` and
    :class:`~ponder.graphs.strategies.base.StrategyContext` (defaults: settings from
    :func:`~ponder.core.settings.load_settings`, the model loaded from ``settings.model``).

    Returns:
        The trajectories, one per trial run (``metadata["trial"]``, and ``metadata["memory"]`` with memory on;
        ExpeL insight updates in the last one's ``metadata["insights"]``).

    Raises:
        ConfigError: for ``trials < 1`` or an unknown memory mode.
    """
    from ponder.models.spec import load_model

    strategy = WithMemory(Trials(Single(agent, tools, executor), trials, learn), memory, namespace)
    if memory not in choices(MemoryMode):
        raise ConfigError(f"unknown memory mode {memory!r}; choose one of: {', '.join(choices(MemoryMode))}")
    settings = settings or load_settings()
    model = model or load_model(settings.model, settings)

    def on_attempt(n: int, outcome: Outcome) -> None:
        if on_trial is not None and outcome.trajectory is not None:
            on_trial(n, outcome.trajectory)

    ctx = StrategyContext(settings=settings, model=model, agent=agent or settings.agent, store=store,  # type: ignore[arg-type]
                          task_family=task_family, answer_kind=answer_kind, on_step=on_step, on_attempt=on_attempt,
                          out_dir=Path(out_dir) if out_dir else None, write=write)
    return strategy.run(task, ctx, label).trajectories
