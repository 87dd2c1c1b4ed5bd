"""Evaluation metrics: SQuAD exact match and token F1, Wilson and bootstrap 95% intervals, run summaries.

Answer normalization is :mod:`ponder.core.answers` (the one normalizer); this module only adds the
metrics computed over normalized answers and the statistics over episodes.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from ponder.core.answers import normalize_text

if TYPE_CHECKING:
    from ponder.envs.base import EpisodeResult

#: z for a two-sided 95% interval.
Z95 = 1.959963984540054


def exact_match(prediction: str | None, gold: str | None) -> float:
    """SQuAD exact match: 1.0 when both normalize to the same text (missing answers score 0)."""
    if prediction is None or gold is None:
        return 0.0
    return float(normalize_text(prediction) == normalize_text(gold))


def f1_score(prediction: str | None, gold: str | None) -> float:
    """SQuAD token F1 between the normalized prediction and gold (bag of tokens).

    Two empty normalized texts score 1.0 (as in the official script); one empty side scores 0.0.
    """
    if prediction is None or gold is None:
        return 0.0
    pred, ref = normalize_text(prediction).split(), normalize_text(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def best_over(metric: Callable[[str | None, str | None], float], prediction: str | None,
              golds: Iterable[str]) -> float:
    """The best score of ``prediction`` against any of ``golds`` (answer aliases); 0.0 with none."""
    return max((metric(prediction, g) for g in golds), default=0.0)


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a success rate (95% by default).

    Args:
        successes: Episodes that succeeded.
        n: Episodes.
        z: Normal quantile (1.96 for 95%).

    Returns:
        ``(low, high)``; ``(0.0, 1.0)`` when ``n`` is 0.

    Raises:
        ValueError: when ``successes`` is outside ``[0, n]``.
    """
    if n == 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be within [0, {n}] (got {successes})")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return min(low, p), max(high, p)  # exact at the ends (rounding must not exclude p)


def bootstrap_ci(values: Sequence[float], *, resamples: int = 2000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (deterministic for a given ``seed``).

    Returns:
        ``(low, high)``; both equal the value for one value or constant values; ``(nan, nan)`` for none.
    """
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    if n == 1 or min(values) == max(values):
        return float(values[0]), float(values[0])
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(resamples))
    tail = (1 - confidence) / 2
    low = means[max(0, int(math.floor(tail * resamples)))]
    high = means[min(resamples - 1, int(math.ceil((1 - tail) * resamples)) - 1)]
    return low, high


class Estimate(BaseModel):
    """A mean (or rate) with its 95% interval."""

    value: float
    low: float
    high: float

    def fmt(self, digits: int = 3, percent: bool = False) -> str:
        """``0.600 [0.313, 0.832]`` (or ``60.0% [31.3, 83.2]`` with ``percent``)."""
        if percent:
            return f"{100 * self.value:.1f}% [{100 * self.low:.1f}, {100 * self.high:.1f}]"
        return f"{self.value:.{digits}g} [{self.low:.{digits}g}, {self.high:.{digits}g}]"


class Summary(BaseModel):
    """Aggregates over the episodes of one run (or one tier of it)."""

    n: int
    successes: int
    success_rate: Estimate
    score: Estimate
    metrics: dict[str, Estimate] = Field(default_factory=dict, description="Means of per-episode metrics (em, f1).")
    tokens: Estimate
    tool_calls: Estimate
    env_steps: Estimate
    wall_seconds: Estimate
    total_tokens: int = 0
    failures: dict[str, int] = Field(default_factory=dict)


def mean_ci(values: Sequence[float], seed: int = 0) -> Estimate:
    """The mean of ``values`` with a bootstrap 95% interval (0 with no values)."""
    if not values:
        return Estimate(value=0.0, low=0.0, high=0.0)
    low, high = bootstrap_ci(values, seed=seed)
    return Estimate(value=sum(values) / len(values), low=low, high=high)


def rate_ci(successes: int, n: int) -> Estimate:
    """A success rate with its Wilson 95% interval."""
    low, high = wilson_interval(successes, n)
    return Estimate(value=successes / n if n else 0.0, low=low, high=high)


def summarize(results: Sequence[EpisodeResult]) -> Summary:
    """Success rate (Wilson), mean score, per-episode metrics and compute (bootstrap) over ``results``."""
    n = len(results)
    wins = sum(1 for r in results if r.success)
    keys = sorted({k for r in results for k in r.metrics})
    failures = Counter(r.failure or "unknown" for r in results if not r.success)
    return Summary(
        n=n,
        successes=wins,
        success_rate=rate_ci(wins, n),
        score=mean_ci([r.score for r in results]),
        metrics={k: mean_ci([r.metrics[k] for r in results if k in r.metrics]) for k in keys},
        tokens=mean_ci([float(r.usage.total_tokens) for r in results]),
        tool_calls=mean_ci([float(r.usage.tool_calls) for r in results]),
        env_steps=mean_ci([float(r.env_steps) for r in results]),
        wall_seconds=mean_ci([r.usage.wall_seconds for r in results]),
        total_tokens=sum(r.usage.total_tokens for r in results),
        failures=dict(failures.most_common()),
    )
