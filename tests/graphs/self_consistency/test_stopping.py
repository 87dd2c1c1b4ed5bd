"""Stop rules: exact certainty (never changes the winner), the Beta posterior, the ESC window, budgets."""

from __future__ import annotations

import itertools
import random

import pytest

from ponder.core.errors import ConfigError
from ponder.graphs.self_consistency.stopping import Budget, beta_confidence, leader_is_certain, settled
from ponder.graphs.self_consistency.voting import Ballot, tally


def table_of(keys):
    return tally([Ballot(index=i, answer=k, key=k) for i, k in enumerate(keys)])


@pytest.mark.parametrize(("leader", "runner", "expected"), [
    (4, 0, 1 - 1 / 32), (3, 0, 1 - 1 / 16), (0, 0, 0.5), (3, 1, 1 - 6 / 32), (1, 3, 6 / 32),
])
def test_beta_confidence_exact_values(leader, runner, expected):
    assert beta_confidence(leader, runner) == pytest.approx(expected)


def test_beta_confidence_matches_numerical_integration():
    # P(X > 1/2) for X ~ Beta(a, b) by the midpoint rule.
    for leader, runner in [(5, 2), (2, 2), (7, 0), (6, 3)]:
        a, b = leader + 1, runner + 1
        steps = 200_000
        xs = [(i + 0.5) / steps for i in range(steps)]
        dens = [x ** (a - 1) * (1 - x) ** (b - 1) for x in xs]
        total = sum(dens)
        above = sum(d for x, d in zip(xs, dens, strict=True) if x > 0.5)
        assert beta_confidence(leader, runner) == pytest.approx(above / total, abs=1e-4)


def test_leader_is_certain_cases():
    assert leader_is_certain(table_of(["7"] * 4), 4)          # a tie at 4-4 goes to 7, voted first
    assert not leader_is_certain(table_of(["7"] * 3), 4)
    assert not leader_is_certain(table_of(["5", "7", "7"]), 1)  # 2-1 with one left: 5 (first) could tie and win
    assert leader_is_certain(table_of(["7", "5", "7"]), 1)      # 7 voted first: a tie still goes to 7
    assert leader_is_certain(table_of([]), 0)
    assert not leader_is_certain(table_of([None, None]), 2)


def test_weighted_certainty_needs_a_strict_weight_lead():
    table = tally([Ballot(index=0, key="a", weight=0.9), Ballot(index=1, key="b", weight=0.3)], "weighted")
    assert leader_is_certain(table, 0)
    assert not leader_is_certain(table, 1)  # 0.6 lead < one more vote of weight up to 1


def test_certain_rule_never_changes_the_winner_exhaustively():
    """Every answer sequence of length 6 over 3 answers (+ abstain), waves of 2: stopping never changes the winner."""
    for seq in itertools.product(["a", "b", "c", None], repeat=6):
        full = table_of(list(seq)).winner
        for cut in (2, 4):
            part = list(seq[:cut])
            if settled("certain", table_of(part), [Ballot(index=i, key=k) for i, k in enumerate(part)], 6 - cut):
                assert table_of(part).winner == full, (seq, cut)


def test_esc_window_and_unknown_rule():
    part = ["a", "b", "c", "c", "c", "c"]
    bal = [Ballot(index=i, key=k) for i, k in enumerate(part)]
    assert settled("esc", table_of(part), bal, 10, window=4)
    assert not settled("esc", table_of(part), bal, 10, window=5)
    with pytest.raises(ConfigError, match="stop rule"):
        settled("magic", table_of(part), bal, 3)


def test_beta_stops_earlier_than_certain_on_agreement():
    part = ["a"] * 4
    bal = [Ballot(index=i, key=k) for i, k in enumerate(part)]
    assert settled("beta", table_of(part), bal, 12)
    assert not settled("certain", table_of(part), bal, 12)


@pytest.mark.parametrize(("text", "kind", "value"), [("4000t", "tokens", 4000), ("4000 tokens", "tokens", 4000),
                                                     ("6s", "samples", 6), ("6 samples", "samples", 6),
                                                     ("6", "samples", 6)])
def test_budget_parse(text, kind, value):
    budget = Budget.parse(text)
    assert (budget.kind, budget.value) == (kind, value)


@pytest.mark.parametrize("text", ["0", "-3", "lots", "5 minutes"])
def test_bad_budget(text):
    with pytest.raises(ConfigError, match="invalid budget"):
        Budget.parse(text)


def test_budget_allows():
    assert Budget("samples", 5).allows(3, 10**9) == 2
    assert Budget("tokens", 100).allows(3, 99) is None
    assert Budget("tokens", 100).allows(3, 100) == 0
    assert Budget.parse(None) is None


def test_random_sequences_certain_rule_with_uneven_waves():
    rng = random.Random(7)
    for _ in range(2000):
        n = rng.randint(1, 12)
        seq = [rng.choice("aab") if rng.random() > 0.1 else None for _ in range(n)]
        for cut in range(1, n):
            part = seq[:cut]
            if settled("certain", table_of(part), [Ballot(index=i, key=k) for i, k in enumerate(part)], n - cut):
                assert table_of(part).winner == table_of(seq).winner
