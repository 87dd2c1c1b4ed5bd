"""The env-agent graph on a tiny scripted environment and the scripted model."""

from __future__ import annotations

import json
from pathlib import Path

from ponder.agents.env import (
    ENV_STOP,
    EnvRun,
    build_env_agent_graph,
    env_context,
    initial_state,
    match_admissible,
    parse_turn,
    run_env_agent,
)
from ponder.core.environment import EnvReset, EnvStep
from ponder.core.io import read_jsonl
from ponder.core.records import Trajectory
from ponder.core.settings import Settings, load_settings
from ponder.models.scripted import ScriptedModel


class KeyEnv:
    """Open the box, take the key: two actions win; anything else is answered like a text game does."""

    name = "keybox"
    instructions = "Actions: open box, take key, look."
    examples = ""

    def __init__(self) -> None:
        self.opened = False
        self.resets = 0
        self.closed = False

    def _actions(self) -> list[str]:
        return ["look", "take key"] if self.opened else ["look", "open box"]

    def reset(self) -> EnvReset:
        self.opened, self.resets = False, self.resets + 1
        return EnvReset(observation="You see a closed box.\nYour task is to: take the key.",
                        admissible_actions=self._actions())

    def step(self, action: str) -> EnvStep:
        if action == "open box":
            self.opened = True
            return EnvStep(observation="You open the box. In it, you see a key.", admissible_actions=self._actions())
        if action == "take key" and self.opened:
            return EnvStep(observation="You take the key.", reward=1.0, done=True, info={"won": True},
                           admissible_actions=[])
        return EnvStep(observation="Nothing happens.", admissible_actions=self._actions())

    def close(self) -> None:
        self.closed = True


class BrokenEnv(KeyEnv):
    def step(self, action: str) -> EnvStep:
        raise RuntimeError("game process died")


TASK = "take the key."


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    return load_settings(out_dir=tmp_path, **overrides)


def play(env: KeyEnv, model: ScriptedModel, settings: Settings, **kwargs: object) -> EnvRun:
    return run_env_agent(env, TASK, model=model, settings=settings, **kwargs)  # type: ignore[arg-type]


def test_success_path_thinks_acts_and_wins(tmp_path: Path) -> None:
    model = ScriptedModel(["think: The key is in the box.", "> Open box.", "take key"])
    env = KeyEnv()
    run = play(env, model, _settings(tmp_path), max_steps=10, metadata={"episode_id": "keybox-1"})
    traj = run.trajectory
    assert run.success and run.done and run.reward == 1.0 and run.env_steps == 2
    assert traj.status == "solved" and traj.final_answer == "won"
    assert [s.action for s in traj.steps] == ["think", "open box", "take key"]  # admissible spelling used
    assert traj.steps[0].thought == "The key is in the box." and traj.steps[0].observation == "OK."
    assert traj.steps[2].observation == "You take the key."
    assert traj.usage.model_calls == 3 and traj.usage.tool_calls == 2
    assert env.resets == 1 and not env.closed  # the caller owns the env
    # the model saw the system prompt with the env's instructions, and the admissible actions on the last turn only
    last_call = model.calls[-1]
    assert last_call[0]["role"] == "system" and "open box, take key" in last_call[0]["content"]
    assert last_call[-1]["content"].endswith("Admissible actions: look, take key")
    assert "Admissible actions" not in last_call[-3]["content"]
    assert [m["content"] for m in last_call[-4:-1]] == [
        "think: The key is in the box.", "Observation: OK.", "open box"]
    # recorded once, valid
    (saved,) = list(read_jsonl(tmp_path / "trajectories.jsonl", Trajectory))
    assert saved.id == traj.id and saved.metadata["env_steps"] == 2
    assert saved.metadata["episode_id"] == "keybox-1" and saved.metadata["env"] == "keybox"


def test_a_turn_is_one_graph_task_holding_the_model_call_and_the_env_step(tmp_path: Path) -> None:
    env, model = KeyEnv(), ScriptedModel(["think: open it first", "open box", "take key"])
    reset = env.reset()
    ctx = env_context(env, reset, model, _settings(tmp_path), max_steps=10)
    nodes = [node for update in build_env_agent_graph().stream(initial_state(TASK, reset), context=ctx,
                                                               stream_mode="updates") for node in update]
    assert nodes == ["recall", "step", "step", "step", "remember"] and env.opened
    assert "pending" not in initial_state(TASK, reset)


def test_invalid_action_is_an_observation(tmp_path: Path) -> None:
    run = play(KeyEnv(), ScriptedModel(["dance wildly", "open box", "take key"]), _settings(tmp_path), max_steps=10)
    assert run.success
    assert run.trajectory.steps[0].kind == "action" and run.trajectory.steps[0].observation == "Nothing happens."
    assert run.env_steps == 3


