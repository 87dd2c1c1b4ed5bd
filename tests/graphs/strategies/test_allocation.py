"""Compute-optimal allocation: the gain model, the greedy plan within the budget, the weighted vote, and the
algorithm check on the mixed-difficulty synthetic suite (adaptive beats uniform allocation)."""

from __future__ import annotations

import math

import pytest

from ponder.envs.adaptive_synthetic import SAMPLE_TOKENS, questions, simulate_adaptive, simulate_uniform
from ponder.graphs.strategies.allocation import (
    SampleRecord,
    allocate,
    confidence,
    difficulty,
    expected_gain,
    planned_tokens,
    weighted_vote,
)


def s(key: str | None, score: float, tokens: int = 100) -> SampleRecord:
    return SampleRecord(answer=key, key=key, score=score, tokens=tokens)


def test_difficulty_bins():
    assert difficulty([s("1", 0.9), s("1", 0.85)], accept=0.8) == "easy"
    assert difficulty([s("1", 0.5), s("1", 0.3)], accept=0.8) == "medium"  # agree, low score
    assert difficulty([s("1", 0.9), s("2", 0.1)], accept=0.8) == "medium"  # disagree, one good score
    assert difficulty([s("1", 0.1), s("2", 0.2)], accept=0.8) == "hard"
    assert difficulty([s(None, 0.9), s(None, 0.9)], accept=0.8) == "medium"  # no answers never agree


def test_gain_matches_the_beta_integral_and_decreases():
    samples = [s("1", 0.1), s("2", 0.3)]
    a, b = 1 + 0.4, 1 + 1.6
    c = 0.3
    for k in range(1, 6):  # (1 - c) * B(a + 1, b + k - 1) / B(a, b), by numeric integration
        grid = [(i + 0.5) / 20000 for i in range(20000)]
        dens = [p ** (a - 1) * (1 - p) ** (b - 1) for p in grid]
        num = sum(d * p * (1 - p) ** (k - 1) for d, p in zip(dens, grid, strict=True))
        assert expected_gain(samples, k) == pytest.approx((1 - c) * num / sum(dens), rel=1e-3)
    gains = [expected_gain(samples, k) for k in range(1, 10)]
    assert all(x > y for x, y in zip(gains, gains[1:], strict=False))
    with pytest.raises(ValueError):
        expected_gain(samples, 0)


def test_confidence_is_the_noisy_or_of_the_best_answer():
    assert confidence([s("1", 0.5), s("1", 0.5), s("2", 0.7)]) == pytest.approx(0.75)
    assert confidence([s(None, 0.4), s(None, 0.6)]) == pytest.approx(0.6)  # abstainers stand alone
    assert confidence([]) == 0.0


def test_allocate_respects_the_budget_and_skips_easy_tasks():
    tasks = {"easy": [s("1", 0.95), s("1", 0.9)], "hard": [s("1", 0.1), s("2", 0.05)],
             "medium": [s("1", 0.7), s("2", 0.2)], "costly": [s("1", 0.1), s("2", 0.1, tokens=1000)]}
    for budget in (0, 99, 100, 250, 1000, 5000):
        plan = allocate(tasks, budget, accept=0.8)
        assert plan["easy"] == 0
        assert planned_tokens(tasks, plan) <= budget
    plan = allocate(tasks, 300, accept=0.8)
    assert plan["hard"] >= plan["medium"] and plan["costly"] == 0  # gain per token favours cheap hard tasks
    assert sum(allocate(tasks, 10**6, accept=0.8, max_extra=4).values()) == 12  # capped per task


def test_weighted_vote_sums_verifier_scores():
    chosen, shares = weighted_vote([s("7", 0.2), s("7", 0.2), s("9", 0.9)])
    assert chosen == 2 and shares["9"] == pytest.approx(0.9 / 1.3, rel=1e-6)
    assert weighted_vote([s("7", 0.6), s("7", 0.5), s("9", 0.9)])[0] == 0
    assert weighted_vote([s(None, 0.2), s(None, 0.7)]) == (1, {})
    assert weighted_vote([]) == (None, {})


def test_synthetic_levels_have_their_accuracy():
    from ponder.envs.adaptive_synthetic import sample

    for q in questions(1):
        rate = sum(sample(q, seed)[1] for seed in range(2000)) / 2000
        assert rate == pytest.approx(q.accuracy, abs=0.03)


def test_adaptive_beats_uniform_on_the_mixed_difficulty_suite():
    """The algorithm check: same tokens -> higher accuracy; fewer tokens -> at least the same accuracy."""
    qs = questions(50)  # 200 questions, 50 per level
    budget = 4 * SAMPLE_TOKENS * len(qs)
    adaptive, spent, levels = simulate_adaptive(qs, budget)
    uniform4, tokens4 = simulate_uniform(qs, 4)
    uniform6, tokens6 = simulate_uniform(qs, 6)
    assert spent <= budget == tokens4
    assert adaptive > uniform4 + 0.02  # equal tokens: more right
    assert adaptive >= uniform6 and spent <= tokens6 * 2 / 3  # same accuracy for a third fewer tokens
    assert levels["easy"]["samples"] < 3 < levels["hard"]["samples"]  # the budget went to the hard questions
    assert levels["impossible"]["accuracy"] == 0.0 and not math.isnan(levels["medium"]["accuracy"])
