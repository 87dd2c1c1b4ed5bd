"""Play an episode with the env agent and turn a played episode into the suite's result.

The suites call :func:`play_episode` (the agent, from the evaluation context) and :func:`episode_result`
(for the agent's runs and the harness policies' alike).
"""

from __future__ import annotations

from typing import Any

from ponder.agents.env import EnvRun, run_env_agent
from ponder.core.environment import Env
from ponder.core.errors import ConfigError
from ponder.envs.base import Episode, EpisodeResult, EvalContext


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
                   metrics: dict[str, float] | None = None, metadata: dict[str, Any] | None = None) -> EpisodeResult:
    """The episode's :class:`EpisodeResult` (``score`` defaults to the total reward; failure from the status)."""
    status = run.trajectory.status
    failure = ""
    if run.error:
        failure = "env_error"
    elif not run.success:
        failure = {"max_steps": "max_steps", "parse_error": "parse_error"}.get(status, "wrong_answer")
    return EpisodeResult(
        episode_id=episode.id, suite=episode.suite, task=episode.task, tier=episode.tier, policy=policy,
        policy_kind="agent" if policy == "agent" else "harness", success=run.success,
        score=run.reward if score is None else score,
        metrics={"reward": run.reward, "success": float(run.success), **(metrics or {})},
        prediction=run.trajectory.final_answer, gold=episode.gold, status=status,
        failure=failure, error=run.error, usage=run.trajectory.usage, env_steps=run.env_steps,
        trajectory_ids=[run.trajectory.id], trajectory=run.trajectory, metadata=dict(metadata or {}))
