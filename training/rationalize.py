"""STaR's rationalization: a question no sample solved is asked again with its answer as a hint.

The hint (``prompts/star_hint.txt``) is appended to the question the agent sees; the rationale is kept when the run
reaches the gold answer in well-formed steps that compute it (at least one tool call) without talking about the
hint. Its training example uses the ORIGINAL question turn and says ``metadata["hint"] = True``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

from ponder.core.answers import parse_number
from ponder.core.prompts import render
from ponder.core.records import Trajectory
from ponder.envs.base import Episode
from ponder.envs.qa import QASuite
from ponder.models.base import Message
from ponder.training.examples import SFTExample
from ponder.training.star_data import DataStats, is_correct, malformed, to_example


def hint_text(answer: str) -> str:
    """The hint added to a question: ``(The answer is 72. Show the steps that reach it.)``."""
    return render("star_hint", answer=answer)


@cache
def _hint_pattern() -> re.Pattern[str]:
    before, _, after = hint_text("\0").partition("\0")
    return re.compile(r"\s*" + re.escape(before) + r".*?" + re.escape(after) + r"\s*$", re.DOTALL)


def split_hint(task: str) -> tuple[str, bool]:
    """``task`` without a trailing STaR hint (:func:`hint_text`), and whether it carried one.

    A rationalization run's recorded task is the hinted question; whatever turns it into training data must use
    the original question (and mark the example ``hint``).
    """
    match = _hint_pattern().search(task)
    return (task[:match.start()], True) if match else (task, False)


def hinted_episodes(episodes: Sequence[Episode]) -> list[Episode]:
    """Copies of ``episodes`` whose question carries the gold answer as a hint (same ids, same gold)."""
    return [ep.model_copy(update={"task": f"{ep.task} {hint_text(str(ep.gold))}"}) for ep in episodes]


def rationale_problem(traj: Trajectory, episode: Episode, suite: QASuite) -> str | None:
    """Why a hinted run is not a usable rationale (``None``: keep it).

    Reasons: ``wrong_answer``, ``malformed`` (a parse_error step), ``no_tool_call`` (the answer restated without
    computing it), ``mentions_hint`` (its text refers to the hint, which the training question does not have),
    ``answer_before_computed`` (a thought or tool input writes the answer before a tool result showed it).
    """
    if not is_correct(traj, episode, suite):
        return "wrong_answer"
    if malformed(traj):
        return "malformed"
    if not any(step.kind == "action" for step in traj.steps):
        return "no_tool_call"
    if any("hint" in step.raw.lower() for step in traj.steps):
        return "mentions_hint"
    if _copied_answer(traj, str(episode.gold)):
        return "answer_before_computed"
    return None


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _has_number(text: str, value: object) -> bool:
    return any(parse_number(m.group(0)) == value for m in _NUMBER.finditer(text))


def _copied_answer(traj: Trajectory, gold: str) -> bool:
    """Whether a step writes the gold number before any tool result showed it (copied from the hint)."""
    value = parse_number(gold)
    if value is None:
        return False
    for step in traj.steps:
        if step.kind == "final":
            return False
        if _has_number(f"{step.thought}\n{step.action_input or ''}", value):
            return True
        if step.observation and _has_number(step.observation, value):
            return False
    return False


def keep_rationales(trajs: dict[str, list[Trajectory]], episodes: Sequence[Episode], suite: QASuite,
                    prefix: Sequence[Message], stats: DataStats, *, round_no: int) -> list[SFTExample]:
    """The usable rationales of the hinted runs of ``episodes`` (original questions), counted in ``stats``."""
    kept: list[SFTExample] = []
    for episode in episodes:
        stats.rationalize_tried += 1
        runs = trajs.get(episode.id, [])
        problem = rationale_problem(runs[0], episode, suite) if runs else "no_trajectory"
        example = None if problem else to_example(runs[0], episode, prefix, hint=True, round_no=round_no)
        if example is None:
            stats.drop(problem or "unusable")
            continue
        kept.append(example)
    stats.rationalized += len(kept)
    return kept
