"""MiniWoB++ fork in a real headless Chromium: a second browser replays the prefix and answers alike."""

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
