"""The ``agreement`` verifier: self-consistency's vote share of the trace's answer.

Answers are compared by their vote key (:func:`~ponder.graphs.self_consistency.normalize.answer_key` for the
context's answer kind), so ``1,000`` and ``1000.0`` agree. The shares come from ``VerifyContext.votes``
(:func:`vote_shares` computes them from the candidates' answers); with no votes every trace scores 0.5.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ponder.graphs.self_consistency.normalize import answer_key
from ponder.graphs.verifiers.base import Score, Trace, VerifyContext


def vote_shares(answers: Sequence[str | None], kind: str = "auto") -> dict[str, float]:
    """Answer key -> the share of ``answers`` (abstentions included in the total) that have that key."""
    if not answers:
        return {}
    keys = Counter(k for k in (answer_key(a, kind) for a in answers) if k is not None)
    return {key: count / len(answers) for key, count in keys.items()}


@dataclass
class AgreementVerifier:
    """Scores a trace by the share of the votes its normalized answer got."""

    name: str = "agreement"

    def score(self, trace: Trace, ctx: VerifyContext) -> Score:
        """The vote share of the trace's answer; 0.5 without votes or before an answer; 0 for no usable answer."""
        if not ctx.votes:
            return Score(value=0.5, detail="no votes to compare with")
        if trace.partial and trace.final_answer is None:
            return Score(value=0.5, detail="no answer yet")
        key = answer_key(trace.final_answer, ctx.answer_kind)
        if key is None:
            return Score(value=0.0, detail="no usable answer: it cannot agree with any vote")
        share = min(1.0, max(0.0, ctx.votes.get(key, 0.0)))
        return Score(value=share, detail=f"{share:.0%} of the samples gave this answer")
