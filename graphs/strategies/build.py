"""``build_strategy``: the strategy a :class:`~ponder.graphs.strategies.spec.RunSpec` describes.

- one sample, one trial, no memory: ``Single(agent)``;
- ``samples > 1``: ``SelfConsistency(inner, SCConfig.from_spec(spec))``;
- ``trials > 1`` or memory on: ``Trials(inner, trials, learn)`` inside ``WithMemory(..., memory)``;
- both: ``Trials(SelfConsistency(Single))`` for ``compose="trials_of_samples"`` (each trial votes; the
  chosen sample's reflection on a wrong voted answer is what the next trial reads), or
  ``SelfConsistency(Trials(Single))`` for ``samples_of_trials`` (each sample is a trials run whose memory
  writes are held: a sample reads its own earlier reflections, and only the chosen sample's writes reach
  the store). Memory always wraps the outermost strategy, so one memory context serves the whole run.
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
    single = Single(spec.agent)
    voting = spec.samples > 1
    retrying = spec.trials > 1 or mode != "none"

    def vote(inner: Strategy) -> Strategy:
        return SelfConsistency(inner, SCConfig.from_spec(spec, normalize=normalize, verifier=verifier))

    def retry(inner: Strategy) -> Strategy:
        return Trials(inner, spec.trials, spec.learn)

    if voting and retrying and spec.compose == "samples_of_trials":
        strategy = vote(retry(single))
    elif voting and retrying:
        strategy = retry(vote(single))
    elif voting:
        strategy = vote(single)
    elif retrying:
        strategy = retry(single)
    else:
        strategy = single
    return WithMemory(strategy, mode) if mode != "none" else strategy


def run_spec(task: str, spec: RunSpec, ctx: StrategyContext, label: str | None = None) -> Outcome:
    """Run ``task`` the way ``spec`` says (memory mode default: ``ctx.settings.memory``)."""
    return build_strategy(spec, memory=ctx.settings.memory).run(task, ctx.derive(agent=spec.agent or ctx.agent),
                                                                 label)
