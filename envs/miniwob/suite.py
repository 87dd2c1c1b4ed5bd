"""The ``miniwob`` suite: MiniWoB++ web tasks in a real headless Chromium, played by the agent or a solver.

``episodes()`` crosses the task list with its seeds, seed-major (every task's seed 0, then every task's seed 1,
...), so ``--limit`` samples all tasks; ids are ``miniwob/<task>/seed<n>``. The list is ``tasks.json`` (``all``),
or under ``--policy solver`` its tasks that have a solver (``solvers``); ``data`` names either or a task file.
The instruction (MiniWoB's utterance) depends on the seed and is only known in the browser, so ``Episode.task``
is the task's description; the played episode's result (and the agent's trajectory) carries the utterance.

``run_episode()`` plays with ``ctx.policy``: ``agent`` through the env-agent graph (``graphs/env_agent.py``; a
run spec with a strategy, samples or trials runs that strategy, each run in a browser of its own), ``random``
(the baseline: uniform over the actions on the page's elements, :mod:`.candidates`), or ``solver``, a
hand-written solver (``solvers.py``: a harness check of the observation/action layer, never an agent result;
``metadata["harness_check"]``). A task without a solver (from a task file) is ``skipped``.

Each worker keeps one browser (per thread) for all its episodes, switching task pages in it; it is closed at
exit (or by :meth:`MiniWoBSuite.close`). Options in ``ctx.extra``: ``time_limit`` (seconds an episode may
take in the browser, or ``"task"`` for MiniWoB's own 10-20 s limits; default the episode timeout, so a slow
model is not failed by the page's timer) and ``max_steps`` (the agent's step cap; default
``settings.max_steps``).
"""

from __future__ import annotations

import atexit
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.core.errors import ConfigError
from ponder.envs.base import Episode, EpisodeResult, EvalContext
from ponder.envs.miniwob.browser import BrowserError, require_browser
from ponder.envs.miniwob.tasks import load_tasks

if TYPE_CHECKING:
    from ponder.agents.env import EnvRun
    from ponder.core.settings import Settings
    from ponder.envs.context import EvalOptions
    from ponder.envs.miniwob.env import MiniWoBEnv
    from ponder.envs.miniwob.solvers import SolverRun
    from ponder.graphs.strategies.base import Outcome

SOLVER_POLICY = "solver"
#: Names of the shipped task lists ``episodes(data=...)`` accepts besides a file.
ALL_LIST, SOLVERS_LIST = "all", "solvers"

_ENVS: dict[int, MiniWoBEnv] = {}
_ENVS_LOCK = threading.Lock()


def episode_id(task: str, seed: int) -> str:
    """The stable id of one task and seed."""
    return f"miniwob/{task}/seed{seed}"


def close_envs() -> None:
    """Close every browser this process opened for the suite."""
    with _ENVS_LOCK:
        envs = list(_ENVS.values())
        _ENVS.clear()
    for env in envs:
        env.close()


atexit.register(close_envs)


def _thread_env(task: str, time_limit: float | None) -> MiniWoBEnv:
    """The browser of the calling thread, switched to ``task`` (started on first use)."""
    from ponder.envs.miniwob.env import MiniWoBEnv

    key = threading.get_ident()
    with _ENVS_LOCK:
        env = _ENVS.get(key)
    if env is None:
        env = MiniWoBEnv(task, paths=require_browser())
        with _ENVS_LOCK:
            _ENVS[key] = env
    env.set_task(task)
    env.time_limit = time_limit
    return env


def _drop_env(env: MiniWoBEnv) -> None:
    with _ENVS_LOCK:
        for key, held in list(_ENVS.items()):
            if held is env:
                del _ENVS[key]
    env.close()


def time_limit_of(ctx: EvalContext) -> float | None:
    """The in-browser episode limit: ``ctx.extra["time_limit"]`` (seconds or ``"task"``), else the timeout."""
    value = ctx.extra.get("time_limit")
    if value is None:
        return float(ctx.episode_timeout)
    if str(value).lower() == "task":
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"time_limit must be seconds or 'task', not {value!r}") from None
    if seconds <= 0:
        raise ConfigError(f"time_limit must be positive, not {value!r}")
    return seconds


