"""The ``walkthrough`` harness policy: replay a game's stored walkthrough.

It must win every game; it checks the harness (generation, cache, env wrapper, scoring), never the agent,
and its results say so (``policy_kind="harness"``, ``metadata["harness_check"] = True``).
"""

from __future__ import annotations

import time
from pathlib import Path

from ponder.agents.env import EnvRun
from ponder.core.environment import Env
from ponder.core.records import Step, Trajectory
from ponder.envs.base import Episode
from ponder.envs.play import scripted_run

POLICY = "walkthrough"


def play_walkthrough(env: Env, episode: Episode, commands: list[str], out_dir: Path | None = None,
                     policy: str = POLICY) -> EnvRun:
    """Reset ``env`` and send ``commands`` in order (stopping when the game ends).

    Args:
        env: The environment (the caller closes it).
        episode: The episode (for the trajectory's task and metadata).
        commands: The walkthrough.
        out_dir: When given, the trajectory is appended to ``out_dir/trajectories.jsonl``.
        policy: The harness policy's name recorded in the trajectory.
    """
    start = time.perf_counter()
    traj = Trajectory(task=episode.task, agent=policy, model=f"harness:{policy}", backend="harness",
                      metadata={"episode_id": episode.id, "suite": episode.suite, "env": env.name,
                                "harness_check": True})
    reward, done, won, error = 0.0, False, False, None
    try:
        env.reset()
        for index, command in enumerate(commands):
            t0 = time.perf_counter()
            result = env.step(command)
            traj.steps.append(Step(index=index, kind="action", raw=command, action=command,
                                   observation=result.observation, tool_seconds=time.perf_counter() - t0))
            reward += result.reward
            done, won = result.done, bool(result.info.get("won", result.done and reward > 0))
            if done:
                break
        traj.status = "solved" if won else "error"
        traj.final_answer = "won" if won else "lost" if done else None
        if not won:
            traj.error = "the walkthrough did not win the game"
    except Exception as exc:  # a broken game or interpreter: a failed harness check, recorded
        error = f"{type(exc).__name__}: {exc}"
        traj.status, traj.error = "error", error
    return scripted_run(traj, reward=reward, done=done, won=won, error=error, started=start, out_dir=out_dir)
