"""When to stop sampling: exact "the leader can no longer be overtaken", a Beta posterior, or the ESC window.

- ``certain``: stop when no outcome of the remaining samples could change the winner (the tie-break
  included). Never changes the answer compared with running every sample.
- ``beta``: stop when P(leader's true share > runner-up's) under a uniform Beta prior reaches a threshold
  (default 0.95): 4 of 4 agreeing is enough, 3 of 3 is not. May stop earlier than ``certain`` and, rarely,
  pick a different answer than all samples would.
- ``esc``: early-stopping self-consistency (Li et al., 2024): stop when the latest window of samples
  (default: the last wave) agrees unanimously.

A :class:`Budget` caps the spend in samples or tokens, whatever the rule says.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ponder.core.errors import ConfigError
from ponder.core.types import StopRule, choices
from ponder.graphs.self_consistency.voting import Ballot, VoteTable

_BUDGET = re.compile(r"^\s*(\d+)\s*(t|tok|tokens?|s|samples?)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Budget:
    """A cap on self-consistency compute: ``samples`` launched or ``tokens`` spent (prompt + completion)."""

    kind: Literal["samples", "tokens"]
    value: int

    @classmethod
    def parse(cls, text: str | None) -> Budget | None:
        """Parse ``"4000t"`` / ``"4000 tokens"`` (tokens) or ``"6s"`` / ``"6 samples"`` / ``"6"`` (samples).

        Raises:
            ConfigError: for anything else, or a zero budget.
        """
        if text is None or not str(text).strip():
            return None
        match = _BUDGET.match(str(text))
        if not match or int(match.group(1)) <= 0:
            raise ConfigError(f"invalid budget {text!r}: use e.g. '4000t' (tokens) or '6s' (samples)")
        unit = (match.group(2) or "s").lower()
        return cls("tokens" if unit.startswith("t") else "samples", int(match.group(1)))

    def allows(self, launched: int, tokens: int) -> int | None:
        """How many more samples may start (``None``: no sample cap), or 0 when the budget is spent."""
        if self.kind == "samples":
            return max(0, self.value - launched)
        return None if tokens < self.value else 0

    def __str__(self) -> str:
        return f"{self.value} {self.kind}"


def beta_confidence(leader: int, runner_up: int) -> float:
    """P(p_leader > p_runner_up) for the two leading answers: 1 - I_0.5(leader + 1, runner_up + 1), exactly."""
    a, b = leader + 1, runner_up + 1
    n = a + b - 1
    # I_0.5(a, b) = sum_{j=a}^{n} C(n, j) / 2^n for integer a, b.
    below = sum(math.comb(n, j) for j in range(a, n + 1))
    return 1.0 - below / 2**n


def leader_is_certain(table: VoteTable, remaining: int, max_weight: float = 1.0,
                      first_pending: float = math.inf) -> bool:
    """Whether no votes of the ``remaining`` samples can change the winner.

    Majority votes keep the tie-break (an equal count goes to the answer voted first, i.e. with the lowest
    sample index). ``first_pending`` is the lowest index among the samples not counted yet: when samples finish
    out of order (all launched at once), an unfinished sample with a lower index than the leader's first vote
    could give a challenger the tie-break; by default every pending sample comes after the counted ones.
    Weighted votes need a strict lead of more than ``remaining * max_weight``.
    """
    if not table.rows:
        return remaining == 0
    leader = table.rows[0]
    if table.method == "weighted":
        runner_weight = table.rows[1].weight if len(table.rows) > 1 else 0.0
        return leader.weight - runner_weight > remaining * max_weight
    for challenger in [*table.rows[1:], None]:
        votes = challenger.votes if challenger else 0
        first = min(challenger.samples[0] if challenger else math.inf, first_pending)
        lead = leader.votes - votes
        if lead < remaining or (lead == remaining and first < leader.samples[0]):
            return False
    return True


def settled(rule: StopRule, table: VoteTable, ballots: Sequence[Ballot], remaining: int, *, threshold: float = 0.95,
            window: int = 4, first_pending: float = math.inf) -> bool:
    """Whether sampling may stop under ``rule`` with ``remaining`` samples not yet counted.

    ``first_pending``: the lowest index among the samples not counted (see :func:`leader_is_certain`).

    Raises:
        ConfigError: for an unknown rule.
    """
    if rule not in choices(StopRule):
        raise ConfigError(f"unknown stop rule {rule!r}; choose one of: {', '.join(choices(StopRule))}")
    if remaining <= 0 or leader_is_certain(table, remaining, first_pending=first_pending):
        return True
    if rule == "beta" and table.rows:
        runner_up = table.rows[1].votes if len(table.rows) > 1 else 0
        return beta_confidence(table.rows[0].votes, runner_up) >= threshold
    if rule == "esc":
        latest = sorted(ballots, key=lambda b: b.index)[-window:]
        return len(latest) >= window and latest[0].key is not None and all(b.key == latest[0].key for b in latest)
    return False
