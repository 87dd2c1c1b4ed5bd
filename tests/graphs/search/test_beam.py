"""Beam search on scripted worlds: an oracle verifier solves every task; finished leaves aside; budget; records."""

from __future__ import annotations

import itertools
import random

import pytest
from searchkit import Counter, EnvOutcomeVerifier, PricedVerifier, TreeEnv, random_policy, seeded_env_model

from ponder.graphs.search.beam import BeamSearch
from ponder.graphs.strategies.base import StrategyContext
from ponder.graphs.strategies.spec import RunSpec
from ponder.graphs.verifiers.base import Score, Trace, VerifyContext
from ponder.models.base import GenerationParams, Message
from ponder.models.scripted import ScriptedModel


class PrefixOracle:
    """An oracle PRM for the tree game: 1 while every move so far is on the winning path, else 0."""

    name = "oracle"

    def __init__(self, winning: tuple[str, ...]) -> None:
        self.winning = winning

    def score(self, trace: Trace, ctx: VerifyContext) -> Score:
        moves = [s.action for s in trace.steps if s.kind == "action"]
        return Score(value=float(tuple(moves) == self.winning[: len(moves)]))


def beam(settings, winning, verifier, *, policy=random_policy, counter=None, **spec):
    counter = counter or Counter()
    ctx = StrategyContext(settings=settings, model=seeded_env_model(policy), write=False, max_steps=6,
                          env=lambda: TreeEnv(winning, 3, counter))
    return BeamSearch(RunSpec(strategy="beam", **spec), verifier=verifier).run("find it", ctx)


def test_an_oracle_prm_solves_every_tree_game(settings):
    # the model's three samples of a node cover its three moves (seed i picks move i mod 3): the right move is
    # always a candidate, and the oracle keeps it
    for winning in itertools.product("abc", repeat=3):
        outcome = beam(settings, winning, PrefixOracle(winning), policy=None, beam_width=1, expansions=3)
        assert outcome.status == "solved", winning
        assert [s.action for s in outcome.trajectory.steps] == list(winning)
        assert outcome.metadata["stop_reason"] == "solved" and outcome.metadata["iterations"] == 3


def test_without_a_signal_a_narrow_beam_mostly_fails(settings):
    # the same searches with the env's outcome only (0 until the end): the beam cannot tell good moves apart
    solved = sum(beam(settings, w, EnvOutcomeVerifier(), beam_width=1, expansions=2).status == "solved"
                 for w in itertools.product("abc", repeat=3))
    assert solved < 27


# ReAct tasks with known step correctness: add two numbers with the calculator, then answer.
TASKS = [(random.Random(i).randint(10, 99), random.Random(i + 100).randint(10, 99)) for i in range(6)]


def react_model() -> ScriptedModel:
    """Per seed: the right call for one seed in three (else a wrong one), the right answer for one seed in two.

    A beam's ``b`` >= 3 samples take consecutive seeds, so the right step is always among its candidates.
    """

    def reply(messages: list[Message], params: GenerationParams) -> str:
        seed = params.seed or 0
        if "Reply with the lesson only" in messages[-1]["content"]:
            return "Lesson: add the numbers, do not subtract them."
        at = next(i for i, m in enumerate(messages) if "Question: What is" in m["content"])  # lessons may lead
        question = messages[at]["content"].split("Question: What is ")[-1]
        a, b = (int(x) for x in question.rstrip("?").split(" + "))
        observations = [m["content"] for m in messages[at:] if m["content"].startswith("Observation:")]
        if not observations:
            expr = f"{a} + {b}" if seed % 3 == 0 else f"{a} - {b}"
            return f"Thought: compute\nAction: calculator\nAction Input: {expr}"
        seen = observations[-1].removeprefix("Observation:").strip()
        return f"Thought: done\nFinal Answer: {seen if seed % 2 == 0 else int(float(seen)) + 1}"

    return ScriptedModel(reply, continuous=True)


class ArithmeticOracle:
    """An oracle PRM: 1 while every step is right (the sum's expression, then its value), else 0."""

    name = "oracle"

    def score(self, trace: Trace, ctx: VerifyContext) -> Score:
        a, b = (int(x) for x in trace.task.removeprefix("What is ").rstrip("?").split(" + "))
        if trace.status == "error":
            return Score(value=0.0)
        for step in trace.steps:
            if step.kind == "action" and step.action_input != f"{a} + {b}":
                return Score(value=0.0)
            if step.kind == "final" and trace.final_answer != str(a + b):
                return Score(value=0.0)
        return Score(value=1.0)


@pytest.mark.parametrize(("a", "b"), TASKS)
def test_an_oracle_prm_solves_every_arithmetic_task(settings, a, b):
    ctx = StrategyContext(settings=settings, model=react_model(), write=False, max_steps=4)
    outcome = BeamSearch(RunSpec(strategy="beam", beam_width=2, expansions=4, accept=0.9),
                         verifier=ArithmeticOracle()).run(f"What is {a} + {b}?", ctx)
    assert outcome.answer == str(a + b) and outcome.status == "solved"
    tree = outcome.records[0]
    assert [tree.nodes[i].action for i in tree.chosen] == [None, "calculator", "final"]
    assert any(n.kept is False for n in tree.nodes) or outcome.metadata["duplicates"]


def test_budget_counts_the_verifier_tokens(settings):
    priced = PricedVerifier(tokens=400)
    outcome = beam(settings, ("c", "c", "c"), priced, beam_width=3, expansions=3, budget="2000t")
    assert outcome.metadata["stop_reason"] == "budget" and priced.calls > 0
    tree = outcome.records[0]
    assert outcome.usage.total_tokens == sum(n.prompt_tokens + n.completion_tokens for n in tree.nodes)
    assert outcome.usage.prompt_tokens >= 400 * priced.calls


def test_finished_candidates_are_kept_aside_and_the_best_chosen(settings):
    counter = Counter()
    outcome = beam(settings, ("a", "b", "c"), EnvOutcomeVerifier(), policy=None, counter=counter,
                   beam_width=3, expansions=3)
    tree = outcome.records[0]
    assert outcome.status == "solved" and outcome.metadata["finished"] >= 1
    assert len(outcome.trajectories) == sum(1 for n in tree.nodes if n.terminal)
    assert outcome.candidates[0].score == 1.0 and outcome.trajectory.final_answer == "won"
    assert {n.batch for n in tree.nodes[1:]} == {3, 9}  # the root's 3 candidates, then 3 beams x 3
    assert counter.made == counter.closed and outcome.metadata["env_steps"] == counter.steps
