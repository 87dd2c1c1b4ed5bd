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


def test_certain_with_samples_finishing_out_of_order():
    """Samples 1-4 agree, sample 0 and 5-7 are still running: a 4-4 tie could go to sample 0's answer."""
    table = tally([Ballot(index=i, answer="7", key="7") for i in (1, 2, 3, 4)])
    assert not leader_is_certain(table, 4, first_pending=0)
    assert leader_is_certain(table, 4, first_pending=5)
    assert not settled("certain", table, [], 4, first_pending=0)


def test_certain_never_changes_the_winner_whatever_subset_has_finished():
    """Every answer sequence of length 5 over 2 answers (+ abstain) and every finished subset: when ``certain``
    settles, the finished samples and every larger set of them (samples that finished before they could be
    cancelled) give the full run's winner."""
    n = 5
    for seq in itertools.product(["a", "b", None], repeat=n):
        full = table_of(list(seq)).winner
        for mask in range(1 << n):
            done = [i for i in range(n) if mask >> i & 1]
            if len(done) == n:
                continue
            ballots = [Ballot(index=i, answer=seq[i], key=seq[i]) for i in done]
            pending = min(i for i in range(n) if i not in done)
            if not settled("certain", tally(ballots), ballots, n - len(done), first_pending=pending):
                continue
            for extra in range(1 << n):
                more = [Ballot(index=i, answer=seq[i], key=seq[i]) for i in range(n) if (mask | extra) >> i & 1]
                assert tally(more).winner == full, (seq, done, extra)