class MiniWoBSuite:
    """MiniWoB++ tasks × seeds in headless Chromium.

    Args:
        tasks_file: The task list (default: the shipped ``tasks.json``; ``episodes(data=...)`` overrides it).
    """

    name = "miniwob"
    policies: tuple[str, ...] = (SOLVER_POLICY, "random")
    needs_process = True

    def __init__(self, tasks_file: Path | None = None) -> None:
        self.tasks_file = tasks_file
        self.policy = "agent"

    def check_options(self, options: EvalOptions) -> None:
        """Remember the run's policy: under ``solver`` the default task list is the tasks that have a solver."""
        self.policy = options.policy

    def episodes(self, settings: Settings, data: Path | None = None, limit: int | None = None) -> list[Episode]:
        """Tasks × seeds, seed-major, in file order within a seed.

        ``data`` is a task file, or a shipped list's name: ``all`` (``tasks.json``) or ``solvers`` (its tasks
        that have a hand-written solver). Default: ``all``, or ``solvers`` when the run's policy is ``solver``.

        Raises:
            DataError: for a bad task file or a task the installed ``miniwob`` does not ship.
        """
        from ponder.envs.miniwob.solvers import SOLVERS

        source = data or self.tasks_file or (SOLVERS_LIST if self.policy == SOLVER_POLICY else ALL_LIST)
        if str(source) in (ALL_LIST, SOLVERS_LIST) and not Path(source).is_file():
            tasks = load_tasks()
            if str(source) == SOLVERS_LIST:
                tasks = [t for t in tasks if t.task in SOLVERS]
        else:
            tasks = load_tasks(Path(source))
        out: list[Episode] = []
        for round_ in range(max(len(t.seeds) for t in tasks)):
            for t in tasks:
                if round_ >= len(t.seeds):
                    continue
                seed = t.seeds[round_]
                out.append(Episode(
                    id=episode_id(t.task, seed), suite=self.name, tier=t.tier,
                    task=f"{t.description} (MiniWoB++ {t.task}, seed {seed})",
                    metadata={"miniwob_task": t.task, "seed": seed, "has_solver": t.task in SOLVERS}))
        return out[:limit] if limit else out

    def run_episode(self, episode: Episode, ctx: EvalContext) -> EpisodeResult:
        """Play one episode with ``ctx.policy`` (``agent``, the ``random`` baseline or ``solver``).

        ``agent`` with a run spec that is more than one plain run runs the spec's strategy, each run in a
        browser of its own.

        Raises:
            ConfigError: for an unknown policy, or when Chromium / chromedriver are not installed.
        """
        from ponder.envs.play import episode_result, plain_single
        from ponder.envs.random_policy import POLICY as RANDOM

        if ctx.policy not in ("agent", RANDOM, SOLVER_POLICY):
            raise ConfigError(f"the miniwob suite has no policy {ctx.policy!r}; choose agent, {RANDOM} or "
                              f"{SOLVER_POLICY}")
        task, seed = str(episode.metadata["miniwob_task"]), int(episode.metadata["seed"])
        metadata: dict[str, Any] = {"miniwob_task": task, "seed": seed}
        if ctx.policy == SOLVER_POLICY:
            metadata["harness_check"] = True
            from ponder.envs.miniwob.solvers import SOLVERS

            if task not in SOLVERS:
                return EpisodeResult(
                    episode_id=episode.id, suite=episode.suite, task=episode.task, tier=episode.tier,
                    policy=SOLVER_POLICY, policy_kind="harness", status="skipped",
                    error=f"no hand-written solver for {task}", metadata={**metadata, "skipped": True})
        env = _thread_env(task, time_limit_of(ctx))
        metadata["time_limit_s"] = env.time_limit
        outcome = None
        if ctx.policy == SOLVER_POLICY:
            run, utterance = self._play_solver(env, episode, seed, ctx)
        elif ctx.policy == "agent" and not plain_single(ctx.spec):
            run, utterance, outcome = self._play_strategy(env, episode, seed, ctx)
        else:
            run, utterance = self._play_agent(env, episode, seed, ctx)
        if run.error:  # a broken browser: start a fresh one for the next episode
            _drop_env(env)
        metadata.update({"utterance": utterance, "browser_starts": env.browser_starts})
        played = episode.model_copy(update={"task": utterance}) if utterance else episode
        return episode_result(run, played, policy=ctx.policy, metadata=metadata, outcome=outcome, spec=ctx.spec)

    def _play_agent(self, env: MiniWoBEnv, episode: Episode, seed: int, ctx: EvalContext) -> tuple[EnvRun, str]:
        """The agent's (or the ``random`` baseline's) episode in the thread's browser, and the utterance."""
        from ponder.envs.play import play_episode
        from ponder.envs.random_policy import POLICY as RANDOM
        from ponder.envs.random_policy import play_random

        env.seed = seed
        played, failed = _learn_utterance(env, episode, seed, ctx)
        if failed is not None:
            return failed, ""
        if ctx.policy == RANDOM:
            from ponder.envs.miniwob.candidates import PageActions

            return play_random(env, played, seed=ctx.settings.seed, max_steps=_max_steps(ctx), out_dir=ctx.out_dir,
                               actions=PageActions()), played.task
        max_steps = int(ctx.extra["max_steps"]) if ctx.extra.get("max_steps") else None
        return play_episode(env, played, ctx, max_steps=max_steps), played.task

    def _play_strategy(self, env: MiniWoBEnv, episode: Episode, seed: int,
                       ctx: EvalContext) -> tuple[EnvRun, str, Outcome | None]:
        """The run spec's strategy, each run in a new browser on the task and seed; the utterance."""
        from ponder.envs.miniwob.env import MiniWoBEnv
        from ponder.envs.play import play_strategy

        played, failed = _learn_utterance(env, episode, seed, ctx)
        if failed is not None:
            return failed, "", None

        def make_env() -> MiniWoBEnv:
            return MiniWoBEnv(env.task, seed=seed, time_limit=env.time_limit, paths=env.paths)

        run, outcome = play_strategy(make_env, played, ctx, max_steps=_max_steps(ctx), max_reward=1.0)
        return run, played.task, outcome

    def _play_solver(self, env: MiniWoBEnv, episode: Episode, seed: int, ctx: EvalContext) -> tuple[EnvRun, str]:
        from ponder.envs.miniwob.solvers import run_solver

        start = time.perf_counter()
        try:
            solved: SolverRun | None = run_solver(env, seed)
            error = None
        except BrowserError as exc:
            solved, error = None, str(exc)
        return solver_env_run(episode, solved, error, time.perf_counter() - start, ctx.out_dir), (
            solved.utterance if solved else "")

    def close(self) -> None:
        """Close the browsers this process opened for the suite."""
        close_envs()


