"""The alfworld suite: a clear ConfigError without the engine; the real trial when it is installed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.core.errors import ConfigError
from ponder.core.settings import load_settings
from ponder.envs.alfworld import AlfWorldSuite, single_agent_problem, unavailable
from ponder.envs.base import EvalContext
from ponder.envs.registry import get_suite

TRIAL = Path("alfworld") / "trials" / "enh_multi-agent_poc-debug"


def test_registry_and_policies() -> None:
    suite = get_suite("alfworld")
    assert suite.name == "alfworld" and suite.policies == ("expert", "random") and suite.needs_process


def test_single_agent_adaptation_of_the_real_trial(data_dir: Path) -> None:
    game = json.loads((data_dir / TRIAL / "game.tw-pddl").read_text())
    assert "bob - agent" in game["pddl_problem"]
    problem = single_agent_problem(game["pddl_problem"])
    assert "alice - agent" in problem and "bob" not in problem and "charlie" not in problem
    assert problem.count("(") == problem.count(")")  # still a well-formed s-expression
    assert "(:goal" in problem and "PotatoType" in problem


@pytest.mark.skipif(unavailable() is None, reason="the ALFWorld engine is installed here")
def test_missing_engine_is_a_clear_config_error(data_dir: Path, tmp_path: Path) -> None:
    settings = load_settings(data_dir=data_dir)
    with pytest.raises(ConfigError, match="fast-downward-textworld|alfworld"):
        AlfWorldSuite().episodes(settings)
    from ponder.envs.base import Episode

    episode = Episode(id="x", suite="alfworld", task="t", metadata={"trial": str(data_dir / TRIAL)})
    with pytest.raises(ConfigError, match="cannot run"):
        AlfWorldSuite().run_episode(episode, EvalContext(settings=settings, policy="expert", out_dir=tmp_path))


@pytest.mark.skipif(unavailable() is not None, reason=f"ALFWorld engine unavailable: {unavailable()}")
def test_expert_plan_wins_the_real_trial(data_dir: Path, tmp_path: Path) -> None:
    settings = load_settings(data_dir=data_dir)
    suite = AlfWorldSuite()
    (episode,) = suite.episodes(settings)
    assert episode.task == "put a hot potato in sinkbasin" and episode.tier == "pick_heat_then_place_in_recep"
    result = suite.run_episode(episode, EvalContext(settings=settings, policy="expert", out_dir=tmp_path))
    assert result.success and result.policy_kind == "harness", result.trajectory


@pytest.mark.skipif(unavailable() is not None, reason=f"ALFWorld engine unavailable: {unavailable()}")
def test_agent_plays_the_real_trial_with_the_scripted_model(data_dir: Path, tmp_path: Path) -> None:
    from ponder.models.scripted import ScriptedModel

    settings = load_settings(data_dir=data_dir)
    suite = AlfWorldSuite()
    (episode,) = suite.episodes(settings)
    replies = ["think: First I need to find a potato.", "dance", "go to countertop 2",
               "take potato 2 from countertop 2", "go to microwave 1", "heat potato 2 with microwave 1",
               "go to sinkbasin 1",
               "move potato 2 to sinkbasin 1"]
    model = ScriptedModel(replies)
    ctx = EvalContext(settings=settings, model=model, out_dir=tmp_path, extra={"max_steps": 12})
    result = suite.run_episode(episode, ctx)
    assert result.success and result.status == "solved" and result.env_steps == 7, result.trajectory
    assert result.trajectory is not None and result.trajectory.steps[1].observation == "Nothing happens."
    first = model.calls[0]
    assert "move spraybottle 2 to toilet 1" in [m["content"] for m in first]  # the ALFWorld ReAct example
    assert first[-1]["content"].startswith("You are in the middle of a room.")


@pytest.mark.skipif(unavailable() is not None, reason=f"ALFWorld engine unavailable: {unavailable()}")
def test_fork_of_the_real_trial_answers_like_the_original(data_dir: Path, tmp_path: Path) -> None:
    """Play a prefix, fork, send the same next commands to both: identical answers (and the game is won)."""
    from ponder.envs.alfworld import AlfWorldEnv, build_game

    trial = data_dir / "alfworld" / "trials" / "enh_multi-agent_poc-debug"
    game_file = tmp_path / "game.tw-pddl"
    game_file.write_text(json.dumps(build_game(trial, data_dir / "alfworld" / "logic")), encoding="utf-8")
    env = AlfWorldEnv(game_file)
    try:
        prefix = ["dance", "go to countertop 2", "take potato 2 from countertop 2"]
        rest = ["go to microwave 1", "heat potato 2 with microwave 1", "go to sinkbasin 1",
                "move potato 2 to sinkbasin 1"]
        env.reset()
        for action in prefix:
            env.step(action)
        fork = env.fork()
        try:
            assert fork.actions() == prefix  # type: ignore[attr-defined]
            theirs = [fork.step(a) for a in rest]
        finally:
            fork.close()
        ours = [env.step(a) for a in rest]
        assert ours == theirs and ours[-1].done and ours[-1].info["won"]
    finally:
        env.close()
