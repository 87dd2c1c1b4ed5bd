"""Votes and answer normalization: tables computed by hand."""

from __future__ import annotations

import pytest

from ponder.core.errors import ConfigError
from ponder.core.settings import load_settings
from ponder.graphs.self_consistency.normalize import NormalizeContext, answer_key, canonical_code, register_normalizer
from ponder.graphs.self_consistency.voting import Ballot, logprob_weight, tally


def ballots(*keys, weights=None):
    weights = weights or [1.0] * len(keys)
    return [Ballot(index=i, answer=k, key=k, weight=w) for i, (k, w) in enumerate(zip(keys, weights, strict=True))]


def test_majority_counts_and_orders_rows():
    table = tally(ballots("7", "5", "7", None, "5", "7"))
    assert table.winner == "7"
    assert [(r.key, r.votes, r.samples) for r in table.rows] == [("7", 3, [0, 2, 5]), ("5", 2, [1, 4])]
    assert table.abstained == [3]
    assert table.valid_votes == 5
    assert table.agreement == pytest.approx(3 / 5)


def test_tie_goes_to_the_answer_voted_first_whatever_the_finishing_order():
    forward = tally(ballots("5", "7", "7", "5"))
    shuffled = tally(list(reversed(ballots("5", "7", "7", "5"))))
    assert forward.winner == shuffled.winner == "5"
    assert forward.rows == shuffled.rows


def test_weighted_vote_can_overturn_the_majority():
    table = tally(ballots("7", "7", "5", weights=[0.2, 0.2, 0.9]), "weighted")
    assert table.winner == "5"
    assert table.rows[0].weight == pytest.approx(0.9)
    assert table.rows[1].weight == pytest.approx(0.4)
    assert tally(ballots("7", "7", "5", weights=[0.2, 0.2, 0.9]), "majority").winner == "7"


def test_all_abstain_gives_no_winner():
    table = tally(ballots(None, None))
    assert table.winner is None and table.answer is None and table.agreement == 0.0


def test_unknown_vote_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown vote"):
        tally([], "plurality")


def test_logprob_weight_is_the_geometric_mean_token_probability():
    assert logprob_weight(-2.0, 4) == pytest.approx(0.6065306597)
    assert logprob_weight(None, 4) is None
    assert logprob_weight(-1.0, 0) is None


@pytest.mark.parametrize(("kind", "a", "b", "same"), [
    ("number", "The answer is 1,000 apples.", "1000", True),
    ("number", "3.0", "3", True),
    ("number", "3/4", "0.75", True),
    ("number", "$18.00", "18 dollars", True),
    ("number", "18", "19", False),
    ("auto", "1,200", "1200.0", True),
    ("auto", "The Eiffel Tower!", "eiffel tower", True),
    ("auto", "Paris", "London", False),
    ("text", "An apple.", "apple", True),
    ("choice", "(B)", "The answer is B.", True),
    ("choice", "b) forty", "B", True),
    ("choice", "A", "C", False),
    ("code", "def f(x):\n    return x+1  # add", "```python\ndef f(x):\n\n    return (x + 1)\n```", True),
    ("code", "def f(x): return x+1", "def f(x): return x+2", False),
])
def test_normalization_table(kind, a, b, same):
    assert (answer_key(a, kind) == answer_key(b, kind)) is same
    assert answer_key(a, kind) is not None


@pytest.mark.parametrize(("kind", "answer"), [("number", "no idea"), ("choice", "maybe"), ("code", "def ("),
                                               ("auto", "   "), ("text", "the")])
def test_unusable_answers_abstain(kind, answer):
    assert answer_key(answer, kind) is None


def test_choice_by_option_text():
    ctx = NormalizeContext(choices=["red", "green", "blue"])
    assert answer_key("Green", "choice", ctx) == "B"
    assert answer_key("(D)", "choice", ctx) is None  # not an option


def test_code_with_tests_groups_programs_by_behaviour():
    settings = load_settings()
    from ponder.tools.sandbox import open_sandbox

    ctx = NormalizeContext(tests=["assert f(1) == 2", "assert f(-1) == 0"],
                           executor_factory=lambda: open_sandbox(settings))
    right_a = answer_key("def f(x):\n    return x + 1", "code", ctx)
    right_b = answer_key("def f(x):\n    y = x\n    return y + 1", "code", ctx)
    wrong = answer_key("def f(x):\n    return abs(x) + 1", "code", ctx)
    assert right_a == right_b == "tests:PP"
    assert wrong == "tests:PF"


def test_code_with_tests_needs_a_sandbox():
    with pytest.raises(ConfigError, match="sandbox"):
        answer_key("def f(): pass", "code", NormalizeContext(tests=["assert f() is None"]))


def test_custom_normalizer_and_unknown_kind():
    register_normalizer("upper", lambda answer, ctx: answer.strip().upper())
    assert answer_key(" yes ", "upper") == "YES"
    with pytest.raises(ConfigError, match="unknown answer kind"):
        answer_key("x", "nope")


def test_canonical_code_ignores_comments_and_layout():
    assert canonical_code("x=1 # c\n\n\ny = (x)") == "x = 1\ny = x"
    assert canonical_code("def (") is None
