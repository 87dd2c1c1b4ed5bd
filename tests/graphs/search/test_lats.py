"""LATS on scripted worlds: it finds the one winning leaf within the exhaustive bound, reflects, counts, records."""

from __future__ import annotations

import itertools
import statistics
import threading
import time

import pytest
from searchkit import Counter, EnvOutcomeVerifier, PricedVerifier, TreeEnv, random_policy, seeded_env_model

from ponder.core.io import read_jsonl
from ponder.graphs.search.lats import LATS
from ponder.graphs.search.tree import SEARCH_FILE, SearchTree
from ponder.graphs.strategies.base import StrategyContext
from ponder.graphs.strategies.spec import RunSpec
from ponder.models.scripted import ScriptedModel

DEPTH, BRANCHING = 3, 3
#: Expanding every internal node of the tree once: 1 + 3 + 9 (exhaustive search).
EXHAUSTIVE = sum(BRANCHING**d for d in range(DEPTH))


def search(settings, winning, *, policy=None, verifier=None, counter=None, write=False, **spec):
    counter = counter or Counter()
    ctx = StrategyContext(settings=settings, model=seeded_env_model(policy), write=write, max_steps=2 * DEPTH,
                          env=lambda: TreeEnv(winning, BRANCHING, counter))
    return LATS(RunSpec(strategy="lats", **spec), verifier=verifier or EnvOutcomeVerifier()).run("find it", ctx)


def test_finds_every_winning_leaf_within_the_exhaustive_bound_and_faster_on_average(settings):
    # Rewards are 0 until the win, so UCT can do no better than exhaustive in the worst case: every internal
    # node expanded once (13 expansions for depth 3, branching 3). The rollouts reach leaves early, so on
    # average it needs fewer.
    iterations = []
    for winning in itertools.product("abc", repeat=DEPTH):
        outcome = search(settings, winning, iterations=4 * EXHAUSTIVE)
        assert outcome.status == "solved" and outcome.answer == "won"
        assert [s.action for s in outcome.trajectory.steps] == list(winning)
        iterations.append(outcome.metadata["iterations"])
    assert max(iterations) <= EXHAUSTIVE
    assert statistics.mean(iterations) < 0.7 * EXHAUSTIVE


def test_repeating_samples_still_find_every_leaf_within_one_expansion_per_node(settings):
    # Seeded random picks repeat each other, but a node's next expansion leaves its children's actions out of
    # the admissible ones shown: every expansion adds a child, so the search is complete within one expansion
    # per node of the tree (3 + 9 + 27).
    nodes = sum(BRANCHING**d for d in range(1, DEPTH + 1))
    outcomes = [search(settings, w, policy=random_policy, iterations=nodes)
                for w in itertools.product("abc", repeat=DEPTH)]
    assert all(o.status == "solved" for o in outcomes)
    assert sum(o.metadata["duplicates"] for o in outcomes) > 0


def test_each_failed_terminal_gets_a_reflection(settings):
    outcome = search(settings, ("c", "c", "c"), iterations=20)
    tree = outcome.records[0]
    lessons = [n for n in tree.nodes if n.reflection]
    assert lessons and all(n.terminal and n.status == "error" for n in lessons)
    assert outcome.metadata["reflections"] == len(lessons)
    lost = [n for n in tree.nodes if n.terminal and n.status == "error"]
    assert len(lost) == len(lessons)


def test_the_lessons_are_in_front_of_the_first_turn_of_later_expansions(settings):
    counter = Counter()
    model = seeded_env_model()
    ctx = StrategyContext(settings=settings, model=model, write=False, max_steps=2 * DEPTH,
                          env=lambda: TreeEnv(("c", "c", "c"), BRANCHING, counter))
    LATS(RunSpec(strategy="lats", iterations=20), verifier=EnvOutcomeVerifier()).run("find it", ctx)
    prompts = [call for call in model.calls if "Reply with the lesson only" not in call[-1]["content"]]
    reflect_at = next(i for i, call in enumerate(model.calls) if "Reply with the lesson only" in call[-1]["content"])
    later = [c for c in model.calls[reflect_at + 1:] if "Reply with the lesson only" not in c[-1]["content"]]
    first_turn = [m for m in later[0] if m["role"] == "user"][0]["content"]
    assert "Lessons from your earlier failed attempts" in first_turn and "try another first move" in first_turn
    early = [m for m in prompts[0] if m["role"] == "user"][0]["content"]
    assert "Lessons" not in early


def test_budget_counts_the_verifier_tokens(settings):
    priced = PricedVerifier(tokens=500)
    outcome = search(settings, ("c", "c", "c"), verifier=priced, budget="3000t")
    agent_tokens = sum(n.prompt_tokens + n.completion_tokens for n in outcome.records[0].nodes)
    assert priced.calls > 0 and outcome.metadata["stop_reason"] == "budget"
    assert outcome.usage.total_tokens >= 3000 and outcome.usage.total_tokens == agent_tokens
    free = search(settings, ("c", "c", "c"), budget="3000t")
    assert free.metadata["iterations"] > outcome.metadata["iterations"]


