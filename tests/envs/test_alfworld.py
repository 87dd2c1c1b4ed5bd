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


class _FakeGame:
    """Stands in for the ALFWorld game (the engine is optional): ``go to sinkbasin 1`` wins."""

    made: list[_FakeGame] = []

    def __init__(self, game_file: Path, name: str = "alfworld") -> None:
        from ponder.core.environment import EnvReset, EnvStep

        self.game_file, self.name, self.instructions, self.examples = game_file, name, "", ""
        self.closed, self._reset, self._step = False, EnvReset, EnvStep
        _FakeGame.made.append(self)

    def reset(self):  # noqa: ANN201
        return self._reset(observation="You are in a room.", admissible_actions=["look", "go to sinkbasin 1"],
                           info={"policy_commands": ["go to sinkbasin 1"]})

    def step(self, action: str):  # noqa: ANN201
        won = action == "go to sinkbasin 1"
        return self._step(observation="Done." if won else "Nothing happens.", reward=float(won), done=won,
                          admissible_actions=["look", "go to sinkbasin 1"], info={"won": won})

    def close(self) -> None:
        self.closed = True


def test_suite_wiring_random_and_strategy_without_the_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite's policies reach the right player (the game faked: the real one needs the optional engine)."""
    import ponder.envs.alfworld as alfworld
    from ponder.envs.base import Episode
    from ponder.graphs.strategies.spec import parse_spec
    from ponder.models.base import GenerationParams
    from ponder.models.scripted import ScriptedModel

    monkeypatch.setattr(alfworld, "_require", lambda: None)
    monkeypatch.setattr(alfworld, "build_game", lambda trial, logic: {})
    monkeypatch.setattr(alfworld, "AlfWorldEnv", _FakeGame)
    _FakeGame.made = []
    episode = Episode(id="trial-1", suite="alfworld", task="put a potato in sinkbasin", metadata={"trial": "x"})
    settings = load_settings(seed=0)
    baseline = AlfWorldSuite().run_episode(episode, EvalContext(settings=settings, policy="random", out_dir=tmp_path,
                                                                extra={"max_steps": 6}))
    assert baseline.policy_kind == "baseline" and baseline.trajectory is not None
    assert baseline.trajectory.agent == "random" and 1 <= baseline.env_steps <= 6

    def reply(messages: list, params: GenerationParams) -> str:
        return "go to sinkbasin 1" if params.seed == 1 else "look"

    ctx = EvalContext(settings=settings, model=ScriptedModel(reply), spec=parse_spec({"samples": 2}),
                      out_dir=tmp_path / "sc", extra={"max_steps": 3})
    result = AlfWorldSuite().run_episode(episode, ctx)
    assert result.success and result.samples == 2 and result.env_steps == 1 + 3 and result.metadata["strategy"] == "sc"
    assert len(_FakeGame.made) == 3 and all(game.closed for game in _FakeGame.made)  # one per sample, all closed
