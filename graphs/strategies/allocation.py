"""Compute-optimal allocation of samples (Snell et al.-style): difficulty, expected gain, greedy plan, vote.

Pure functions over :class:`SampleRecord` lists, shared by the per-task :class:`~ponder.graphs.strategies.adaptive.
Adaptive` strategy and the suite-level allocator (:mod:`ponder.envs.adaptive`). Nothing here looks at a label:
difficulty is estimated from the samples' agreement and their verifier scores only.

**The gain model.** A task's per-sample success probability ``p`` is unknown; its posterior after the samples
seen is ``Beta(1 + sum s_j, 1 + sum (1 - s_j))``, where ``s_j`` in [0, 1] is sample ``j``'s verifier score (a
soft success count; the uniform prior is the pseudo-count 1/1). The confidence that the current best answer
is already right is ``c``: the noisy-OR ``1 - prod (1 - s_j)`` over the samples that gave the best-scored
answer, so two agreeing samples raise it. Assuming the verifier-weighted vote picks a correct answer once one
is sampled (best-of-N with a good verifier), the ``k``-th extra sample helps only when it is correct and none of
the ``k - 1`` before was and the current answer is wrong::

    gain(k) = (1 - c) * E[p (1 - p)^(k - 1)] = (1 - c) * B(a + 1, b + k - 1) / B(a, b)

which decreases in ``k``, so spending greedily by ``gain / tokens`` is optimal for this separable concave model.
A task's cost per extra sample is the most tokens one of its samples cost so far (conservative).
Difficulty bins (reports): ``easy`` (the samples agree and the best score is at least ``accept``: no more
samples), ``medium`` (they agree, or some score is at least 0.5), ``hard`` (otherwise).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, Field

#: Difficulty bins, from the first pass.
Difficulty = Literal["easy", "medium", "hard"]


class SampleRecord(BaseModel):
    """One sample of a task: its answer, vote key, verifier score and cost."""

    answer: str | None = None
    key: str | None = Field(None, description="The normalized answer (None: abstains from the vote).")
    score: float = Field(0.0, ge=0.0, le=1.0, description="The verifier's score.")
    tokens: int = Field(0, ge=0, description="Prompt + completion tokens of the sample and its verification.")
    trajectory_id: str | None = None
    seed: int | None = None
    status: str = Field("solved", description="How the sample's run ended.")


def agree(samples: Sequence[SampleRecord]) -> bool:
    """Whether at least two samples gave the same (non-abstaining) answer and no sample gave another."""
    keys = [s.key for s in samples if s.key is not None]
    return len(keys) >= 2 and len(set(keys)) == 1


def posterior(samples: Sequence[SampleRecord]) -> tuple[float, float]:
    """``(a, b)`` of the Beta posterior of the per-sample success probability (verifier scores as soft counts)."""
    good = sum(s.score for s in samples)
    return 1.0 + good, 1.0 + len(samples) - good


def confidence(samples: Sequence[SampleRecord]) -> float:
    """The noisy-OR of the verifier scores of the best-supported answer (0 with no samples)."""
    groups = [[s] for s in samples if s.key is None]  # abstaining samples (env episodes) stand alone
    groups += [[s for s in samples if s.key == key] for key in {s.key for s in samples if s.key is not None}]
    best = 0.0
    for group in groups:
        best = max(best, 1.0 - math.prod(1.0 - s.score for s in group))
    return best


def difficulty(samples: Sequence[SampleRecord], accept: float) -> Difficulty:
    """The bin of a task from its first-pass samples (see the module docstring)."""
    top = max((s.score for s in samples), default=0.0)
    if agree(samples) and top >= accept:
        return "easy"
    if agree(samples) or top >= 0.5:
        return "medium"
    return "hard"


def expected_gain(samples: Sequence[SampleRecord], k: int) -> float:
    """The expected gain in P(correct) of the ``k``-th extra sample (``k >= 1``) under the module's model."""
    if k < 1:
        raise ValueError(f"k must be at least 1 (got {k})")
    a, b = posterior(samples)
    log_ratio = (math.lgamma(a + 1) + math.lgamma(b + k - 1) - math.lgamma(a + b + k)
                 - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)))
    return (1.0 - confidence(samples)) * math.exp(log_ratio)


def sample_cost(samples: Sequence[SampleRecord], default: int = 1) -> int:
    """Tokens one more sample is expected to cost: the most one sample cost so far (at least 1)."""
    return max(1, max((s.tokens for s in samples), default=default))


def allocate(tasks: Mapping[str, Sequence[SampleRecord]], budget_tokens: int, *, accept: float,
             max_extra: int = 16) -> dict[str, int]:
    """Extra samples per task, greedily by expected gain per token, within ``budget_tokens`` (planned cost).

    Easy tasks get none; a task gets at most ``max_extra``. The planned cost (``extra * sample_cost``) of the
    plan never exceeds ``budget_tokens``.
    """
    plan = {task: 0 for task in tasks}
    heap: list[tuple[float, str]] = []
    for task, samples in tasks.items():
        if difficulty(samples, accept) != "easy" and max_extra > 0:
            heapq.heappush(heap, (-expected_gain(samples, 1) / sample_cost(samples), task))
    left = budget_tokens
    while heap:
        ratio, task = heapq.heappop(heap)
        cost = sample_cost(tasks[task])
        if ratio >= 0 or cost > left:
            continue  # no gain, or this task's samples no longer fit (a cheaper task's may)
        plan[task] += 1
        left -= cost
        if plan[task] < max_extra:
            heapq.heappush(heap, (-expected_gain(tasks[task], plan[task] + 1) / cost, task))
    return plan


def planned_tokens(tasks: Mapping[str, Sequence[SampleRecord]], plan: Mapping[str, int]) -> int:
    """The planned token cost of ``plan``."""
    return sum(n * sample_cost(tasks[t]) for t, n in plan.items())


def weighted_vote(samples: Sequence[SampleRecord]) -> tuple[int | None, dict[str, float]]:
    """The verifier-weighted vote: the index of the chosen sample and each key's weight share.

    The answer with the largest summed verifier score wins (ties: the earliest); its best-scored sample is
    chosen. When every sample abstains, the best-scored sample is chosen (best-of-N).
    """
    if not samples:
        return None, {}
    weights: dict[str, float] = {}
    for s in samples:
        if s.key is not None:
            weights[s.key] = weights.get(s.key, 0.0) + s.score + 1e-9  # a zero score still counts as a vote
    total = sum(weights.values())
    shares = {k: w / total for k, w in weights.items()} if total else {}
    if not weights:
        return max(range(len(samples)), key=lambda i: (samples[i].score, -i)), shares
    winner = max(weights, key=lambda k: (weights[k], -next(i for i, s in enumerate(samples) if s.key == k)))
    group = [i for i, s in enumerate(samples) if s.key == winner]
    return max(group, key=lambda i: (samples[i].score, -i)), shares
