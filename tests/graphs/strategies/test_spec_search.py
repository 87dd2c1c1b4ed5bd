"""RunSpec's search options: which strategy each applies to, one clear line when it does not."""

from __future__ import annotations

import pytest

from ponder.core.errors import ConfigError
from ponder.graphs.strategies.spec import DEFAULT_SAMPLES, parse_spec


@pytest.mark.parametrize(("values", "message"), [
    ({"strategy": "bogus"}, "--strategy must be one of: single, sc, best_of_n, beam, lats, refine, adaptive"),
    ({"strategy": "lats", "verifier": "nope"}, "--verifier: unknown verifier 'nope'"),
    ({"strategy": "beam", "beam_width": 0}, "--beam-width must be at least 1 (got 0)"),
    ({"beam_width": 5}, "--beam-width applies to --strategy beam"),
    ({"strategy": "lats", "beam_width": 2}, "--beam-width applies to --strategy beam"),
    ({"strategy": "refine", "expansions": 2}, "--expansions applies to --strategy beam or lats"),
    ({"strategy": "beam", "exploration": 2.0}, "--exploration applies to --strategy lats"),
    ({"strategy": "beam", "iterations": 4}, "--iterations applies to --strategy lats"),
    ({"strategy": "lats", "rounds": 2}, "--rounds applies to --strategy refine"),
    ({"samples": 3, "accept": 0.5}, "--accept applies to --strategy refine, beam, lats or adaptive"),
    ({"verifier": "self"}, "--verifier applies to --strategy best_of_n, refine, beam, lats or adaptive"),
    ({"strategy": "beam", "verifier": "self", "prm": "embedded"}, "--prm applies to --verifier prm"),
    ({"strategy": "best_of_n", "vote": "judge"}, "--vote judge applies to --strategy sc"),
    ({"strategy": "best_of_n", "early_stop": True}, "--early-stop applies to self-consistency"),
    ({"strategy": "adaptive", "stop_rule": "beta"}, "--stop-rule applies to self-consistency"),
    ({"strategy": "best_of_n", "budget": "2000t"}, "--budget applies to --strategy sc, beam, lats or adaptive"),
    ({"strategy": "refine", "budget": "2000t"}, "(refine: --rounds bounds it)"),
    ({"strategy": "lats", "budget": "many"}, "--budget"),
])
def test_refused_with_one_line(values, message):
    with pytest.raises(ConfigError) as info:
        parse_spec(values)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(("values", "name", "samples", "voting"), [
    ({}, "single", 1, False),
    ({"samples": 3}, "sc", 3, True),
    ({"strategy": "sc"}, "sc", DEFAULT_SAMPLES, True),
    ({"strategy": "best_of_n"}, "best_of_n", DEFAULT_SAMPLES, False),
    ({"strategy": "best_of_n", "samples": 8, "vote": "weighted", "verifier": "execution,self"}, "best_of_n", 8,
     False),
    ({"strategy": "lats", "budget": "20000t", "verifier": "self,env", "iterations": 10, "exploration": 0.5},
     "lats", 1, False),
    ({"strategy": "beam", "beam_width": 2, "expansions": 4, "verifier": "prm", "prm": "embedded"}, "beam", 1, False),
    ({"strategy": "beam", "prm": "embedded"}, "beam", 1, False),
    ({"strategy": "refine", "rounds": 2, "accept": 0.6, "samples": 3, "budget": "6s"}, "refine", 3, True),
    ({"strategy": "adaptive", "budget": "4000t"}, "adaptive", 1, False),
])
def test_accepted(values, name, samples, voting):
    spec = parse_spec(values)
    assert (spec.strategy_name, spec.samples, spec.voting) == (name, samples, voting)


def test_verifier_list_is_normalized():
    assert parse_spec({"strategy": "lats", "verifier": " self:0.5 , env"}).verifier == "self:0.5,env"


def test_switching_strategy_drops_what_the_new_one_does_not_read():
    beam = parse_spec({"strategy": "beam", "beam_width": 5, "expansions": 2, "verifier": "prm", "budget": "9000t"})
    lats = beam.with_updates(strategy="lats")
    assert (lats.beam_width, lats.expansions, lats.verifier, lats.budget) == (3, 2, "prm", "9000t")
    sc = parse_spec({"samples": 9, "vote": "weighted", "early_stop": True, "budget": "20s"})
    best = sc.with_updates(strategy="best_of_n")
    assert (best.samples, best.vote, best.early_stop, best.budget) == (DEFAULT_SAMPLES, "majority", False, None)
    assert best.with_updates(strategy="single").samples == 1
    assert sc.with_updates(strategy="sc").samples == 9  # no change of strategy: nothing dropped
    assert beam.with_updates(strategy="sc", samples=3).budget == "9000t"
    with pytest.raises(ConfigError, match="--beam-width applies to --strategy beam"):
        lats.with_updates(beam_width=4)
