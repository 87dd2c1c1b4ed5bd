"""Environments branch: ``fork()`` replays the action prefix into an independent copy that answers alike.

For each environment a prefix of actions is played, the env is forked, and the same next actions go to the
original and to the fork: observations, rewards, ``done``, admissible actions and info must be identical.
TextWorld on a ``small`` suite game here; ALFWorld on the shipped trial in ``test_alfworld.py`` (it needs the
optional engine); MiniWoB in a real headless Chromium in ``test_miniwob_fork.py`` (``browser``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ponder.core.environment import Env, EnvStep, ForkableEnv

pytest.importorskip("textworld")


def _answers(env: Env, actions: list[str]) -> list[tuple[str, float, bool, list[str] | None, dict]]:
    out = []
    for action in actions:
        step: EnvStep = env.step(action)
        out.append((step.observation, step.reward, step.done, step.admissible_actions, step.info))
    return out


def _check_fork(env: Env, prefix: list[str], rest: list[str]) -> tuple[list, list]:
    """Play ``prefix``, fork, send ``rest`` to both; the fork's and the original's answers."""
    assert isinstance(env, ForkableEnv)
    env.reset()
    for action in prefix:
        env.step(action)
    fork = env.fork()
    try:
        assert fork is not env and fork.actions() == prefix  # type: ignore[attr-defined]
        theirs = _answers(fork, rest)
    finally:
        fork.close()
    ours = _answers(env, rest)
    return ours, theirs


@pytest.mark.slow  # the generated small suite (~20 s, once per session)
def test_textworld_fork_answers_like_the_original(cache_dir: Path) -> None:
    from ponder.envs.textworld.cache import GAME_FILE, read_manifest
    from ponder.envs.textworld.env import TextWorldEnv
    from ponder.envs.textworld.spec import load_suite_spec

    game = load_suite_spec("small").games()[0]
    manifest = read_manifest(cache_dir / "textworld" / "games" / game.key)
    assert manifest is not None and len(manifest.walkthrough) >= 2
    walk = list(manifest.walkthrough)
    prefix = ["dance wildly", walk[0]]
    rest = ["look", *walk[1:], "look"]
    with TextWorldEnv(cache_dir / "textworld" / "games" / game.key / GAME_FILE, objective=manifest.objective) as env:
        ours, theirs = _check_fork(env, prefix, rest)
        assert ours == theirs
        assert ours[-2][2] and ours[-2][4]["won"]  # the rest won the game in both
        # without the replay the rest does not win: the fork really is in the prefix's state
        fresh = env.fresh()
        try:
            fresh.reset()
            assert not any(done for _, _, done, _, _ in _answers(fresh, rest))
        finally:
            fresh.close()
        # independence: the fork's moves do not move the original
        env.reset()
        env.step(walk[0])
        other = env.fork()
        try:
            for command in walk[1:]:
                other.step(command)
        finally:
            other.close()
        assert env.actions() == [walk[0]] and not env.step("look").done


def test_textworld_remembers_actions_and_forgets_them_on_reset(tmp_path: Path) -> None:
    from ponder.envs.textworld.env import TextWorldEnv

    game = tmp_path / "g.z8"
    game.write_bytes(b"")
    env = TextWorldEnv(game)
    env._env, env._done = object(), True  # a finished game answers without the interpreter
    env.step("go   north")
    env.step("look")
    assert env.actions() == ["go   north", "look"]
    other = env.fresh()
    assert isinstance(other, TextWorldEnv) and other.game_file == env.game_file and other.actions() == []


def test_alfworld_env_records_actions_for_fork(tmp_path: Path) -> None:
    from ponder.envs.alfworld import AlfWorldEnv

    env = AlfWorldEnv(tmp_path / "game.tw-pddl", name="alfworld/x")
    env._done = True
    env.step("go to sinkbasin 1")
    assert env.actions() == ["go to sinkbasin 1"]
    other = env.fresh()
    assert isinstance(other, AlfWorldEnv) and other.game_file == env.game_file and other.name == "alfworld/x"
