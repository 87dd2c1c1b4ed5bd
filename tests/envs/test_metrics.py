"""Metric functions against hand-computed values: EM, F1, Wilson, bootstrap, run summaries."""

from __future__ import annotations

import math

import pytest

from ponder.core.records import Usage
from ponder.envs.base import EpisodeResult
from ponder.envs.metrics import best_over, bootstrap_ci, exact_match, f1_score, summarize, wilson_interval


@pytest.mark.parametrize(("pred", "gold", "em"), [
    ("The Beatles!", "beatles", 1.0),          # case, punctuation, article
    ("  an   apple ", "Apple", 1.0),
    ("Paris, France", "Paris", 0.0),
    (None, "x", 0.0),
    ("x", None, 0.0),
])
def test_exact_match(pred, gold, em):
    assert exact_match(pred, gold) == em


@pytest.mark.parametrize(("pred", "gold", "f1"), [
    # pred tokens cat sat on mat (4), gold cat on mat (3): common 3, P 3/4, R 1 -> 2*(3/4)/(7/4) = 6/7
    ("the cat sat on the mat", "cat on mat", 6 / 7),
    # bags: x x y vs x y y -> common min(2,1)+min(1,2) = 2, P = R = 2/3
    ("x x y", "x y y", 2 / 3),
    # g hall vs g stanley hall: common 2, P 1, R 2/3 -> 0.8
    ("G. Hall", "G. Stanley Hall", 0.8),
    ("Paris", "London", 0.0),
    ("the", "a", 1.0),        # both normalize to nothing: the official script scores 1
    ("the", "London", 0.0),   # one side empty
    (None, "London", 0.0),
])
def test_f1(pred, gold, f1):
    assert f1_score(pred, gold) == pytest.approx(f1)


def test_best_over_aliases():
    golds = ["G. Stanley Hall", "Stanley Hall"]
    assert best_over(exact_match, "stanley hall", golds) == 1.0
    # vs "stanley hall": common 1 (hall), P = R = 1/2 -> 0.5; vs the answer 0.8 -> best 0.8
    assert best_over(f1_score, "G. Hall", golds) == pytest.approx(0.8)
    assert best_over(f1_score, "x", []) == 0.0


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    # hand-computed from the Wilson formula with z = 1.959964 (and matching statsmodels' proportion_confint)
    (6, 10, 0.312673, 0.831819),
    (0, 10, 0.0, 0.277533),
    (10, 10, 0.722467, 1.0),
    (1, 2, 0.094531, 0.905469),
    (50, 100, 0.403832, 0.596168),
])
def test_wilson(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-6)
    assert hi == pytest.approx(high, abs=1e-6)


def test_wilson_edges():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_bootstrap_ci():
    values = [0.0, 1.0] * 50                     # mean 0.5, sd 0.5, n 100: normal approx 0.5 +- 0.098
    lo, hi = bootstrap_ci(values, seed=1)
    assert lo < 0.5 < hi
    assert lo == pytest.approx(0.402, abs=0.03) and hi == pytest.approx(0.598, abs=0.03)
    assert bootstrap_ci(values, seed=1) == (lo, hi)          # deterministic per seed
    assert bootstrap_ci([3.0, 3.0, 3.0]) == (3.0, 3.0)
    assert bootstrap_ci([7.0]) == (7.0, 7.0)
    lo, hi = bootstrap_ci([])
    assert math.isnan(lo) and math.isnan(hi)


def _result(i: int, success: bool, tokens: int, failure: str = "", f1: float = 0.0) -> EpisodeResult:
    return EpisodeResult(episode_id=f"e{i}", suite="t", task="q", success=success, score=float(success),
                         metrics={"em": float(success), "f1": f1}, failure=failure if not success else "",
                         env_steps=i, usage=Usage(prompt_tokens=tokens, completion_tokens=0, tool_calls=i,
                                                  wall_seconds=1.0))


def test_summarize_hand_table():
    # episode: success, tokens, failure, f1
    table = [_result(0, True, 100, f1=1.0), _result(1, False, 200, "wrong_answer", f1=0.5),
             _result(2, True, 300, f1=1.0), _result(3, False, 400, "timeout", f1=0.0),
             _result(4, False, 500, "wrong_answer", f1=0.25)]
    s = summarize(table)
    assert (s.n, s.successes) == (5, 2)
    assert s.success_rate.value == pytest.approx(0.4)
    assert (s.success_rate.low, s.success_rate.high) == pytest.approx(wilson_interval(2, 5))
    assert s.metrics["f1"].value == pytest.approx((1 + 0.5 + 1 + 0 + 0.25) / 5)
    assert s.tokens.value == pytest.approx(300.0) and s.total_tokens == 1500
    assert s.tool_calls.value == pytest.approx(2.0) and s.env_steps.value == pytest.approx(2.0)
    assert s.tokens.low <= 300 <= s.tokens.high
    assert s.failures == {"wrong_answer": 2, "timeout": 1}
    assert s.success_rate.fmt(percent=True) == "40.0% [11.8, 76.9]"


def test_wilson_is_exact_at_the_ends_for_large_n():
    for n in (1, 7, 258, 1000, 12345):
        assert wilson_interval(n, n)[1] == 1.0 and wilson_interval(0, n)[0] == 0.0
        lo, hi = wilson_interval(n // 3, n)
        assert lo <= (n // 3) / n <= hi