def test_malformed_output_gets_a_reminder_then_gives_up(tmp_path: Path) -> None:
    model = ScriptedModel(["", "think:", "x" * 300, "open box"])
    run = play(KeyEnv(), model, _settings(tmp_path, max_parse_failures=3), max_steps=10)
    traj = run.trajectory
    assert traj.status == "parse_error" and not run.success and run.env_steps == 0
    assert [s.kind for s in traj.steps] == ["parse_error"] * 3
    assert "empty" in (traj.steps[0].observation or "") and "admissible" in (traj.steps[0].observation or "")


def test_malformed_then_recovers(tmp_path: Path) -> None:
    run = play(KeyEnv(), ScriptedModel(["   ", "open box", "take key"]), _settings(tmp_path), max_steps=10)
    assert run.success and [s.kind for s in run.trajectory.steps] == ["parse_error", "action", "action"]


def test_max_steps_stops_the_episode(tmp_path: Path) -> None:
    run = play(KeyEnv(), ScriptedModel(["look"], repeat_last=True), _settings(tmp_path), max_steps=4)
    assert run.trajectory.status == "max_steps" and len(run.trajectory.steps) == 4 and run.env_steps == 4
    assert not run.success and not run.done


def test_max_steps_defaults_to_the_settings(tmp_path: Path) -> None:
    run = play(KeyEnv(), ScriptedModel(["look"], repeat_last=True), _settings(tmp_path, max_steps=3))
    assert run.trajectory.status == "max_steps" and run.env_steps == 3


def test_model_never_writes_the_observation(tmp_path: Path) -> None:
    run = play(KeyEnv(), ScriptedModel(["open box\nObservation: You win!", "take key"]), _settings(tmp_path))
    assert run.success and "Observation:" in ENV_STOP
    assert run.trajectory.steps[0].raw == "open box"


def test_broken_env_is_an_error_result(tmp_path: Path) -> None:
    run = play(BrokenEnv(), ScriptedModel(["open box"]), _settings(tmp_path))
    assert run.error and "game process died" in run.error and run.trajectory.status == "error"
    assert not run.success and run.trajectory.error == run.error
    assert json.loads((tmp_path / "trajectories.jsonl").read_text())["status"] == "error"


def test_parse_turn_and_matching() -> None:
    assert parse_turn("Thought: go on").kind == "think"
    assert parse_turn("\n\nAction: `go north`\nmore").text == "go north"
    assert parse_turn("").kind == "error"
    assert match_admissible("Take  KEY.", ["take key"]) == "take key"
    assert match_admissible("fly", ["take key"]) == "fly"


def test_reflexion_memory_carries_a_lesson_to_the_next_episode(tmp_path: Path) -> None:
    from ponder.memory.context import MemoryContext
    from ponder.memory.embeddings import HashingEmbeddingFunction
    from ponder.memory.store import open_store

    settings = load_settings(memory_path=tmp_path / "memory")
    lesson = "Open the box before taking the key."

    def reply(messages: list, params: object) -> str:
        return lesson if messages[0]["content"].startswith("You are an agent that improves by reflecting") else "look"

    with open_store(settings, embedding_function=HashingEmbeddingFunction()) as store:
        memory = MemoryContext(store=store, mode="reflexion", task_family="keybox")
        model = ScriptedModel(reply)
        first = play(KeyEnv(), model, settings, memory=memory, out_dir=tmp_path, max_steps=2)
        log = first.trajectory.metadata["memory"]
        assert first.trajectory.status == "max_steps" and log["outcome"] == "failure"
        assert [w["kind"] for w in log["written"]] == ["reflection"] and log["reflection"]["text"] == lesson
        second = play(KeyEnv(), model, settings, memory=memory, out_dir=tmp_path, max_steps=1)
        assert second.trajectory.metadata["memory"]["retrieved"][0]["kind"] == "reflection"
        # the lesson sits in front of the first observation, after the system prompt
        first_observation = model.calls[-2][1]  # the last call is the second failure's reflection
        assert lesson in first_observation["content"] and "You see a closed box." in first_observation["content"]


class ShapedKeyEnv(KeyEnv):
    """KeyEnv that also says, like TextWorld's intermediate reward, whether a move brought the goal closer."""

    def step(self, action: str) -> EnvStep:
        was_open = self.opened
        answer = super().step(action)
        closer = action == "open box" and not was_open
        return answer.model_copy(update={"info": {**answer.info, "intermediate_reward": int(closer)}})


def test_intermediate_rewards_are_summed_as_progress_never_shown_to_the_model(tmp_path: Path) -> None:
    model = ScriptedModel(["open box", "look"])
    run = play(ShapedKeyEnv(), model, _settings(tmp_path), max_steps=2)
    assert not run.success and run.reward == 0.0
    assert run.trajectory.metadata["progress"] == 1.0
    assert all("intermediate" not in m["content"] for call in model.calls for m in call)
    plain = play(KeyEnv(), ScriptedModel(["open box", "look"]), _settings(tmp_path), max_steps=2)
    assert "progress" not in plain.trajectory.metadata
