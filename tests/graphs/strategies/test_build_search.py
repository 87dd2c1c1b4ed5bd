"""build_strategy for the search and verifier strategies: the dispatch on ``strategy_name`` and how they compose.

The strategy classes of the other modules are replaced by recording fakes (installed as the modules
``build_strategy`` imports them from), so these tests check the dispatch alone: which class, with which
arguments, wrapped in what.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from typing import Any

import pytest

from ponder.graphs.strategies.base import Outcome, StrategyContext
from ponder.graphs.strategies.build import build_strategy, run_spec
from ponder.graphs.strategies.self_consistency import SelfConsistency
from ponder.graphs.strategies.single import Single
from ponder.graphs.strategies.spec import RunSpec, parse_spec
from ponder.graphs.strategies.trials import Trials, WithMemory
from ponder.models.scripted import ScriptedModel


@dataclass
class Fake:
    """A strategy class stand-in: remembers its arguments, answers with its own name."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    name: str = ""

    def run(self, task: str, ctx: StrategyContext, label: str | None = None) -> Outcome:
        return Outcome(kind="single", task=task, answer=self.name, status="solved")


def _fake(name: str) -> type:
    return type(name, (Fake,), {"__init__": lambda self, *a, **k: Fake.__init__(self, a, k, name)})


MODULES = {"best_of_n": ("ponder.graphs.strategies.best_of_n", "BestOfN"),
           "refine": ("ponder.graphs.strategies.refine", "Refine"),
           "beam": ("ponder.graphs.search.beam", "BeamSearch"),
           "lats": ("ponder.graphs.search.lats", "LATS"),
           "adaptive": ("ponder.graphs.strategies.adaptive", "Adaptive")}


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> dict[str, type]:
    """Each strategy module replaced by one holding a recording fake class."""
    out = {}
    for strategy, (module, cls) in MODULES.items():
        fake = _fake(cls)
        monkeypatch.setitem(sys.modules, module, types.SimpleNamespace(**{cls: fake}))
        out[strategy] = fake
    return out


def test_best_of_n_gets_single_n_verifier_and_vote(fakes):
    spec = parse_spec({"strategy": "best_of_n", "samples": 4, "verifier": "execution:0.7, self:0.3",
                       "vote": "weighted", "agent": "pal"})
    built = build_strategy(spec)
    assert isinstance(built, fakes["best_of_n"])
    inner, n, verifier = built.args
    assert isinstance(inner, Single) and inner.agent == "pal"
    assert (n, verifier, built.kwargs) == (4, "execution:0.7,self:0.3", {"vote": True})
    plain = build_strategy(parse_spec({"strategy": "best_of_n"}))
    assert plain.args[1:] == (5, None) and plain.kwargs == {"vote": False}  # DEFAULT_SAMPLES, registry default


def test_refine_gets_rounds_verifier_and_accept(fakes):
    built = build_strategy(parse_spec({"strategy": "refine", "rounds": 2, "verifier": "env", "accept": 0.5}))
    assert isinstance(built, fakes["refine"]) and isinstance(built.args[0], Single)
    assert built.args[1:] == (2, "env", 0.5)


@pytest.mark.parametrize("name", ["beam", "lats", "adaptive"])
def test_searches_get_the_whole_spec(fakes, name):
    spec = parse_spec({"strategy": name, "budget": "20000t", "verifier": "self,env"})
    built = build_strategy(spec)
    assert isinstance(built, fakes[name]) and built.args == (spec,) and not built.kwargs


@pytest.mark.parametrize("name", ["beam", "lats", "refine"])
def test_samples_vote_over_the_strategy(fakes, name):
    built = build_strategy(parse_spec({"strategy": name, "samples": 3}))
    assert isinstance(built, SelfConsistency) and built.config.samples == 3
    assert isinstance(built.inner, fakes[name])


def test_best_of_n_samples_are_its_n_not_a_vote(fakes):
    built = build_strategy(parse_spec({"strategy": "best_of_n", "samples": 3, "trials": 2, "memory": "reflexion"}))
    assert isinstance(built, WithMemory) and isinstance(built.inner, Trials)
    assert isinstance(built.inner.inner, fakes["best_of_n"]) and built.inner.inner.args[1] == 3


def test_trials_and_memory_wrap_a_search(fakes):
    built = build_strategy(parse_spec({"strategy": "lats", "samples": 2, "trials": 2, "memory": "both",
                                       "compose": "samples_of_trials"}))
    assert isinstance(built, WithMemory) and isinstance(built.inner, SelfConsistency)
    assert isinstance(built.inner.inner, Trials) and isinstance(built.inner.inner.inner, fakes["lats"])


@pytest.mark.parametrize(("values", "kind"), [
    ({}, Single), ({"strategy": "single"}, Single), ({"strategy": "sc"}, SelfConsistency),
    ({"samples": 2}, SelfConsistency)])
def test_single_and_sc_are_unchanged(values, kind):
    assert type(build_strategy(parse_spec(values))) is kind


def test_run_spec_runs_the_chosen_strategy(fakes, tmp_path):
    from ponder.core.settings import load_settings

    ctx = StrategyContext(settings=load_settings(out_dir=tmp_path), model=ScriptedModel([]))
    outcome = run_spec("task", RunSpec(strategy="lats"), ctx)
    assert outcome.answer == "LATS"


def test_a_vote_over_searches_counts_everything_they_spent(monkeypatch, tmp_path):
    """A sample's verifier/reflection calls (outcome usage beyond its trajectories) count in the vote's usage."""
    from ponder.core.records import Usage
    from ponder.core.settings import load_settings

    extra = Usage(prompt_tokens=1000, completion_tokens=10, model_calls=4)

    class Searching:
        def __init__(self, spec: RunSpec) -> None:
            pass

        def run(self, task: str, ctx: StrategyContext, label: str | None = None) -> Outcome:
            one = Single().run(task, ctx, label)
            return Outcome.of("lats", task, [one], one, extra=extra)

    monkeypatch.setitem(sys.modules, "ponder.graphs.search.lats", types.SimpleNamespace(LATS=Searching))
    model = ScriptedModel(["Final Answer: 5"] * 3)
    ctx = StrategyContext(settings=load_settings(out_dir=tmp_path), model=model)
    outcome = run_spec("task", parse_spec({"strategy": "lats", "samples": 3}), ctx)
    steps = sum((t.usage for t in outcome.trajectories), Usage())
    assert outcome.answer == "5" and len(outcome.trajectories) == 3
    assert outcome.usage.model_calls == steps.model_calls + 3 * extra.model_calls == 15
    assert outcome.usage.prompt_tokens == steps.prompt_tokens + 3 * extra.prompt_tokens
