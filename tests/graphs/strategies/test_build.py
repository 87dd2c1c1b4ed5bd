"""build_strategy: which strategy objects a RunSpec becomes, and how they nest."""

from __future__ import annotations

import pytest

from ponder.graphs.strategies.base import Strategy
from ponder.graphs.strategies.build import build_strategy
from ponder.graphs.strategies.self_consistency import SelfConsistency
from ponder.graphs.strategies.single import Single
from ponder.graphs.strategies.spec import parse_spec
from ponder.graphs.strategies.trials import Trials, WithMemory


def shape(strategy: Strategy) -> str:
    """``WithMemory(both)>Trials(2)>SelfConsistency(3)>Single(pal)``."""
    if isinstance(strategy, WithMemory):
        return f"WithMemory({strategy.mode})>{shape(strategy.inner)}"
    if isinstance(strategy, Trials):
        return f"Trials({strategy.attempts})>{shape(strategy.inner)}"
    if isinstance(strategy, SelfConsistency):
        return f"SelfConsistency({strategy.config.samples})>{shape(strategy.inner)}"
    assert isinstance(strategy, Single)
    return f"Single({strategy.agent})"


@pytest.mark.parametrize(("values", "expected"), [
    ({}, "Single(None)"),
    ({"agent": "pal"}, "Single(pal)"),
    ({"samples": 3}, "SelfConsistency(3)>Single(None)"),
    ({"trials": 2}, "Trials(2)>Single(None)"),
    ({"memory": "reflexion"}, "WithMemory(reflexion)>Trials(1)>Single(None)"),
    ({"memory": "none", "trials": 2}, "Trials(2)>Single(None)"),
    ({"samples": 3, "trials": 2, "memory": "both"}, "WithMemory(both)>Trials(2)>SelfConsistency(3)>Single(None)"),
    ({"samples": 3, "trials": 2, "memory": "both", "compose": "samples_of_trials"},
     "WithMemory(both)>SelfConsistency(3)>Trials(2)>Single(None)"),
    ({"samples": 3, "memory": "expel"}, "WithMemory(expel)>Trials(1)>SelfConsistency(3)>Single(None)"),
])
def test_shapes(values, expected):
    strategy = build_strategy(parse_spec(values))
    assert isinstance(strategy, Strategy) and shape(strategy) == expected


def test_memory_default_comes_from_the_caller_and_the_spec_wins():
    assert shape(build_strategy(parse_spec({}), memory="expel")) == "WithMemory(expel)>Trials(1)>Single(None)"
    assert shape(build_strategy(parse_spec({"memory": "none"}), memory="expel")) == "Single(None)"


def test_the_vote_options_reach_self_consistency():
    strategy = build_strategy(parse_spec({"samples": 5, "vote": "judge", "early_stop": True, "budget": "3s"}))
    assert isinstance(strategy, SelfConsistency)
    config = strategy.config
    assert (config.vote, config.early_stop, str(config.budget)) == ("judge", True, "3 samples")


def test_trials_refuse_zero_attempts():
    from ponder.core.errors import ConfigError

    with pytest.raises(ConfigError, match="at least 1"):
        Trials(Single(), 0)