def test_the_tree_is_recorded_and_written(settings):
    counter = Counter()
    outcome = search(settings, ("b", "a", "c"), counter=counter, write=True, iterations=30)
    (tree,) = outcome.records
    assert isinstance(tree, SearchTree) and tree.strategy == "lats" and tree.success is True
    assert outcome.metadata["search_tree_id"] == tree.id and outcome.metadata["nodes"] == len(tree.nodes)
    assert [tree.nodes[i].action for i in tree.chosen[1:]] == ["b", "a", "c"]
    assert tree.nodes[0].visits == 1 + sum(1 for n in tree.nodes if n.terminal)  # one backup per terminal run
    assert all(n.parent is not None and n.parent < n.id for n in tree.nodes[1:])
    expanded = [n for n in tree.nodes if n.batch > 1]
    assert expanded and all(n.batch == 3 for n in expanded) and set(outcome.metadata["batches"]) == {3}
    # every env step counted, replays included; every fork closed
    assert outcome.metadata["env_steps"] == counter.steps and counter.made == counter.closed
    assert outcome.metadata["env_resets"] == counter.resets
    (written,) = read_jsonl(settings.out_dir / SEARCH_FILE, SearchTree)
    assert written == tree
    assert all(t.metadata["search_tree_id"] == tree.id for t in outcome.trajectories)
    assert outcome.trajectory.metadata["reward"] == 1.0 and outcome.candidates[0].score == 1.0


def test_default_iterations_and_exhaustion(settings):
    # a two-leaf game with no win: the search ends when nothing is left to expand
    outcome = search(settings, ("z",), iterations=50)
    assert outcome.metadata["stop_reason"] == "exhausted" and outcome.status == "error"
    assert search(settings, ("z", "z", "z")).metadata["iterations"] == 10


@pytest.mark.parametrize("iterations", [1, 2])
def test_iterations_cap(settings, iterations):
    outcome = search(settings, ("c", "c", "c"), iterations=iterations)
    assert outcome.metadata["iterations"] == iterations and outcome.metadata["stop_reason"] == "iterations"


def test_the_expansions_of_a_node_are_decoded_together(settings):
    """A continuous-batching backend gets the n children's calls at once (one Send branch each)."""
    lock, active, peak = threading.Lock(), [0], [0]
    inner = seeded_env_model()

    def reply(messages, params):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return inner._fn(messages, params)

    ctx = StrategyContext(settings=settings, model=ScriptedModel(reply, continuous=True), write=False,
                          max_steps=6, env=lambda: TreeEnv(("c", "c", "c")))
    LATS(RunSpec(strategy="lats", iterations=2), verifier=EnvOutcomeVerifier()).run("find it", ctx)
    assert peak[0] == 3


def test_a_batch_decoding_backend_gets_the_expansions_as_one_batch(settings):
    model = seeded_env_model()
    model.capabilities = model.capabilities.model_copy(update={"continuous_batching": False,
                                                               "batched_decoding": True})
    ctx = StrategyContext(settings=settings, model=model, write=False, max_steps=6,
                          env=lambda: TreeEnv(("c", "c", "c")))
    outcome = LATS(RunSpec(strategy="lats", iterations=3, batch_window=5.0),
                   verifier=EnvOutcomeVerifier()).run("find it", ctx)
    assert outcome.metadata["decoded_batches"].count(3) >= 3  # each expansion's three calls in one batch


def test_lats_over_react_steps_accepts_an_answer_the_verifier_scores_high(settings):
    from test_beam import ArithmeticOracle, react_model

    ctx = StrategyContext(settings=settings, model=react_model(), write=False, max_steps=4)
    outcome = LATS(RunSpec(strategy="lats", iterations=12, accept=0.9),
                   verifier=ArithmeticOracle()).run("What is 41 + 17?", ctx)
    assert outcome.answer == "58" and outcome.status == "solved" and outcome.metadata["stop_reason"] == "solved"
    tree = outcome.records[0]
    assert [tree.nodes[i].action for i in tree.chosen] == [None, "calculator", "final"]
    assert all(t.agent == "react" for t in outcome.trajectories)


def test_without_rollouts_the_children_values_are_backed_up_and_every_leaf_is_found(settings):
    # rollout_steps=0: each iteration only expands (at most `expansions` new nodes) and backs the best new
    # child's value up; the search is still complete on the tree game within one expansion per internal node.
    for winning in itertools.product("abc", repeat=DEPTH):
        outcome = search(settings, winning, iterations=4 * EXHAUSTIVE, rollout_steps=0)
        tree = outcome.records[0]
        assert outcome.status == "solved" and [s.action for s in outcome.trajectory.steps] == list(winning)
        assert len(tree.nodes) - 1 <= outcome.metadata["iterations"] * 3
        assert tree.nodes[0].visits > 1  # the values reached the root
