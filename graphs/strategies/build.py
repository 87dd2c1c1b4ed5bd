"""``build_strategy``: the strategy a :class:`~ponder.graphs.strategies.spec.RunSpec` describes.

The base strategy is the spec's ``strategy_name``:

- ``single`` and ``sc``: ``Single(agent)`` (``sc`` is the vote below around it);
- ``best_of_n``: ``BestOfN(Single, samples, verifier, vote=(vote == "weighted"))``: N runs, the verifier picks;
- ``refine``: ``Refine(Single, rounds, verifier, accept)``: revise with the verifier's feedback;
- ``beam`` / ``lats``: ``BeamSearch(spec)`` / ``LATS(spec)``: search over agent steps;
- ``adaptive``: ``Adaptive(spec)``: a cheap first pass decides how much more to spend.

Around it (``spec.voting``: ``samples > 1`` for every strategy but ``best_of_n`` and ``adaptive``, whose samples
are their own N):

- ``samples > 1``: ``SelfConsistency(base, SCConfig.from_spec(spec))`` (for ``beam``/``lats``/``refine``: a vote
  over N searches or refinements);
- ``trials > 1`` or memory on: ``Trials(inner, trials, learn)`` inside ``WithMemory(..., memory)``;
- both: ``Trials(SelfConsistency(base))`` for ``compose="trials_of_samples"`` (each trial votes; the
  chosen sample's reflection on a wrong voted answer is what the next trial reads), or
  ``SelfConsistency(Trials(base))`` for ``samples_of_trials`` (each sample is a trials run whose memory
  writes are held: a sample reads its own earlier reflections, and only the chosen sample's writes reach
  the store). Memory always wraps the outermost strategy, so one memory context serves the whole run.

The search and verifier strategies are imported when asked for, so this module imports without them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ponder.core.types import MemoryMode
from ponder.graphs.self_consistency.graph import SCConfig
from ponder.graphs.self_consistency.normalize import NormalizeContext
from ponder.graphs.strategies.base import Outcome, Strategy, StrategyContext
from ponder.graphs.strategies.self_consistency import SelfConsistency
from ponder.graphs.strategies.single import Single
from ponder.graphs.strategies.spec import RunSpec
from ponder.graphs.strategies.trials import Trials, WithMemory


def base_strategy(spec: RunSpec) -> Strategy:
    """The strategy of ``spec.strategy_name`` alone, before votes, trials and memory wrap it."""
    name = spec.strategy_name
    single = Single(spec.agent)
    if name == "best_of_n":
        from ponder.graphs.strategies.best_of_n import BestOfN

        return BestOfN(single, spec.samples, spec.verifier, vote=spec.vote == "weighted")
    if name == "refine":
        from ponder.graphs.strategies.refine import Refine

        return Refine(single, spec.rounds, spec.verifier, spec.accept)
    if name == "beam":
        from ponder.graphs.search.beam import BeamSearch

        return BeamSearch(spec)
    if name == "lats":
        from ponder.graphs.search.lats import LATS

        return LATS(spec)
    if name == "adaptive":
        from ponder.graphs.strategies.adaptive import Adaptive

        return Adaptive(spec)
    return single


def build_strategy(spec: RunSpec, *, memory: MemoryMode | None = None, normalize: NormalizeContext | None = None,
                   verifier: Callable[[str, Any], float] | None = None) -> Strategy:
    """The strategy for ``spec``.

    Args:
        spec: The validated run options.
        memory: The memory mode when ``spec.memory`` is unset (the settings' ``memory``; default ``none``).
        normalize: Options of the vote's normalizer (choices, code tests, a sandbox factory).
        verifier: ``(task, trajectory) -> score`` for weighted votes instead of log-probabilities.
    """
    mode: MemoryMode = spec.memory or memory or "none"
    base = base_strategy(spec)
    voting = spec.voting
    retrying = spec.trials > 1 or mode != "none"

    def vote(inner: Strategy) -> Strategy:
        return SelfConsistency(inner, SCConfig.from_spec(spec, normalize=normalize, verifier=verifier))

    def retry(inner: Strategy) -> Strategy:
        return Trials(inner, spec.trials, spec.learn)

    if voting and retrying and spec.compose == "samples_of_trials":
        strategy = vote(retry(base))
    elif voting and retrying:
        strategy = retry(vote(base))
    elif voting:
        strategy = vote(base)
    elif retrying:
        strategy = retry(base)
    else:
        strategy = base
    return WithMemory(strategy, mode) if mode != "none" else strategy


def run_spec(task: str, spec: RunSpec, ctx: StrategyContext, label: str | None = None) -> Outcome:
    """Run ``task`` the way ``spec`` says (memory mode default: ``ctx.settings.memory``)."""
    return build_strategy(spec, memory=ctx.settings.memory).run(task, ctx.derive(agent=spec.agent or ctx.agent),
                                                                 label)