def _learn_utterance(env: MiniWoBEnv, episode: Episode, seed: int,
                     ctx: EvalContext) -> tuple[Episode, EnvRun | None]:
    """The episode with the seed's instruction as its task, or a failed run when the browser cannot reset.

    The same seed gives the same instruction, so the reset that learns it shows what the episode will show.
    """
    from ponder.agents.env import EnvRun
    from ponder.core.records import Trajectory

    try:
        utterance = str(env.reset(seed).info["utterance"])
    except BrowserError as exc:
        traj = Trajectory(task=episode.task, agent="env", model=ctx.model.spec if ctx.model else "",
                          status="error", error=str(exc))
        return episode, EnvRun(trajectory=traj, error=str(exc))
    return episode.model_copy(update={"task": utterance}), None


def _max_steps(ctx: EvalContext) -> int:
    """The step cap: ``ctx.extra["max_steps"]``, else ``settings.max_steps``."""
    return int(ctx.extra["max_steps"]) if ctx.extra.get("max_steps") else ctx.settings.max_steps


def solver_env_run(episode: Episode, solved: SolverRun | None, error: str | None, seconds: float,
                   out_dir: Path | None) -> EnvRun:
    """A solver's episode as an :class:`EnvRun` (its trajectory appended to ``out_dir/trajectories.jsonl``)."""
    from ponder.agents.env import TRAJECTORY_FILE, EnvRun
    from ponder.core.io import append_jsonl
    from ponder.core.records import Step, Trajectory, Usage

    traj = Trajectory(task=solved.utterance if solved and solved.utterance else episode.task, agent=SOLVER_POLICY,
                      model=f"harness:{SOLVER_POLICY}", backend="harness",
                      metadata={"episode_id": episode.id, "suite": episode.suite, "harness_check": True})
    if solved is not None:
        for index, (action, observation) in enumerate(zip(solved.actions, solved.observations[1:], strict=True)):
            traj.steps.append(Step(index=index, kind="action", raw=action, action=action, observation=observation))
        traj.status = "solved" if solved.won else "error"
        traj.final_answer = "won" if solved.won else "lost" if solved.done else None
        if not solved.won:
            traj.error = "the solver got stuck" if solved.stuck else "the solver did not win the task"
    else:
        traj.status, traj.error = "error", error
    traj.usage = Usage(tool_calls=len(traj.steps), wall_seconds=round(seconds, 4))
    reward = solved.reward if solved else 0.0
    traj.metadata.update({"reward": reward, "env_steps": len(traj.steps)})
    if out_dir is not None:
        append_jsonl(Path(out_dir) / TRAJECTORY_FILE, traj)
    return EnvRun(trajectory=traj, reward=reward, done=bool(solved and solved.done),
                  success=bool(solved and solved.won) and error is None, env_steps=len(traj.steps), error=error)


def miniwob_suite() -> MiniWoBSuite:
    """The ``miniwob`` suite (registry factory)."""
    return MiniWoBSuite()
