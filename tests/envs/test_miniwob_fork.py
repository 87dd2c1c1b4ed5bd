"""MiniWoB++ in a real headless Chromium: fork by replay, the random baseline and a two-sample strategy run."""

from __future__ import annotations

import re

import pytest

from ponder.envs.miniwob.browser import find_browser
from ponder.envs.miniwob.env import MiniWoBEnv
from ponder.envs.miniwob.page import parse_page

PATHS = find_browser()
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(PATHS is None, reason="chromium / chromedriver not installed "
                                                       "(apt-get install chromium chromium-driver)")]


def _answers(env: MiniWoBEnv, actions: list[str]) -> list[tuple]:
    return [(s.observation, s.reward, s.done, s.admissible_actions, s.info) for s in map(env.step, actions)]


def test_miniwob_fork_answers_like_the_original() -> None:
    env = MiniWoBEnv("click-checkboxes", paths=PATHS)
    try:
        first = env.reset(5)
        boxes = [e.ref for e in parse_page(first.observation).find("input_checkbox")]
        submit = parse_page(first.observation).first("button")
        assert len(boxes) >= 2 and submit is not None
        prefix = [f"click [{boxes[0]}]", "click [999]"]
        for action in prefix:
            env.step(action)
        fork = env.fork()
        try:
            assert fork.browser_pid != env.browser_pid  # type: ignore[attr-defined]
            rest = [f"click [{boxes[1]}]", "press Enter", f"click [{submit.ref}]", "click [1]"]
            theirs = _answers(fork, rest)  # type: ignore[arg-type]
        finally:
            fork.close()
        ours = _answers(env, rest)
        assert ours == theirs
        assert re.search(rf"\[{boxes[0]}\] input_checkbox.*(?<!un)checked", ours[0][0])  # the prefix is replayed
        assert ours[2][2]  # submit ended the episode in both
    finally:
        env.close()


def test_suite_random_baseline_and_two_samples(tmp_path) -> None:
    import json

    from ponder.core.io import read_jsonl
    from ponder.core.records import Trajectory
    from ponder.core.settings import load_settings
    from ponder.envs.base import EvalContext
    from ponder.envs.miniwob.suite import MiniWoBSuite
    from ponder.graphs.strategies.spec import parse_spec
    from ponder.models.scripted import ScriptedModel

    suite = MiniWoBSuite()
    settings = load_settings(seed=0)
    tasks = tmp_path / "tasks.json"
    tasks.write_text(json.dumps({"seeds": [1], "tasks": [{"task": "click-test-2", "tier": "easy"}]}))
    (episode,) = suite.episodes(settings, data=tasks)

    def reply(messages: list[dict[str, str]], params: object) -> str:
        page = parse_page(messages[-1]["content"])
        target = page.task.split("button ")[1].rstrip(".") if page.task else ""
        button = page.first("button", text=target)
        return f"click [{button.ref}]" if button and params.seed == 1 else "click [999]"  # type: ignore[attr-defined]

    try:
        random_ctx = EvalContext(settings=settings, policy="random", out_dir=tmp_path, extra={"max_steps": 4})
        baseline = suite.run_episode(episode, random_ctx)
        assert baseline.policy_kind == "baseline" and baseline.trajectory is not None
        assert baseline.trajectory.agent == "random" and 1 <= baseline.env_steps <= 4
        assert baseline.task.startswith("Click button")
        assert not any((s.observation or "").startswith("Invalid action") for s in baseline.trajectory.steps)
        ctx = EvalContext(settings=settings, model=ScriptedModel(reply), spec=parse_spec({"samples": 2}),
                          out_dir=tmp_path / "sc", extra={"max_steps": 2})
        result = suite.run_episode(episode, ctx)
        assert result.success and result.metadata["strategy"] == "sc" and result.samples == 2
        assert result.env_steps == 1 + 2 and result.task.startswith("Click button")
        written = list(read_jsonl(tmp_path / "sc" / "trajectories.jsonl", Trajectory))
        assert sorted(t.id for t in written) == sorted(result.trajectory_ids)
    finally:
        suite.close()
