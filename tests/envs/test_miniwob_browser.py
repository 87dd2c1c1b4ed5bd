"""MiniWoB++ in a real headless Chromium: solvers win, bad actions are observations, browsers are reused and closed.

Skipped only when Chromium or chromedriver is not installed (``make system-deps-browser`` installs them).
One browser serves the whole module; the close and suite tests start their own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ponder.core.environment import Env
from ponder.core.io import read_jsonl
from ponder.core.records import Trajectory
from ponder.core.settings import load_settings
from ponder.envs.base import EvalContext
from ponder.envs.miniwob.browser import alive, descendants, find_browser
from ponder.envs.miniwob.env import MiniWoBEnv
from ponder.envs.miniwob.page import parse_page
from ponder.envs.miniwob.solvers import SOLVERS, run_solver
from ponder.envs.miniwob.suite import MiniWoBSuite
from ponder.envs.miniwob.tasks import load_tasks
from ponder.models.scripted import ScriptedModel

PATHS = find_browser()
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(PATHS is None, reason="chromium / chromedriver not installed "
                                                       "(apt-get install chromium chromium-driver)")]
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def env() -> Iterator[MiniWoBEnv]:
    browser = MiniWoBEnv("click-test", paths=PATHS)
    yield browser
    browser.close()


def _process_tree(env: MiniWoBEnv) -> list[int]:
    pid = env.browser_pid
    assert pid is not None
    return [pid, *descendants(pid)]


def _done(env: MiniWoBEnv) -> bool:
    return bool(env.driver.execute_script("return WOB_DONE_GLOBAL;"))


@pytest.mark.parametrize("task", sorted(SOLVERS))
def test_solver_wins_its_task(env: MiniWoBEnv, task: str) -> None:
    env.set_task(task)
    for seed in SEEDS:
        run = run_solver(env, seed)
        assert run.won and run.done and run.reward > 0, (seed, run.utterance, run.actions, run.observations[-1])


def test_every_listed_task_resets(env: MiniWoBEnv) -> None:
    for task in load_tasks():
        env.set_task(task.task)
        reset = env.reset(0)
        assert reset.observation.startswith("Task: ") and "\nPage:\n" in reset.observation, task.task
        assert parse_page(reset.observation).elements, task.task
        assert reset.info["utterance"] and reset.info["instructions"]
    assert env.browser_starts == 1


def test_reset_reuses_the_browser_and_seeds_are_deterministic(env: MiniWoBEnv) -> None:
    env.set_task("click-button")
    first = env.reset(3)
    pid = env.browser_pid
    starts = env.browser_starts
    other = env.reset(4)
    again = env.reset(3)
    assert env.browser_pid == pid and env.browser_starts == starts
    assert again.observation == first.observation != other.observation
    assert first.info["seed"] == 3 and first.info["time_limit_s"] == 600


def test_observation_shows_select_options_and_checkbox_state(env: MiniWoBEnv) -> None:
    env.set_task("choose-list")
    page = parse_page(env.reset(1).observation)
    select = page.first("select")
    assert select is not None and len(select.options) > 2 and select.selected == select.options[0]
    step = env.step(f"select [{select.ref}] {select.options[2].upper()}")  # options match case-insensitively
    assert parse_page(step.observation).first("select").selected == select.options[2]  # type: ignore[union-attr]

    env.set_task("click-checkboxes")
    page = parse_page(env.reset(1).observation)
    box = page.find("input_checkbox")[0]
    assert box.checked is False and box.label
    after = parse_page(env.step(f"click [{box.ref}]").observation)
    assert after.first("input_checkbox", label=box.label).checked is True  # type: ignore[union-attr]


def test_type_replaces_the_text(env: MiniWoBEnv) -> None:
    env.set_task("enter-text")
    field = parse_page(env.reset(0).observation).first("input_text")
    assert field is not None
    env.step(f"type [{field.ref}] first")
    page = parse_page(env.step(f'type [{field.ref}] "second try"').observation)
    assert page.first("input_text").value == "second try"  # type: ignore[union-attr]
    page = parse_page(env.step("press Backspace").observation)  # keys go to the focused field
    assert page.first("input_text").value == "second tr"  # type: ignore[union-attr]


def test_env_follows_the_protocol(env: MiniWoBEnv) -> None:
    assert isinstance(env, Env) and env.name == f"miniwob/{env.task}"


@pytest.mark.parametrize(("action", "message"), [
    ("dance wildly", "is not an action"),
    ("click [999]", "no element [999]"),
    ("click [-1]", "quoted text lines have none"),
    ("select [4] Nobody", "is not a <select>"),
    ("press F13", "unknown key"),
])
def test_bad_actions_are_observations_without_a_browser_step(env: MiniWoBEnv, action: str, message: str) -> None:
    env.set_task("login-user")
    reset = env.reset(2)
    before = env.driver.execute_script("return core.getDOMInfo();")
    step = env.step(action)
    assert step.observation.startswith("Invalid action:") and message in step.observation
    assert not step.done and step.reward == 0 and step.info["invalid"]
    assert not _done(env)
    assert env.driver.execute_script("return core.getDOMInfo();") == before
    assert reset.observation.split("Page:\n", 1)[1] in env.step("click [4]").observation  # still the same page


def test_unknown_option_lists_the_options(env: MiniWoBEnv) -> None:
    env.set_task("choose-list")
    select = parse_page(env.reset(0).observation).first("select")
    assert select is not None
    step = env.step(f"select [{select.ref}] Nobody At All")
    assert "has no option 'Nobody At All'" in step.observation and select.options[0] in step.observation
    assert not step.done and not _done(env)


def test_wrong_answer_loses_and_steps_after_the_end(env: MiniWoBEnv) -> None:
    env.set_task("click-test-2")
    page = parse_page(env.reset(0).observation)
    target = page.task.split("button ")[1].rstrip(".")
    wrong = next(b for b in page.find("button") if b.text != target)
    step = env.step(f"click [{wrong.ref}]")
    assert step.done and step.reward < 0 and step.info["lost"] and not step.info["won"]
    assert "failure" in step.observation
    after = env.step(f"click [{wrong.ref}]")
    assert after.done and after.observation == "The episode is over."


def test_task_time_limit_can_be_kept(env: MiniWoBEnv) -> None:
    env.set_task("click-test")
    env.time_limit = None
    try:
        assert env.reset(0).info["time_limit_s"] == 10
    finally:
        env.time_limit = 600.0


def test_close_leaves_no_browser_process() -> None:
    env = MiniWoBEnv("click-test", paths=PATHS)
    env.reset(0)
    env.reset(1)
    tree = _process_tree(env)
    assert len(tree) >= 2 and all(alive(p) for p in tree)
    env.close()
    assert not [p for p in tree if alive(p)]
    env.close()  # closing twice is fine


def test_suite_plays_solver_and_agent_then_closes(tmp_path: Path) -> None:
    suite = MiniWoBSuite()
    settings = load_settings()
    tasks = tmp_path / "tasks.json"
    tasks.write_text(json.dumps({"seeds": [1], "tasks": [{"task": "click-test-2", "tier": "easy"},
                                                          {"task": "login-user", "tier": "medium"},
                                                          {"task": "email-inbox", "tier": "hard"}]}))
    episodes = {e.metadata["miniwob_task"]: e for e in suite.episodes(settings, data=tasks)}
    try:
        solver_ctx = EvalContext(settings=settings, policy="solver", out_dir=tmp_path)
        login = suite.run_episode(episodes["login-user"], solver_ctx)
        assert login.success and login.policy == "solver" and login.policy_kind == "harness"
        assert login.metadata["harness_check"] and login.env_steps == 3 and login.status == "solved"
        assert login.task.startswith("Enter the username")
        skipped = suite.run_episode(episodes["email-inbox"], solver_ctx)
        assert skipped.status == "skipped" and not skipped.success and skipped.env_steps == 0

        def reply(messages: list[dict[str, str]], params: object) -> str:
            page = parse_page(messages[-1]["content"])
            target = page.task.split("button ")[1].rstrip(".") if page.task else ""
            button = page.first("button", text=target)
            return f"click [{button.ref}]" if button else "think: where is the button?"

        agent_ctx = EvalContext(settings=settings, model=ScriptedModel(reply), out_dir=tmp_path)
        result = suite.run_episode(episodes["click-test-2"], agent_ctx)
        assert result.success and result.policy_kind == "agent" and result.score == 1.0
        assert result.task.startswith("Click button") and result.metadata["browser_starts"] == 1
        written = list(read_jsonl(tmp_path / "trajectories.jsonl", Trajectory))
        assert [t.agent for t in written] == ["solver", "env"]
        from ponder.envs.miniwob.suite import _ENVS

        tree = [p for env in _ENVS.values() for p in _process_tree(env)]
        assert tree
    finally:
        suite.close()
    assert not [p for p in tree if alive(p)]
