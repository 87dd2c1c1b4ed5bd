"""Trials of self-consistency and self-consistency of trials, on a scripted model and a real Chroma store.

The model answers 2.5 (wrong) until a lesson is in its prompt, then 250 (right); asked to reflect, it writes
a lesson that names the seed it was sampled with, so each sample's lessons can be told apart.
"""

from __future__ import annotations

import threading

from ponder.core.io import read_jsonl
from ponder.graphs.self_consistency.records import SelfConsistencyResult
from ponder.graphs.strategies.base import StrategyContext
from ponder.graphs.strategies.build import build_strategy, run_spec
from ponder.graphs.strategies.spec import parse_spec
from ponder.models.scripted import ScriptedModel

TASK = "A pen costs 2.50 dollars. How many cents does the pen cost?"
LESSON = "Convert dollars to cents by multiplying by 100"


class Learner:
    """The scripted model's replies, and every agent prompt with the seed it was sampled with."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.prompts: list[tuple[int | None, str]] = []
        self.model = ScriptedModel(self.reply)

    def reply(self, messages, params) -> str:
        text = "\n".join(m["content"] for m in messages)
        if "Reply with the lesson only." in messages[-1]["content"]:
            return f"Reflection: {LESSON} (seed {params.seed})."
        with self.lock:
            self.prompts.append((params.seed, text))
        return "Thought: cents.\nFinal Answer: 250" if LESSON in text else "Thought: dollars.\nFinal Answer: 2.5"


def test_trials_of_self_consistency_reflect_on_the_voted_answer(settings, store, tmp_path):
    learner = Learner()
    ctx = StrategyContext(settings=settings, model=learner.model, store=store, task_family="toy")
    spec = parse_spec({"samples": 3, "trials": 3, "memory": "reflexion"})
    outcome = run_spec(TASK, spec, ctx, label="250")
    # attempt 1 votes 2.5 (wrong): the chosen sample's reflection reaches the store, the others' are dropped
    assert outcome.kind == "trials" and [a.kind for a in outcome.attempts] == ["self_consistency"] * 2
    assert [a.answer for a in outcome.attempts] == ["2.5", "250"] and outcome.answer == "250"
    first, second = (a.records[0] for a in outcome.attempts)
    assert isinstance(first, SelfConsistencyResult) and first.memory["from_sample"] == 0
    assert first.memory["discarded"] >= 2 and [r["status"] for r in first.memory["applied"]] == ["added"]
    (lesson,) = store.list("reflection")
    assert lesson.text.endswith(f"{LESSON} (seed 0).") and lesson.task_family == "toy"
    # attempt 2: every sample read that lesson, voted 250 and stopped the trials
    assert [LESSON in text for _, text in learner.prompts] == [False] * 3 + [True] * 3
    assert second.final_answer == "250" and second.agreement == 1.0
    assert [t.metadata["trial"] for t in outcome.trajectories] == [1, 1, 1, 2, 2, 2]
    assert sorted(t.metadata["sample"] for t in outcome.trajectories) == [0, 0, 1, 1, 2, 2]
    assert outcome.trajectory is second.samples[0].trajectory and outcome.status == "solved"
    assert outcome.usage.prompt_tokens == sum(t.usage.prompt_tokens for t in outcome.trajectories)
    assert outcome.usage.model_calls == 6
    records = list(read_jsonl(tmp_path / "runs" / "self_consistency.jsonl", SelfConsistencyResult))
    assert [r.final_answer for r in records] == ["2.5", "250"]
    assert [r.id for r in outcome.records] == [r.id for r in records]  # the inner records, in order


def test_self_consistency_of_trials_each_sample_learns_from_its_own_trials(settings, store):
    learner = Learner()
    stored_while_sampling: list[int] = []
    ctx = StrategyContext(settings=settings, model=learner.model, store=store,
                          on_sample=lambda _record: stored_while_sampling.append(len(store.list(limit=100))))
    spec = parse_spec({"samples": 3, "trials": 2, "memory": "reflexion", "compose": "samples_of_trials"})
    outcome = build_strategy(spec).run(TASK, ctx, label="250")
    assert outcome.kind == "self_consistency" and outcome.answer == "250" and outcome.status == "solved"
    assert [a.kind for a in outcome.attempts] == ["trials"] * 3
    (result,) = outcome.records
    assert isinstance(result, SelfConsistencyResult)
    for sample in result.samples:  # trial 1 wrong, trial 2 right, per sample
        assert [t.final_answer for t in (*sample.earlier, sample.trajectory)] == ["2.5", "250"]
        assert [t.metadata["trial"] for t in (*sample.earlier, sample.trajectory)] == [1, 2]
    # each sample's second trial read its own (held) lesson and no other sample's
    second_trials = [(seed, text) for seed, text in learner.prompts if LESSON in text]
    assert sorted(seed for seed, _ in second_trials) == [0, 1, 2]
    for seed, text in second_trials:
        assert f"(seed {seed})" in text and [f"(seed {s})" in text for s in range(3)].count(True) == 1
    # nothing reached the store while the samples ran; then only the chosen sample's lesson
    assert stored_while_sampling == [0, 0, 0]
    (lesson,) = store.list("reflection")
    assert lesson.text.endswith("(seed 0).") and result.memory["from_sample"] == 0
    assert len(outcome.trajectories) == 6 and outcome.trajectory is result.samples[0].trajectory
    assert result.usage.prompt_tokens == sum(t.usage.prompt_tokens for t in outcome.trajectories)
    assert result.usage.model_calls == 6 and result.samples[1].usage.model_calls == 2


def test_without_memory_trials_of_a_vote_are_plain_retries(settings):
    learner = Learner()
    ctx = StrategyContext(settings=settings, model=learner.model, write=False)
    outcome = run_spec(TASK, parse_spec({"samples": 2, "trials": 2}), ctx, label="250")
    assert [a.answer for a in outcome.attempts] == ["2.5", "2.5"] and outcome.answer == "2.5"
    assert not any(LESSON in text for _, text in learner.prompts) and len(learner.prompts) == 4
