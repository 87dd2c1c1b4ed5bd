"""``run_trials``: the same task up to K times, learning between trials (Reflexion) and after them (ExpeL).

Each trial is one :func:`~ponder.agents.runner.run_agent` call with the same :class:`MemoryContext`: a failed
trial leaves a reflection that the next trial retrieves (the same task is the most similar one), a successful
trial is stored as an experience. The loop stops at the first success: a correct answer when ``label`` is
known, else status ``solved``. With ExpeL on, insights are then extracted by comparing each failed trial with
the successful one, or, when the first trial succeeded, from a batch of similar successful experiences.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ponder.core.answers import AnswerKind
from ponder.core.errors import ConfigError
from ponder.core.records import Step, Trajectory
from ponder.core.settings import Settings, load_settings
from ponder.memory.context import MODES, MemoryContext, MemoryMode
from ponder.memory.experience import compact_trajectory, retrieve_experiences
from ponder.memory.insights import InsightUpdate, compare_trajectories, learn_from_successes
from ponder.memory.reflection import failure_reason
from ponder.memory.schema import MemoryStore
from ponder.models.base import GenerationParams, ModelBackend
from ponder.tools.base import Tool
from ponder.tools.executor import CodeExecutor


def open_memory(settings: Settings, mode: str, *, store: MemoryStore | None = None, namespace: str | None = None,
                task_family: str = "", label: str | None = None,
                answer_kind: AnswerKind = "auto") -> MemoryContext | None:
    """The memory context for ``mode`` (``None`` for ``none``), opening the configured store when none is given.

    Raises:
        ConfigError: for an unknown mode.
    """
    if mode not in MODES:
        raise ConfigError(f"unknown memory mode {mode!r}; choose one of: {', '.join(MODES)}")
    if mode == "none":
        return None
    if store is None:
        from ponder.memory.store import open_store

        store = open_store(settings)
    return MemoryContext(store=store, mode=mode, namespace=namespace or settings.memory_namespace,  # type: ignore[arg-type]
                         k=settings.memory_k, task_family=task_family, label=label, answer_kind=answer_kind)


def run_trials(
    task: str,
    *,
    trials: int = 3,
    memory: MemoryMode = "both",
    label: str | None = None,
    settings: Settings | None = None,
    model: ModelBackend | None = None,
    store: MemoryStore | None = None,
    agent: str | None = None,
    namespace: str | None = None,
    task_family: str = "",
    answer_kind: AnswerKind = "auto",
    tools: list[Tool] | None = None,
    executor: CodeExecutor | None = None,
    on_step: Callable[[Step], None] | None = None,
    on_trial: Callable[[int, Trajectory], None] | None = None,
    out_dir: str | Path | None = None,
    write: bool = True,
    learn: bool = True,
) -> list[Trajectory]:
    """Run ``task`` up to ``trials`` times with memory, stopping at the first success.

    Args:
        task: The question.
        trials: Most trials (K >= 1).
        memory: ``reflexion``, ``expel``, ``both`` or ``none`` (plain retries).
        label: The gold answer: success then means a correct answer (:func:`ponder.core.answers.is_correct`).
        settings: Settings (default: :func:`~ponder.core.settings.load_settings`).
        model: The backend, shared by every trial (default: loaded from ``settings.model``).
        store: The memory store (default: ``open_store(settings)`` from :mod:`ponder.memory.store`).
        agent: ``react`` or ``pal`` (default: ``settings.agent``).
        namespace: Memory namespace (default: ``settings.memory_namespace``).
        task_family: Stored with every memory (e.g. ``gsm8k``).
        answer_kind: How the answer is compared with ``label``.
        tools: ReAct tools (default: fresh ones per trial).
        executor: PAL executor (default: a fresh sandbox per trial).
        on_step: Called with each step of every trial.
        on_trial: Called with the trial number (from 1) and its trajectory after each trial.
        out_dir: Where trajectories are appended (default: ``settings.out_dir``).
        write: Set ``False`` to skip writing the records.
        learn: Extract ExpeL insights after the trials (when ExpeL is on).

    Returns:
        The trajectories, one per trial run; each has ``metadata["trial"]`` and, with memory on,
        ``metadata["memory"]`` (what was retrieved and written). The insight updates made after the trials
        are attached to the last one as ``metadata["insights"]`` (in the returned object only: its record was
        written before them).

    Raises:
        ConfigError: for ``trials < 1`` or an unknown memory mode.
    """
    from ponder.agents.runner import run_agent
    from ponder.models.spec import load_model

    if trials < 1:
        raise ConfigError(f"trials must be at least 1 (got {trials})")
    settings = settings or load_settings()
    model = model or load_model(settings.model, settings)
    ctx = open_memory(settings, memory, store=store, namespace=namespace, task_family=task_family, label=label,
                      answer_kind=answer_kind)
    out: list[Trajectory] = []
    try:
        for trial in range(1, trials + 1):
            traj = run_agent(task, agent=agent, settings=settings, model=model, tools=tools, executor=executor,
                             on_step=on_step, out_dir=out_dir, write=write, memory=ctx,
                             metadata={"trial": trial, "trials": trials})
            out.append(traj)
            if on_trial is not None:
                on_trial(trial, traj)
            if succeeded(traj, label, answer_kind):
                break
        if ctx is not None and ctx.expel and learn:
            params = GenerationParams(temperature=settings.temperature, top_p=settings.top_p,
                                      max_tokens=settings.max_tokens, seed=settings.seed)
            updates = learn_insights(ctx, model, params, out, label, answer_kind)
            if updates:
                out[-1].metadata["insights"] = [_summary(u) for u in updates]
    finally:
        if ctx is not None and store is None:  # we opened it
            close = getattr(ctx.store, "close", None)
            if close is not None:
                close()
    return out


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
