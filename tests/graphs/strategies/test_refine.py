"""``Refine`` on a scripted model: feedback reaches the next prompt, acceptance stops, the best attempt answers."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from ponder.core.errors import ConfigError
from ponder.graphs.strategies.base import StrategyContext
from ponder.graphs.strategies.refine import Refine
from ponder.graphs.strategies.single import Single
from ponder.graphs.verifiers.base import Score, Trace, VerifyContext
from ponder.models.scripted import ScriptedModel

TASK = "A pen costs 2.50 dollars. How many cents does the pen cost?"
HINT = "the answer must be in cents, not dollars"


@dataclass
class Table:
    """A scripted verifier: a score and a detail per answer; 7 prompt tokens and one call per score."""

    values: dict[str, float]
    name: str = "table"
    seen: list[Trace] = field(default_factory=list)

    def score(self, trace: Trace, ctx: VerifyContext) -> Score:
        self.seen.append(trace)
        value = self.values.get(trace.final_answer or "", 0.0)
        return Score(value=value, prompt_tokens=7, completion_tokens=1, model_calls=1,
                     detail=HINT if value < 0.5 else "looks right")


class Student:
    """Answers 2.5 until the verifier's hint is in its prompt, then 250; keeps every prompt."""

    def __init__(self, answers: list[str] | None = None) -> None:
        self.prompts: list[str] = []
        self.answers = answers
        self.model = ScriptedModel(self.reply)

    def reply(self, messages, params) -> str:
        text = "\n".join(m["content"] for m in messages)
        self.prompts.append(text)
        if self.answers is not None:
            return f"Thought: again.\nFinal Answer: {self.answers[len(self.prompts) - 1]}"
        return "Thought: cents.\nFinal Answer: 250" if HINT in text else "Thought: dollars.\nFinal Answer: 2.5"


def context(settings, model) -> StrategyContext:
    return StrategyContext(settings=settings, model=model, answer_kind="number")


def test_feedback_reaches_the_next_prompt_and_acceptance_stops(settings):
    student = Student()
    verifier = Table({"2.5": 0.2, "250": 0.9})
    outcome = Refine(Single(), rounds=3, verifier=verifier, accept=0.8).run(TASK, context(settings, student.model))
    assert outcome.kind == "refine" and outcome.answer == "250" and outcome.status == "solved"
    assert len(outcome.attempts) == 2 and outcome.metadata["stop_reason"] == "accepted"
    assert outcome.metadata["scores"] == [0.2, 0.9] and outcome.metadata["picked"] == 1
    first, second = student.prompts
    assert HINT not in first and HINT in second
    assert "2.5" in second and "0.20" in second and TASK in second  # the previous attempt, its score, the task
    assert all(t.task == TASK for t in verifier.seen)  # scored on the original task
    revised = outcome.trajectories[1]
    assert revised.metadata["refine_round"] == 1 and HINT in revised.metadata["refine_feedback"]
    assert outcome.usage.prompt_tokens == sum(t.usage.prompt_tokens for t in outcome.trajectories) + 2 * 7
    assert outcome.usage.model_calls == 2 + 2


def test_the_best_attempt_answers_and_every_attempt_is_kept(settings):
    student = Student(["7", "8", "9"])
    verifier = Table({"7": 0.6, "8": 0.3, "9": 0.45})
    outcome = Refine(Single(), rounds=2, verifier=verifier, accept=0.95).run(TASK, context(settings, student.model))
    assert len(outcome.attempts) == 3 and outcome.metadata["stop_reason"] == "rounds"
    assert outcome.answer == "7" and outcome.metadata["picked"] == 0 and outcome.trajectory is outcome.trajectories[0]
    assert [c.answer for c in outcome.candidates] == ["7", "9", "8"]
    assert len(student.prompts) == 3 and outcome.metadata["rounds_run"] == 2


def test_ties_go_to_the_later_revision(settings):
    student = Student(["7", "8"])
    outcome = Refine(Single(), rounds=1, verifier=Table({"7": 0.5, "8": 0.5}), accept=0.9).run(
        TASK, context(settings, student.model))
    assert outcome.answer == "8"


def test_an_accepted_first_attempt_is_not_revised(settings):
    student = Student(["250"])
    outcome = Refine(Single(), rounds=3, verifier=Table({"250": 0.85})).run(TASK, context(settings, student.model))
    assert len(student.prompts) == 1 and outcome.metadata["rounds_run"] == 0


def test_bad_options_are_refused():
    with pytest.raises(ConfigError):
        Refine(Single(), rounds=-1)
    with pytest.raises(ConfigError):
        Refine(Single(), accept=0.0)


class KeyEnv:
    """Open the box, take the key: two actions win."""

    name = "keybox"
    instructions = "Actions: open box, take key, look."
    examples = ""
    made: list[KeyEnv] = []

    def __init__(self) -> None:
        self.opened = self.closed = False
        KeyEnv.made.append(self)

    def reset(self):
        from ponder.core.environment import EnvReset

        self.opened = False
        return EnvReset(observation="You see a closed box. Your task is to: take the key.")

    def step(self, action: str):
        from ponder.core.environment import EnvStep

        if action == "open box":
            self.opened = True
            return EnvStep(observation="You open the box. In it, you see a key.")
        if action == "take key" and self.opened:
            return EnvStep(observation="You take the key.", reward=1.0, done=True, info={"won": True})
        return EnvStep(observation="Nothing happens.")

    def close(self) -> None:
        self.closed = True


def test_env_feedback_comes_before_the_first_observation(settings):
    """The env agent shows observations, not the task: the feedback leads the first one; a win stops."""
    firsts: list[str] = []

    def reply(messages, params) -> str:
        first = next(m["content"] for m in messages if m["role"] == "user")
        if len([m for m in messages if m["role"] == "assistant"]) == 0:
            firsts.append(first)
        if "What the check found" not in first:
            return "look"
        return "take key" if "You open the box" in messages[-1]["content"] else "open box"

    KeyEnv.made.clear()
    ctx = StrategyContext(settings=settings, model=ScriptedModel(reply), env=KeyEnv, max_steps=2, max_reward=1.0)
    outcome = Refine(Single(), rounds=2).run("keybox game", ctx)  # default verifier in an env: env
    assert outcome.metadata["verifier"] == "env" and outcome.metadata["stop_reason"] == "won"
    assert outcome.status == "solved" and outcome.metadata["scores"] == [0.0, 1.0]
    assert len(firsts) == 2 and "What the check found" not in firsts[0]
    assert firsts[1].index("What the check found") < firsts[1].index("You see a closed box")
    assert len(KeyEnv.made) == 2 and all(env.closed for env in KeyEnv.made)  # a fresh env per attempt
    assert all(t.task == "keybox game" for t in outcome.trajectories)
