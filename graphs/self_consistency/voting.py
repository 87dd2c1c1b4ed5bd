"""Aggregating sample answers: majority and weighted votes with a deterministic tie-break.

Samples whose answer has no key (no answer, no number) abstain. The tie-break, in order: higher total
weight, more votes, the answer whose first vote came earliest (lowest sample index) — so the same samples
always give the same winner, whatever order the branches finished in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel, Field

from ponder.core.errors import ConfigError
from ponder.core.types import VoteMethod, choices


class Ballot(BaseModel):
    """One sample's answer as the vote sees it."""

    index: int
    answer: str | None = None
    key: str | None = None
    weight: float = 1.0


class VoteRow(BaseModel):
    """One distinct answer in the vote table."""

    key: str
    answer: str = Field(description="The answer as first written by a sample with this key.")
    votes: int
    weight: float
    samples: list[int]


class VoteTable(BaseModel):
    """The result of a vote."""

    method: VoteMethod
    rows: list[VoteRow] = Field(default_factory=list, description="Best first (the tie-break order).")
    abstained: list[int] = Field(default_factory=list)
    winner: str | None = Field(None, description="The winning key, or None when every sample abstained.")

    @property
    def answer(self) -> str | None:
        """The winning answer's text."""
        return self.rows[0].answer if self.rows else None

    @property
    def valid_votes(self) -> int:
        """Samples that gave a usable answer."""
        return sum(row.votes for row in self.rows)

    @property
    def agreement(self) -> float:
        """The winner's share of the usable votes (0 when none)."""
        return self.rows[0].votes / self.valid_votes if self.rows else 0.0


def tally(ballots: Sequence[Ballot], method: VoteMethod = "majority") -> VoteTable:
    """Count ``ballots`` into a vote table.

    Args:
        ballots: One per sample; ``key=None`` abstains.
        method: ``majority`` (every vote weighs 1) or ``weighted`` (each ballot's ``weight``); ``judge``
            tallies like ``majority`` (the judge picks among the rows afterwards).

    Raises:
        ConfigError: for an unknown method.
    """
    if method not in choices(VoteMethod):
        raise ConfigError(f"unknown vote {method!r}; choose one of: {', '.join(choices(VoteMethod))}")
    rows: dict[str, VoteRow] = {}
    abstained: list[int] = []
    for ballot in sorted(ballots, key=lambda b: b.index):
        if ballot.key is None:
            abstained.append(ballot.index)
            continue
        weight = ballot.weight if method == "weighted" else 1.0
        row = rows.get(ballot.key)
        if row is None:
            rows[ballot.key] = VoteRow(key=ballot.key, answer=(ballot.answer or "").strip(), votes=1,
                                       weight=weight, samples=[ballot.index])
        else:
            row.votes += 1
            row.weight += weight
            row.samples.append(ballot.index)
    ordered = sorted(rows.values(), key=lambda r: (-round(r.weight, 12), -r.votes, r.samples[0]))
    return VoteTable(method=method, rows=ordered, abstained=abstained, winner=ordered[0].key if ordered else None)


def logprob_weight(logprob: float | None, tokens: int) -> float | None:
    """A sample's weight from its log-probability: the geometric-mean token probability in (0, 1].

    Returns:
        ``None`` when the backend returned no log-probabilities or no tokens were generated.
    """
    if logprob is None or tokens <= 0:
        return None
    return math.exp(min(0.0, logprob / tokens))
