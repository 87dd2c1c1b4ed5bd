"""The ``alfworld`` suite: the real ALFWorld trial in ``<data_dir>/alfworld/trials/`` through the ``alfworld`` package.

It needs ``alfworld==0.4.2`` and ``textworld[pddl]==1.7.0``, whose PDDL engine is ``fast-downward-textworld``
(an sdist: Fast Downward's C++ planner, compiled at install time). When either is missing, :func:`unavailable`
says exactly why and ``episodes()`` / ``run_episode()`` raise :class:`~ponder.core.errors.ConfigError` with it.

The shipped trial comes from ALFWorld's multi-agent debug branch: its PDDL problem declares three agents
(``alice``, ``bob``, ``charlie``) and its grammar writes commands as "alice: go to ...". :func:`build_game` makes
it a single-agent game: ``bob`` and ``charlie`` are dropped from the problem (their object lines and every fact
that names them), and the released ALFWorld domain and grammar (``<data_dir>/alfworld/logic``) replace the
trial's own. Policies: ``agent`` (the env-agent graph, ALFWorld's ReAct few-shot example, or the run spec's
strategy), ``random`` (the baseline: uniform over the admissible commands) and ``expert`` (a harness check: the
PDDL planner's plan, ``policy_commands``, followed step by step).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.core.datafiles import read_json_file
from ponder.core.environment import Env, EnvReset, EnvStep, ReplayFork
from ponder.core.errors import ConfigError, DataError
from ponder.envs.base import Episode, EpisodeResult, EvalContext

if TYPE_CHECKING:
    from ponder.core.settings import Settings
    from ponder.envs.context import EvalOptions

TRIALS = Path("alfworld") / "trials"
EXPERT = "expert"
INSTALL_HINT = "pip install alfworld==0.4.2"


def unavailable() -> str | None:
    """Why the ALFWorld engine cannot run here, or ``None`` when it can."""
    try:
        import fast_downward
    except ImportError:
        return ("ALFWorld needs TextWorld's PDDL engine, the fast-downward-textworld package, which is not installed: "
                "it ships only as an sdist whose setup.py compiles Fast Downward (C++, CMake) at install time "
                "(`make alfworld` in the ponder checkout builds it: needs g++ and cmake, a few minutes).")
    try:
        fast_downward.load_lib()
    except OSError as exc:
        return f"fast-downward-textworld is installed but its libdownward.so does not load: {exc}"
    try:
        import alfworld.agents.environment.alfred_tw_env  # noqa: F401
    except ImportError as exc:
        return f"the alfworld package is not importable ({exc}); install it with `{INSTALL_HINT}`"
    return None


def _require() -> None:
    reason = unavailable()
    if reason:
        raise ConfigError(f"the alfworld suite cannot run: {reason}")


def single_agent_problem(problem: str, keep: str = "alice") -> str:
    """A PDDL problem with one agent: the other ``- agent`` objects and every line naming them are dropped."""
    agents = re.findall(r"^\s*(\w+)\s*-\s*agent\s*$", problem, flags=re.MULTILINE)
    others = [a for a in agents if a != keep]
    if not others:
        return problem
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, others)) + r")\b")
    return "\n".join(line for line in problem.splitlines() if not pattern.search(line))


def task_description(traj: dict[str, Any]) -> str:
    """The templated task text (alfworld's ``get_templated_task_desc`` with its first template, not a random one)."""
    from alfworld.gen import goal_library

    params = traj["pddl_params"]
    goal = traj["task_type"] + ("_slice" if params.get("object_sliced") else "")
    template = goal_library.gdict[goal]["templates"][0]
    return template.format(obj=params["object_target"].lower(), recep=params["parent_target"].lower(),
                           toggle=params["toggle_target"].lower(), mrecep=params["mrecep_target"].lower())


_PARAMS = ("object_target", "parent_target", "toggle_target", "mrecep_target")


def read_trial(trial: Path) -> dict[str, Any]:
    """A trial's ``traj_data.json``, checked for the fields ponder uses.

    Raises:
        DataError: naming the file (and line, for bad JSON) and what is missing.
    """
    path = trial / "traj_data.json"
    traj = read_json_file(path, what="ALFWorld trial")
    params = traj.get("pddl_params") if isinstance(traj, dict) else None
    if not isinstance(traj, dict) or not isinstance(traj.get("task_type"), str) or not isinstance(params, dict):
        raise DataError(f"{path}: expected an object with a 'task_type' string and a 'pddl_params' object")
    missing = [key for key in _PARAMS if key not in params]
    if missing:
        raise DataError(f"{path}: pddl_params lacks {', '.join(missing)}")
    return traj


def build_game(trial: Path, logic: Path) -> dict[str, Any]:
    """A single-agent ``game.tw-pddl`` for ``trial``: ALFWorld's domain and grammar (``logic``), the trial's problem.

    The trial's own domain and grammar are the multi-agent branch's ("alice: go to ..." commands, whose
    ``{a.name}`` templates TextWorld 1.7's planner output cannot fill), so the released ``alfred.pddl`` and
    ``alfred.twl2`` are used, with the task text filled in (:func:`task_description`).
    """
    game = read_json_file(trial / "game.tw-pddl", what="ALFWorld game")
    if not isinstance(game, dict) or not isinstance(game.get("pddl_problem"), str):
        raise DataError(f"{trial / 'game.tw-pddl'}: expected an object with a 'pddl_problem' string")
    traj = read_trial(trial)
    grammar = (logic / "alfred.twl2").read_text(encoding="utf-8").replace("UNKNOWN GOAL", task_description(traj))
    return {"pddl_domain": (logic / "alfred.pddl").read_text(encoding="utf-8"), "grammar": grammar,
            "pddl_problem": single_agent_problem(game["pddl_problem"]), "solvable": True}


class AlfWorldEnv(ReplayFork):
    """One ALFWorld game through TextWorld's PDDL env with alfworld's name demangler.

    Args:
        game_file: A ``game.tw-pddl`` (single agent; see :func:`single_agent_game`).

    ``fork()`` (:class:`~ponder.core.environment.ReplayFork`) loads the game again and replays the actions sent
    since the last ``reset`` (the PDDL game is deterministic).
    """

    examples = "alfworld"

    def __init__(self, game_file: Path, name: str = "alfworld") -> None:
        from ponder.core.prompts import load_prompt

        self.game_file, self.name = Path(game_file), name
        self.instructions = load_prompt("env_instructions_alfworld").strip()
        self._env: Any = None
        self._done = False

    def fresh(self) -> Env:
        """The same game in a new, unstarted environment."""
        return AlfWorldEnv(self.game_file, name=self.name)

    def reset(self) -> EnvReset:
        """Start the game."""
        from ponder.envs.textworld.env import LOAD_LOCK

        with LOAD_LOCK:  # TextWorld's game loading is not thread-safe
            if self._env is None:
                import textworld
                from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos

                infos = textworld.EnvInfos(won=True, admissible_commands=True, policy_commands=True)
                self._env = textworld.start(str(self.game_file), request_infos=infos,
                                            wrappers=[AlfredDemangler(), AlfredInfos])
            state = self._env.reset()
        self._done = False
        self._forget()
        return EnvReset(observation=_clean(state.feedback), admissible_actions=_admissible(state),
                        info={"policy_commands": list(state.get("policy_commands") or [])})

    def step(self, action: str) -> EnvStep:
        """One command; invalid ones get the game's "Nothing happens."."""
        self._remember(action)
        if self._done:
            return EnvStep(observation="The episode is over.", done=True)
        state, _, done = self._env.step(" ".join(action.split()))
        self._done = bool(done)
        won = bool(state.get("won"))
        return EnvStep(observation=_clean(state.feedback), reward=float(won), done=self._done,
                       admissible_actions=_admissible(state),
                       info={"won": won, "policy_commands": list(state.get("policy_commands") or [])})

    def close(self) -> None:
        """Release the PDDL state."""
        if self._env is not None:
            self._env.close()
            self._env = None


def _clean(text: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", text.replace("-= Welcome to TextWorld, ALFRED! =-", "")).strip()


def _admissible(state: Any) -> list[str] | None:
    commands = state.get("admissible_commands")
    return sorted(c for c in commands if c != "help") if commands is not None else None


class AlfWorldSuite:
    """The real ALFWorld trial(s) shipped in the data directory."""

    name = "alfworld"
    policies: tuple[str, ...] = (EXPERT, "random")
    needs_process = True

    def check_options(self, options: EvalOptions) -> None:
        """Nothing to check beyond the run spec: every strategy option applies to this suite."""

    def episodes(self, settings: Settings, data: Path | None = None, limit: int | None = None) -> list[Episode]:
        """One episode per trial directory holding ``game.tw-pddl`` and ``traj_data.json``.

        Raises:
            ConfigError: when the ALFWorld engine is not installed (with the precise reason).
            DataError: when no trial is found, or naming every trial whose ``traj_data.json`` cannot be read.
        """
        _require()
        root = Path(data) if data else Path(settings.data_dir) / TRIALS
        trials = sorted(p.parent for p in root.glob("*/game.tw-pddl") if (p.parent / "traj_data.json").is_file())
        if not trials:
            raise DataError(f"no ALFWorld trials (game.tw-pddl + traj_data.json) under {root}")
        out, problems = [], []
        for trial in trials[:limit] if limit else trials:
            try:
                traj = read_trial(trial)
            except DataError as exc:
                problems.append(str(exc))
                continue
            anns = (traj.get("turk_annotations") or {}).get("anns") or [{}]
            out.append(Episode(id=trial.name, suite=self.name, task=task_description(traj),
                               tier=traj["task_type"], metadata={"trial": str(trial), "task_type": traj["task_type"],
                                                                 "human_task": anns[0].get("task_desc", "")}))
        if problems:
            raise DataError(f"{len(problems)} unreadable ALFWorld trial(s) under {root}: " + "; ".join(problems))
        return out

    def run_episode(self, episode: Episode, ctx: EvalContext) -> EpisodeResult:
        """Play the trial with the agent, the ``random`` baseline or the planner's expert plan (harness check).

        ``agent`` with a run spec that is more than one plain run runs the spec's strategy, each run in a fresh
        copy of the game. The step cap (agent and random) is ``ctx.extra["max_steps"]``, else 50.
        """
        from ponder.envs.play import episode_result, plain_single, play_episode, play_strategy
        from ponder.envs.random_policy import POLICY as RANDOM
        from ponder.envs.random_policy import play_random

        _require()
        if ctx.policy not in ("agent", RANDOM, EXPERT):
            raise ConfigError(f"the alfworld suite has no policy {ctx.policy!r}; choose agent, {RANDOM} or {EXPERT}")
        trial = Path(episode.metadata["trial"])
        game = build_game(trial, Path(ctx.settings.data_dir) / "alfworld" / "logic")
        game_file = Path(ctx.out_dir) / "alfworld" / f"{episode.id}.tw-pddl"
        game_file.parent.mkdir(parents=True, exist_ok=True)
        game_file.write_text(json.dumps(game), encoding="utf-8")
        max_steps = int(ctx.extra.get("max_steps") or 50)

        def make_env() -> AlfWorldEnv:
            return AlfWorldEnv(game_file, name=f"alfworld/{episode.id}")

        outcome = None
        if ctx.policy == "agent" and not plain_single(ctx.spec):
            run, outcome = play_strategy(make_env, episode, ctx, max_steps=max_steps, max_reward=1.0)
        else:
            env = make_env()
            try:
                if ctx.policy == EXPERT:
                    run = _play_expert(env, episode, ctx)
                elif ctx.policy == RANDOM:
                    run = play_random(env, episode, seed=ctx.settings.seed, max_steps=max_steps, out_dir=ctx.out_dir)
                else:
                    run = play_episode(env, episode, ctx, max_steps=max_steps)
            finally:
                env.close()
        meta = {"harness_check": True} if ctx.policy == EXPERT else {}
        return episode_result(run, episode, policy=ctx.policy, metadata=meta, outcome=outcome, spec=ctx.spec)


def _play_expert(env: AlfWorldEnv, episode: Episode, ctx: EvalContext, limit: int = 60) -> Any:
    """Follow the planner's next command until the game is won (or ``limit`` commands)."""
    from ponder.envs.textworld.walkthrough import play_walkthrough

    first = env.reset()
    plan = list(first.info.get("policy_commands") or [])
    return play_walkthrough(env, episode, plan[:limit], ctx.out_dir, policy=EXPERT)


def alfworld_suite() -> AlfWorldSuite:
    """The ``alfworld`` suite (registry factory)."""
    return AlfWorldSuite()
