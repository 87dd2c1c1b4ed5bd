"""Play an episode with the env agent (or a strategy) and turn a played episode into the suite's result.

The suites call :func:`play_episode` (the agent, from the evaluation context), :func:`play_strategy` (the run
spec's strategy when it is not one plain agent run: self-consistency, trials, best-of-N, a search, ...) and
:func:`episode_result` (for the agent's runs, the baselines' and the harness policies' alike).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ponder.agents.env import TRAJECTORY_FILE, EnvRun, run_env_agent
from ponder.core.environment import Env
from ponder.core.errors import ConfigError
from ponder.core.io import append_jsonl
from ponder.core.records import Trajectory, Usage
from ponder.envs.base import Episode, EpisodeResult, EvalContext, policy_kind
from ponder.graphs.strategies.base import Outcome, StrategyContext
from ponder.graphs.strategies.spec import RunSpec


def play_episode(env: Env, episode: Episode, ctx: EvalContext, *, max_steps: int | None = None,
                 write: bool = True) -> EnvRun:
    """Reset ``env`` and play ``episode`` with ``ctx.model`` (remembering with ``ctx.memory_context``, if any).

    Args:
        env: The environment (the caller closes it).
        episode: The episode (its ``task`` becomes the trajectory's task).
        ctx: The evaluation context (model, settings, memory, output folder, ``extra["show_actions"]``).
        max_steps: Model calls allowed (default: ``ctx.settings.max_steps``).
        write: Append the trajectory to ``ctx.out_dir / trajectories.jsonl``.

    Raises:
        ConfigError: when the context has no model.
    """
    if ctx.model is None:
        raise ConfigError("the env agent needs a model (ctx.model is None)")
    return run_env_agent(env, episode.task, model=ctx.model, settings=ctx.settings, memory=ctx.memory_context,
                         out_dir=ctx.out_dir, max_steps=max_steps,
                         show_actions=bool(ctx.extra.get("show_actions", True)),
                         metadata={"episode_id": episode.id, "suite": episode.suite}, write=write)


def episode_result(run: EnvRun, episode: Episode, *, policy: str = "agent", score: float | None = None,
                   metrics: dict[str, float] | None = None, metadata: dict[str, Any] | None = None,
                   outcome: Outcome | None = None, spec: RunSpec | None = None) -> EpisodeResult:
    """The episode's :class:`EpisodeResult` (``score`` defaults to the total reward; failure from the status).

    With the ``outcome`` of a strategy (``run`` from :func:`play_strategy`) and its ``spec``, usage is everything
    the strategy spent, ``env_steps`` the steps of all its trajectories, ``trajectory_ids`` all of them, and
    ``metadata`` gets ``strategy`` (the spec's strategy name) and the outcome's metadata.
    """
    status = run.trajectory.status
    failure = ""
    if run.error:
        failure = "env_error"
    elif not run.success:
        failure = {"max_steps": "max_steps", "parse_error": "parse_error"}.get(status, "wrong_answer")
    result = EpisodeResult(
        episode_id=episode.id, suite=episode.suite, task=episode.task, tier=episode.tier, policy=policy,
        policy_kind=policy_kind(policy), success=run.success,
        score=run.reward if score is None else score,
        metrics={"reward": run.reward, "success": float(run.success), **(metrics or {})},
        prediction=run.trajectory.final_answer, gold=episode.gold, status=status,
        failure=failure, error=run.error, usage=run.trajectory.usage, env_steps=run.env_steps,
        trajectory_ids=[run.trajectory.id], trajectory=run.trajectory, metadata=dict(metadata or {}))
    if outcome is None:
        return result
    spec = spec or RunSpec()
    return result.model_copy(update={
        "usage": outcome.usage, "env_steps": sum(_env_steps(t) for t in outcome.trajectories),
        "samples": int(outcome.metadata.get("samples_run", spec.samples)),
        "trials": len(outcome.attempts) if outcome.kind == "trials" else 1,
        "trajectory_ids": [t.id for t in outcome.trajectories],
        "metadata": {**result.metadata, **outcome.metadata, "strategy": spec.strategy_name}})


def plain_single(spec: RunSpec) -> bool:
    """Whether ``spec`` is one plain agent run (the suites' own path, :func:`play_episode`)."""
    return spec.strategy_name == "single" and spec.samples == 1 and spec.trials == 1


def play_strategy(make_env: Callable[[], Env], episode: Episode, ctx: EvalContext, *, max_steps: int | None,
                  max_reward: float | None = None) -> tuple[EnvRun, Outcome]:
    """Run the strategy of ``ctx.spec`` on ``episode``, each of its runs in a fresh env from ``make_env``.

    The chosen trajectory becomes the :class:`EnvRun` (success: it won); every trajectory the strategy did not
    write itself (a vote's samples, a search's paths) is appended to ``trajectories.jsonl`` here.

    Args:
        make_env: Makes a fresh, unreset environment of this episode (each run, fork or sample gets its own).
        episode: The episode.
        ctx: The evaluation context (model, settings, run spec, memory, output folder).
        max_steps: The step cap of each run (the tier's).
        max_reward: The most reward the environment gives (for the ``env`` verifier), if known.

    Raises:
        ConfigError: when the context has no model.
    """
    from ponder.graphs.strategies.build import build_strategy

    if ctx.model is None:
        raise ConfigError("the env agent needs a model (ctx.model is None)")
    out_dir = Path(ctx.out_dir)
    store = ctx.memory_context.store if ctx.memory_context is not None else None
    sctx = StrategyContext(settings=ctx.settings, model=ctx.model, env=make_env, max_steps=max_steps,
                           max_reward=max_reward, out_dir=out_dir, store=store, task_family=episode.suite,
                           metadata={"episode_id": episode.id, "suite": episode.suite})
    outcome = build_strategy(ctx.spec).run(episode.task, sctx)
    for traj in outcome.trajectories:
        if "trajectory_path" not in traj.metadata:
            append_jsonl(out_dir / TRAJECTORY_FILE, traj)
    return _chosen_run(outcome, episode, ctx), outcome


def _chosen_run(outcome: Outcome, episode: Episode, ctx: EvalContext) -> EnvRun:
    """The :class:`EnvRun` of the outcome's chosen trajectory (success: it won).

    When the strategy chose none (a vote where no sample won), the run stands for the trajectory with the most
    reward (the last of equals), unsuccessful, so the failure says how the episodes ended (e.g. ``max_steps``).
    """
    traj, chosen = outcome.trajectory, True
    if traj is None and outcome.trajectories:
        traj, chosen = max(reversed(outcome.trajectories), key=lambda t: float(t.metadata.get("reward", 0.0))), False
    if traj is None:
        model = ctx.model.spec if ctx.model is not None else ""
        traj = Trajectory(task=episode.task, agent="env", model=model, status="error",
                          error=f"the {outcome.kind} strategy ran no trajectory",
                          metadata={"episode_id": episode.id, "suite": episode.suite})
        return EnvRun(trajectory=traj)
    won = chosen and traj.status == "solved" and traj.final_answer == "won"
    broken = traj.status == "error" and traj.final_answer is None and traj.error is not None
    return EnvRun(trajectory=traj, reward=float(traj.metadata.get("reward", 0.0)), done=traj.final_answer is not None,
                  success=won, env_steps=_env_steps(traj), error=traj.error if broken else None)


def _env_steps(traj: Trajectory) -> int:
    return int(traj.metadata.get("env_steps", 0))


def scripted_run(traj: Trajectory, *, reward: float, done: bool, won: bool, error: str | None, started: float,
                 out_dir: Path | None) -> EnvRun:
    """Close the record of an episode played without a model (walkthrough, random): usage, env facts, written.

    Args:
        traj: The trajectory with its steps and status set.
        reward: The total reward.
        done: The episode ended.
        won: The environment said it was won.
        error: Set when the environment failed.
        started: ``time.perf_counter()`` when the episode started.
        out_dir: When given, the trajectory is appended to ``out_dir/trajectories.jsonl``.
    """
    traj.usage = Usage(tool_calls=len(traj.steps), wall_seconds=round(time.perf_counter() - started, 4))
    traj.metadata.update({"reward": reward, "env_steps": len(traj.steps)})
    if out_dir is not None:
        append_jsonl(Path(out_dir) / TRAJECTORY_FILE, traj)
    return EnvRun(trajectory=traj, reward=reward, done=done, success=won and error is None,
                  env_steps=len(traj.steps), error=error)
