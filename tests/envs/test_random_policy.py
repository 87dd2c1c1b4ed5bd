"""The ``random`` baseline: uniform over the admissible actions, seeded per episode, the agent's step cap, no model,
``policy_kind="baseline"`` (not a harness check) in results, manifests and reports."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from ponder.core.environment import EnvReset, EnvStep
from ponder.core.io import read_jsonl
from ponder.core.records import Trajectory
from ponder.core.settings import load_settings
from ponder.envs.base import Episode, EvalContext, policy_kind
from ponder.envs.play import episode_result
from ponder.envs.random_policy import episode_rng, play_random

ACTIONS = ["north", "south", "east", "west", "wait"]


class Maze:
    """Five admissible moves each step; ``east`` three times in a row wins; ``wait`` on a trap loses."""

    name = "maze"
    instructions = ""
    examples = ""

    def __init__(self, trap: bool = False, admissible: bool = True) -> None:
        self.trap, self.admissible, self.run, self.seen = trap, admissible, 0, []

    def reset(self) -> EnvReset:
        self.run = 0
        return EnvReset(observation="start", admissible_actions=list(ACTIONS) if self.admissible else None)

    def step(self, action: str) -> EnvStep:
        assert action in ACTIONS
        self.seen.append(action)
        self.run = self.run + 1 if action == "east" else 0
        if self.run == 3:
            return EnvStep(observation="out", reward=1.0, done=True, info={"won": True})
        if self.trap and action == "wait":
            return EnvStep(observation="trapped", done=True, info={"won": False})
        return EnvStep(observation=f"after {action}", admissible_actions=list(ACTIONS))

    def close(self) -> None:
        pass


def _episode(i: int) -> Episode:
    return Episode(id=f"maze-{i}", suite="maze", task="get out")


def test_random_is_reproducible_per_seed_and_episode(tmp_path: Path) -> None:
    def actions(seed: int | None, i: int) -> list[str]:
        env = Maze()
        play_random(env, _episode(i), seed=seed, max_steps=20)
        return env.seen

    assert actions(1, 0) == actions(1, 0)
    assert actions(None, 0) == actions(0, 0)
    assert len({tuple(actions(1, i)) for i in range(6)}) > 1  # episodes differ
    assert actions(1, 0) != actions(2, 0) or actions(1, 1) != actions(2, 1)  # so do seeds
    assert episode_rng(1, "maze-0").random() == episode_rng(1, "maze-0").random()


def test_random_is_uniform_over_the_admissible_actions() -> None:
    counts: Counter[str] = Counter()
    for i in range(200):
        env = Maze()
        play_random(env, _episode(i), seed=7, max_steps=10)
        counts.update(env.seen)
    total = sum(counts.values())
    assert set(counts) == set(ACTIONS) and total > 1500
    assert all(abs(n / total - 0.2) < 0.04 for n in counts.values()), counts


def test_random_step_cap_win_and_loss(tmp_path: Path) -> None:
    capped = play_random(Maze(), _episode(0), seed=3, max_steps=2, out_dir=tmp_path)
    assert not capped.success and capped.env_steps == 2 and capped.trajectory.status == "max_steps"
    wins = [play_random(Maze(), _episode(i), seed=3, max_steps=60) for i in range(30)]
    won = [r for r in wins if r.success]
    assert won and all(r.trajectory.status == "solved" and r.trajectory.final_answer == "won" and r.reward == 1.0
                       for r in won)
    lost = play_random(Maze(trap=True), _episode(1), seed=3, max_steps=500)
    assert lost.done and lost.trajectory.final_answer in ("won", "lost")
    trajs = list(read_jsonl(tmp_path / "trajectories.jsonl", Trajectory))
    assert len(trajs) == 1 and trajs[0].agent == "random" and trajs[0].usage.model_calls == 0
    assert trajs[0].usage.total_tokens == 0 and trajs[0].metadata["baseline"] is True


def test_random_without_admissible_actions_stops_with_an_error() -> None:
    run = play_random(Maze(admissible=False), _episode(0), seed=0, max_steps=5)
    assert run.env_steps == 0 and not run.success and run.trajectory.status == "error"
    assert "no admissible action" in (run.trajectory.error or "")


def test_random_results_are_baselines_not_harness_checks() -> None:
    assert policy_kind("random") == "baseline" and policy_kind("agent") == "agent"
    assert policy_kind("walkthrough") == "harness"
    run = play_random(Maze(), _episode(0), seed=0, max_steps=3)
    result = episode_result(run, _episode(0), policy="random")
    assert result.policy_kind == "baseline" and result.policy == "random"
    assert "harness_check" not in result.metadata


@pytest.mark.slow  # the generated small suite (~20 s, once per session)
def test_textworld_random_policy_plays_admissible_commands(cache_dir: Path, tmp_path: Path) -> None:
    from ponder.envs.textworld.cache import GAME_FILE
    from ponder.envs.textworld.env import TextWorldEnv
    from ponder.envs.textworld.suite import TextWorldSuite

    settings = load_settings(cache_dir=cache_dir, seed=5)
    suite = TextWorldSuite("small", gen_workers=1)
    episode = suite.episodes(settings, limit=1)[0]
    ctx = EvalContext(settings=settings, policy="random", model=None, out_dir=tmp_path)
    result = suite.run_episode(episode, ctx)
    again = suite.run_episode(episode, EvalContext(settings=settings, policy="random", out_dir=tmp_path / "b"))
    assert result.policy_kind == "baseline" and result.trajectory is not None
    traj = result.trajectory
    assert traj.agent == "random" and result.usage.total_tokens == 0 and "harness_check" not in result.metadata
    assert 1 <= result.env_steps <= 15 and (result.env_steps == 15 or traj.final_answer is not None)  # tier cap
    assert [s.action for s in traj.steps] == [s.action for s in again.trajectory.steps]  # reproducible
    with TextWorldEnv(cache_dir / "textworld" / "games" / episode.metadata["key"] / GAME_FILE) as env:
        admissible = env.reset().admissible_actions
        for step in traj.steps:  # every command was admissible where it was sent
            assert admissible and step.action in admissible
            answer = env.step(step.action or "")
            assert answer.observation == step.observation
            admissible = answer.admissible_actions


@pytest.mark.slow  # the generated small suite (~20 s, once per session)
def test_cli_eval_textworld_policy_random(cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from ponder.cli import main
    from ponder.envs.report import HARNESS_LABEL

    monkeypatch.setenv("PONDER_CACHE_DIR", str(cache_dir))
    out = tmp_path / "run"
    rc = main(["eval", "textworld", "--data", "small", "--policy", "random", "--limit", "2", "--out", str(out),
               "--seed", "1"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert HARNESS_LABEL not in captured.out
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["policy"] == "random" and manifest["policy_kind"] == "baseline" and manifest["model"] is None
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["policy_kind"] == "baseline" for r in rows)
    report = (out / "report.md").read_text()
    assert "baseline" in report and HARNESS_LABEL not in report
