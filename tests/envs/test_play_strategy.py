"""Env episodes through strategies: ``Single`` plays ``ctx.env()``, self-consistency and trials over episodes,
and ``envs/play.play_strategy`` turning the outcome into the suite's result (scripted model, scripted env)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ponder.core.environment import EnvReset, EnvStep
from ponder.core.io import read_jsonl
from ponder.core.records import Trajectory
from ponder.core.settings import load_settings
from ponder.envs.base import Episode, EvalContext
from ponder.envs.play import episode_result, plain_single, play_strategy
from ponder.graphs.strategies.base import StrategyContext
from ponder.graphs.strategies.build import build_strategy
from ponder.graphs.strategies.single import Single
from ponder.graphs.strategies.spec import parse_spec
from ponder.models.base import GenerationParams
from ponder.models.scripted import ScriptedModel


class KeyEnv:
    """``take key`` then ``open door`` wins; the door is locked without the key."""

    name = "key"
    instructions = "Actions: take key, open door, look."
    examples = ""
    made: list[KeyEnv] = []

    def __init__(self) -> None:
        self.key = False
        self.resets = 0
        self.closed = False
        KeyEnv.made.append(self)

    def reset(self) -> EnvReset:
        self.key, self.resets = False, self.resets + 1
        return EnvReset(observation="A room with a key and a locked door.",
                        admissible_actions=["look", "open door", "take key"])

    def step(self, action: str) -> EnvStep:
        if action == "take key":
            self.key = True
            return EnvStep(observation="Taken.", admissible_actions=["look", "open door"])
        if action == "open door" and self.key:
            return EnvStep(observation="You are out.", reward=1.0, done=True, info={"won": True})
        return EnvStep(observation="The door is locked." if action == "open door" else "A room.",
                       admissible_actions=["look", "open door", "take key"])

    def close(self) -> None:
        self.closed = True


EPISODE = Episode(id="key-1", suite="keys", task="get out of the room.")


def _by_seed(winning: set[int]):
    """A model whose episode wins for the sample seeds in ``winning`` (and looks around otherwise)."""
    def reply(messages: list, params: GenerationParams) -> str:
        turn = sum(1 for m in messages if m["role"] == "assistant")
        if params.seed in winning:
            return ["take key", "open door"][min(turn, 1)]
        return "look"
    return reply


def _sctx(tmp_path: Path, model: ScriptedModel, **changes: object) -> StrategyContext:
    KeyEnv.made = []
    ctx = StrategyContext(settings=load_settings(out_dir=tmp_path, seed=0), model=model, env=KeyEnv, max_steps=3,
                          out_dir=tmp_path, metadata={"episode_id": "key-1"})
    return ctx.derive(**changes)


def test_single_plays_the_env_episode_and_closes_the_env(tmp_path: Path) -> None:
    outcome = Single().run("get out.", _sctx(tmp_path, ScriptedModel(["take key", "open door"])))
    assert outcome.answer == "won" and outcome.status == "solved" and outcome.chosen == 0
    assert outcome.metadata == {"reward": 1.0, "won": True, "env_steps": 2}
    assert len(KeyEnv.made) == 1 and KeyEnv.made[0].closed and KeyEnv.made[0].resets == 1
    traj = outcome.trajectories[0]
    assert traj.agent == "env" and traj.metadata["episode_id"] == "key-1"
    (written,) = list(read_jsonl(tmp_path / "trajectories.jsonl", Trajectory))
    assert written.id == traj.id and traj.metadata["trajectory_path"] == str(tmp_path / "trajectories.jsonl")
    assert outcome.usage.model_calls == 2


def test_single_env_episode_respects_the_step_cap_and_write(tmp_path: Path) -> None:
    outcome = Single().run("get out.", _sctx(tmp_path, ScriptedModel(["look"], repeat_last=True), write=False))
    assert outcome.answer is None and outcome.status == "max_steps"
    assert outcome.metadata["won"] is False and outcome.metadata["env_steps"] == 3
    assert not (tmp_path / "trajectories.jsonl").exists() and KeyEnv.made[0].closed


def test_self_consistency_over_episodes_picks_a_won_sample(tmp_path: Path) -> None:
    ctx = _sctx(tmp_path, ScriptedModel(_by_seed({2})))
    outcome = build_strategy(parse_spec({"samples": 3})).run("get out.", ctx)
    assert outcome.kind == "self_consistency" and len(outcome.trajectories) == 3
    assert outcome.answer == "won" and outcome.trajectory is not None
    assert outcome.trajectory.final_answer == "won" and outcome.trajectory.metadata["sample"] == 2
    assert len(KeyEnv.made) == 3 and all(env.closed for env in KeyEnv.made)  # one fresh env per sample


def test_self_consistency_with_no_won_sample_chooses_nothing(tmp_path: Path) -> None:
    ctx = _sctx(tmp_path, ScriptedModel(_by_seed(set())))
    outcome = build_strategy(parse_spec({"samples": 2})).run("get out.", ctx)
    assert outcome.answer is None and outcome.trajectory is None and len(outcome.trajectories) == 2


def test_trials_over_episodes_stop_at_the_first_won_episode(tmp_path: Path) -> None:
    model = ScriptedModel(["look", "look", "look", "take key", "open door", "look"])
    outcome = build_strategy(parse_spec({"trials": 3})).run("get out.", _sctx(tmp_path, model))
    assert outcome.kind == "trials" and len(outcome.attempts) == 2
    assert [t.status for t in outcome.trajectories] == ["max_steps", "solved"] and outcome.answer == "won"
    assert [t.metadata["trial"] for t in outcome.trajectories] == [1, 2]


def _eval_ctx(tmp_path: Path, model: ScriptedModel, **spec: object) -> EvalContext:
    return EvalContext(settings=load_settings(seed=0), model=model, spec=parse_spec(spec), out_dir=tmp_path)


def test_plain_single_is_one_agent_run_only() -> None:
    assert plain_single(parse_spec({})) and plain_single(parse_spec({"memory": "reflexion"}))
    assert not plain_single(parse_spec({"samples": 2})) and not plain_single(parse_spec({"trials": 2}))
    assert not plain_single(parse_spec({"strategy": "sc"}))


def test_play_strategy_result_counts_every_sample(tmp_path: Path) -> None:
    KeyEnv.made = []
    ctx = _eval_ctx(tmp_path, ScriptedModel(_by_seed({1})), samples=3)
    run, outcome = play_strategy(KeyEnv, EPISODE, ctx, max_steps=3, max_reward=1.0)
    result = episode_result(run, EPISODE, outcome=outcome, spec=ctx.spec)
    assert result.success and result.status == "solved" and result.prediction == "won" and result.failure == ""
    assert result.policy_kind == "agent" and result.samples == 3 and result.trials == 1
    assert result.env_steps == 3 + 2 + 3  # every sample's steps: two lost at the cap, one won in two
    assert result.usage == outcome.usage and result.usage.model_calls == 8
    assert result.trajectory_ids == [t.id for t in outcome.trajectories] and len(result.trajectory_ids) == 3
    assert result.metadata["strategy"] == "sc" and result.metadata["self_consistency_id"]
    written = [t.id for t in read_jsonl(tmp_path / "trajectories.jsonl", Trajectory)]
    assert sorted(written) == sorted(result.trajectory_ids)  # each sample written once, by play_strategy
    assert all(t.metadata["episode_id"] == "key-1" and t.metadata["suite"] == "keys" for t in outcome.trajectories)


def test_play_strategy_trials_write_each_trajectory_once(tmp_path: Path) -> None:
    model = ScriptedModel(["look", "look", "look", "take key", "open door"])
    ctx = _eval_ctx(tmp_path, model, trials=3)
    run, outcome = play_strategy(KeyEnv, EPISODE, ctx, max_steps=3)
    result = episode_result(run, EPISODE, outcome=outcome, spec=ctx.spec)
    assert result.success and result.trials == 2 and result.env_steps == 5
    written = [t.id for t in read_jsonl(tmp_path / "trajectories.jsonl", Trajectory)]
    assert written == result.trajectory_ids


def test_play_strategy_failure_when_nothing_won(tmp_path: Path) -> None:
    ctx = _eval_ctx(tmp_path, ScriptedModel(_by_seed(set())), samples=2)
    run, outcome = play_strategy(KeyEnv, EPISODE, ctx, max_steps=2)
    result = episode_result(run, EPISODE, outcome=outcome, spec=ctx.spec)
    assert not result.success and result.failure == "max_steps" and result.env_steps == 4
    assert result.usage.model_calls == 4 and result.prediction is None
    assert result.trajectory is not None and result.trajectory.id == result.trajectory_ids[-1]  # a real sample


@pytest.mark.slow  # the generated small suite (~20 s, once per session)
def test_textworld_game_with_two_samples(cache_dir: Path, tmp_path: Path) -> None:
    """``--samples 2`` on a small-suite game: each sample plays its own copy; the won one is chosen."""
    from ponder.agents.env import env_examples
    from ponder.envs.textworld.cache import read_manifest
    from ponder.envs.textworld.suite import TextWorldSuite

    settings = load_settings(cache_dir=cache_dir, seed=0)
    suite = TextWorldSuite("small", gen_workers=1)
    episode = suite.episodes(settings, limit=1)[0]
    manifest = read_manifest(cache_dir / "textworld" / "games" / episode.metadata["key"])
    assert manifest is not None
    walk, shots = list(manifest.walkthrough), sum(1 for m in env_examples("textworld") if m["role"] == "assistant")

    def reply(messages: list, params: GenerationParams) -> str:
        turn = sum(1 for m in messages if m["role"] == "assistant") - shots
        return walk[min(turn, len(walk) - 1)] if params.seed == 1 else "look"

    ctx = EvalContext(settings=settings, model=ScriptedModel(reply), spec=parse_spec({"samples": 2}), out_dir=tmp_path,
                      extra={"max_steps": len(walk) + 2})
    result = suite.run_episode(episode, ctx)
    assert result.success and result.score == 1.0 and result.prediction == "won" and result.samples == 2
    assert result.env_steps == len(walk) + (len(walk) + 2)  # the won sample's steps + the capped one's
    assert result.trajectory is not None and result.trajectory.metadata["sample"] == 1
    assert result.metadata["strategy"] == "sc" and result.metadata["key"] == episode.metadata["key"]
    written = list(read_jsonl(tmp_path / "trajectories.jsonl", Trajectory))
    assert sorted(t.id for t in written) == sorted(result.trajectory_ids) and len(written) == 2
    assert {t.metadata["env"] for t in written} == {f"textworld/{episode.id}"}


def test_play_strategy_writes_only_what_the_strategy_did_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trajectory marked written (``trajectory_path``) is not appended again; the others are, once."""
    import ponder.graphs.strategies.build as build
    from ponder.core.io import append_jsonl
    from ponder.graphs.strategies.base import Outcome

    class Written:
        def run(self, task: str, ctx: StrategyContext, label: str | None = None) -> Outcome:
            done = Trajectory(task=task, agent="env", model="m", status="solved", final_answer="won",
                              metadata={"reward": 1.0, "env_steps": 4})
            done.metadata["trajectory_path"] = str(tmp_path / "trajectories.jsonl")
            append_jsonl(tmp_path / "trajectories.jsonl", done)
            other = Trajectory(task=task, agent="env", model="m", status="max_steps", metadata={"env_steps": 6})
            return Outcome(kind="lats", task=task, answer="won", status="solved", trajectories=[other, done], chosen=1,
                           metadata={"search_tree_id": "t1"})

    monkeypatch.setattr(build, "build_strategy", lambda spec: Written())
    ctx = _eval_ctx(tmp_path, ScriptedModel([]), strategy="lats")
    run, outcome = play_strategy(KeyEnv, EPISODE, ctx, max_steps=6)
    result = episode_result(run, EPISODE, outcome=outcome, spec=ctx.spec)
    written = [t.id for t in read_jsonl(tmp_path / "trajectories.jsonl", Trajectory)]
    assert sorted(written) == sorted(result.trajectory_ids) and len(written) == 2
    assert result.env_steps == 10 and result.metadata["search_tree_id"] == "t1"
    assert result.metadata["strategy"] == "lats" and result.score == 1.0
