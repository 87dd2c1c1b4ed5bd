"""``envs/play.py``: an episode played by the env agent from the evaluation context, and its result."""

from __future__ import annotations

from pathlib import Path

import pytest

from ponder.agents.env import EnvRun
from ponder.core.environment import EnvReset, EnvStep
from ponder.core.errors import ConfigError
from ponder.core.io import read_jsonl
from ponder.core.records import Trajectory
from ponder.core.settings import load_settings
from ponder.envs.base import Episode, EvalContext
from ponder.envs.play import episode_result, play_episode
from ponder.models.scripted import ScriptedModel


class DoorEnv:
    """``open door`` wins; anything else is answered with 'Nothing happens.'."""

    name = "door"
    instructions = "Actions: open door."
    examples = ""

    def reset(self) -> EnvReset:
        return EnvReset(observation="A door.", admissible_actions=["open door"])

    def step(self, action: str) -> EnvStep:
        if action == "open door":
            return EnvStep(observation="Outside.", reward=1.0, done=True, info={"won": True})
        return EnvStep(observation="Nothing happens.", admissible_actions=["open door"])

    def close(self) -> None:
        pass


class TrapEnv(DoorEnv):
    def step(self, action: str) -> EnvStep:
        return EnvStep(observation="You fall.", done=True, info={"won": False})


class BrokenEnv(DoorEnv):
    def step(self, action: str) -> EnvStep:
        raise RuntimeError("game process died")


EPISODE = Episode(id="door-1", suite="test", task="get out.", gold="won", tier="t1")


def _ctx(tmp_path: Path, replies: list[str], **extra: object) -> EvalContext:
    return EvalContext(settings=load_settings(), model=ScriptedModel(replies, repeat_last=True), out_dir=tmp_path,
                       extra=dict(extra))


def test_play_episode_uses_the_context_and_records_the_episode(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, ["open door"])
    run = play_episode(DoorEnv(), EPISODE, ctx, max_steps=3)
    assert run.success and run.env_steps == 1 and run.trajectory.task == "get out."
    (saved,) = list(read_jsonl(tmp_path / "trajectories.jsonl", Trajectory))
    assert saved.metadata["episode_id"] == "door-1" and saved.metadata["suite"] == "test"
    assert saved.metadata["env"] == "door"
    assert ctx.model.calls[0][-1]["content"].endswith("Admissible actions: open door")  # type: ignore[union-attr]


def test_play_episode_hides_the_actions_when_the_suite_says(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, ["open door"], show_actions=False)
    play_episode(DoorEnv(), EPISODE, ctx, write=False)
    assert "Admissible actions" not in ctx.model.calls[0][-1]["content"]  # type: ignore[union-attr]
    assert not (tmp_path / "trajectories.jsonl").exists()


def test_play_episode_needs_a_model(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a model"):
        play_episode(DoorEnv(), EPISODE, EvalContext(settings=load_settings(), out_dir=tmp_path))


@pytest.mark.parametrize(("env", "replies", "failure", "status"), [
    (DoorEnv(), ["open door"], "", "solved"),
    (TrapEnv(), ["jump"], "wrong_answer", "error"),
    (DoorEnv(), ["wait"], "max_steps", "max_steps"),
    (DoorEnv(), [""], "parse_error", "parse_error"),
    (BrokenEnv(), ["open door"], "env_error", "error"),
])
def test_episode_result_failure_follows_the_run(tmp_path: Path, env: DoorEnv, replies: list[str], failure: str,
                                               status: str) -> None:
    run = play_episode(env, EPISODE, _ctx(tmp_path, replies), max_steps=3)
    result = episode_result(run, EPISODE)
    assert result.failure == failure and result.status == status and result.success == (failure == "")
    assert result.score == run.reward and result.metrics["success"] == float(run.success)
    assert result.policy_kind == "agent" and result.trajectory_ids == [run.trajectory.id]
    assert result.tier == "t1" and result.gold == "won" and result.usage == run.trajectory.usage


def test_episode_result_of_a_harness_policy_with_a_score() -> None:
    run = EnvRun(trajectory=Trajectory(task="t", agent="walkthrough", model="harness", status="solved"),
                 reward=3.0, done=True, success=True, env_steps=4)
    result = episode_result(run, EPISODE, policy="walkthrough", score=0.75, metrics={"max_score": 4.0},
                            metadata={"harness_check": True})
    assert result.policy_kind == "harness" and result.score == 0.75 and result.env_steps == 4
    assert result.metrics == {"reward": 3.0, "success": 1.0, "max_score": 4.0}
    assert result.metadata == {"harness_check": True}
