"""STaR rationales: a hinted run is kept only when it computes the answer rather than copying it from the hint."""

from __future__ import annotations

from ponder.core.records import Step, Trajectory
from ponder.envs.base import Episode
from ponder.envs.qa import gsm8k_suite
from ponder.training.rationalize import hint_text, rationale_problem, split_hint

EPISODE = Episode(id="e1", suite="gsm8k", task="Q?", gold="72")


def _traj(*steps: Step, answer: str = "72") -> Trajectory:
    return Trajectory(task="Q?", agent="react", model="m", steps=list(steps), final_answer=answer, status="solved")


def _calc(i: int, thought: str, expr: str, obs: str) -> Step:
    return Step(index=i, kind="action", raw=f"Thought: {thought}\nAction: calculator\nAction Input: {expr}",
                thought=thought, action="calculator", action_input=expr, observation=obs)


FINAL = Step(index=9, kind="final", raw="Thought: I now know the final answer\nFinal Answer: 72",
             thought="I now know the final answer")


def test_a_computed_rationale_is_kept() -> None:
    traj = _traj(_calc(0, "Half of 48.", "48/2", "24"), _calc(1, "Add them.", "48+24", "72"), FINAL)
    assert rationale_problem(traj, EPISODE, gsm8k_suite()) is None


def test_an_answer_copied_before_any_tool_showed_it_is_dropped() -> None:
    copied = _traj(_calc(0, "The answer is 72, so 48+24.", "48+24", "72"), FINAL)
    assert rationale_problem(copied, EPISODE, gsm8k_suite()) == "answer_before_computed"
    in_input = _traj(_calc(0, "Check it.", "72*1", "72"), FINAL)
    assert rationale_problem(in_input, EPISODE, gsm8k_suite()) == "answer_before_computed"


def test_other_reasons() -> None:
    suite = gsm8k_suite()
    assert rationale_problem(_traj(FINAL), EPISODE, suite) == "no_tool_call"
    assert rationale_problem(_traj(_calc(0, "x", "1+1", "2"), FINAL, answer="2"), EPISODE, suite) == "wrong_answer"
    hinted = _traj(_calc(0, "The hint says so.", "48+24", "72"), FINAL)
    assert rationale_problem(hinted, EPISODE, suite) == "mentions_hint"


def test_split_hint_restores_the_original_question() -> None:
    assert split_hint(f"How many? {hint_text('72')}") == ("How many?", True)
    assert split_hint("How many?") == ("How many?", False)
