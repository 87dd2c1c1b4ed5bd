"""``Combined``: several verifiers as one, their values averaged with weights (``self:0.5,env``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ponder.core.errors import ConfigError
from ponder.graphs.verifiers.base import Score, Trace, Verifier, VerifyContext


@dataclass
class Combined:
    """The weighted mean of its parts' scores (weights normalized to sum to 1).

    A part with weight 0 is not asked (it would cost tokens for nothing). The score's ``parts`` hold each
    part's value by name, its tokens and model calls are the parts' sums, its ``per_step`` is the first part's
    that has one (a ``prm`` part), and its detail joins the parts' details.

    Attributes:
        parts: ``(verifier, weight)`` pairs; weights at least 0, at least one above 0.
        name: ``self:0.5+env:0.5`` (normalized weights), made from the parts.
    """

    parts: list[tuple[Verifier, float]]
    name: str = field(default="", init=False)

    def __post_init__(self) -> None:
        if not self.parts:
            raise ConfigError("a combined verifier needs at least one part")
        if any(w < 0 for _, w in self.parts) or sum(w for _, w in self.parts) <= 0:
            raise ConfigError("verifier weights must be at least 0, and one above 0")
        total = sum(w for _, w in self.parts)
        self.parts = [(v, w / total) for v, w in self.parts]
        self.name = "+".join(f"{v.name}:{w:.3g}" for v, w in self.parts)

    def score(self, trace: Trace, ctx: VerifyContext) -> Score:
        """Score ``trace`` with every part of weight above 0 and average."""
        scores = [(v, w, v.score(trace, ctx)) for v, w in self.parts if w > 0]
        value = sum(w * s.value for _, w, s in scores)
        per_step = next((s.per_step for _, _, s in scores if s.per_step is not None), None)
        return Score(value=min(1.0, max(0.0, value)), per_step=per_step,
                     prompt_tokens=sum(s.prompt_tokens for _, _, s in scores),
                     completion_tokens=sum(s.completion_tokens for _, _, s in scores),
                     model_calls=sum(s.model_calls for _, _, s in scores),
                     detail="; ".join(f"{v.name} {s.value:.2f}: {s.detail}" for v, _, s in scores),
                     parts={v.name: s.value for v, _, s in scores})
