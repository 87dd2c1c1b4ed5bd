"""The ``random`` baseline policy of the env suites: uniform over the admissible actions, no model.

It is the floor every agent result on an environment is shown beside (``ponder eval textworld --policy
random``): at each step it picks one of the actions the environment admits, uniformly, until the episode ends
or the step cap (the agent's: the tier's ``max_steps``) is reached. The choices are seeded per episode from
``settings.seed`` and the episode id, so a run is reproducible and episodes are independent of their order
and of the worker that plays them. Its results are ``policy_kind="baseline"`` (not a harness check) and its
trajectories have agent ``random``.

Environments that list their actions (TextWorld, ALFWorld) give them in ``admissible_actions``; others pass
an :data:`ActionSource` (MiniWoB: the actions on the elements of the page shown).
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from pathlib import Path

from ponder.agents.env import EnvRun
from ponder.core.environment import Env, EnvReset, EnvStep
from ponder.core.records import Step, Trajectory
from ponder.envs.base import Episode
from ponder.envs.play import scripted_run

POLICY = "random"

#: The actions to choose from after the reset or a step (empty: nothing to do, the episode stops).
ActionSource = Callable[[EnvReset | EnvStep], list[str]]


def admissible(answer: EnvReset | EnvStep) -> list[str]:
    """The environment's own admissible actions (``[]`` when it lists none)."""
    return list(answer.admissible_actions or [])


def episode_rng(seed: int | None, episode_id: str) -> random.Random:
    """The random generator of one episode: from ``seed`` (``None``: 0) and the episode id, stable everywhere."""
    digest = hashlib.sha256(f"{seed or 0}\0{episode_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def play_random(env: Env, episode: Episode, *, seed: int | None, max_steps: int, out_dir: Path | None = None,
                actions: ActionSource = admissible) -> EnvRun:
    """Reset ``env`` and take uniformly random actions until the episode ends or ``max_steps`` actions.

    Args:
        env: The environment (the caller closes it).
        episode: The episode (its id seeds the choices; its task is the trajectory's).
        seed: The run's seed (``settings.seed``).
        max_steps: The step cap (the agent's).
        out_dir: When given, the trajectory is appended to ``out_dir/trajectories.jsonl``.
        actions: Where the choices come from (default: the environment's admissible actions).

    Returns:
        The played episode; status ``solved`` (won), ``max_steps`` (cap reached), else ``error`` (lost, no
        action to take, or the environment failed: ``error`` set).
    """
    start = time.perf_counter()
    rng = episode_rng(seed, episode.id)
    traj = Trajectory(task=episode.task, agent=POLICY, model=f"baseline:{POLICY}", backend="baseline",
                      metadata={"episode_id": episode.id, "suite": episode.suite, "env": env.name, "seed": seed or 0,
                                "baseline": True, "max_steps": max_steps})
    reward, done, won, error = 0.0, False, False, None
    try:
        answer: EnvReset | EnvStep = env.reset()
        while len(traj.steps) < max_steps and not done:
            options = actions(answer)
            if not options:
                traj.error = "no admissible action to choose from"
                break
            action = rng.choice(options)
            t0 = time.perf_counter()
            answer = env.step(action)
            traj.steps.append(Step(index=len(traj.steps), kind="action", raw=action, action=action,
                                   observation=answer.observation, tool_seconds=time.perf_counter() - t0))
            reward += answer.reward
            done, won = answer.done, bool(answer.info.get("won"))
    except Exception as exc:  # a broken game or browser: a failed episode, recorded
        error = traj.error = f"{type(exc).__name__}: {exc}"
    traj.status = "solved" if won else "max_steps" if not done and error is None and not traj.error else "error"
    traj.final_answer = "won" if won else "lost" if done else None
    return scripted_run(traj, reward=reward, done=done, won=won, error=error, started=start, out_dir=out_dir)
