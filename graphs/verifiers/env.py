"""The ``env`` verifier: the environment's verdict and the reward collected so far.

A won episode scores 1, a lost one 0. Anything else (a partial trace, a run cut by the step cap) scores its
progress, kept below a win: ``0.9 × reward / max_reward`` when the most reward is known, else
``0.9 × reward / (reward + 1)`` (a squashed reward: more is better, never a win). A negative reward counts as
no progress. Where the environment also gives intermediate rewards (``Trace.progress``: TextWorld's quest
progress, +1 per action that brought the goal closer, -1 per action that moved away), their sum ``p`` counts as
progress ``p / (p + 1)`` too, and the larger of the two is used: a game whose only score is the win (TextWorld's
tier-1 "put" games have a maximum score of 1) still tells a search which moves lead somewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from ponder.graphs.verifiers.base import Score, Trace, VerifyContext

#: The most a run that has not won can score.
PROGRESS_CEILING = 0.9


def progress(reward: float, max_reward: float | None) -> float:
    """The normalized reward in [0, 1]: ``reward / max_reward`` when known (> 0), else ``reward / (reward + 1)``."""
    if reward <= 0:
        return 0.0
    if max_reward is not None and max_reward > 0:
        return min(1.0, reward / max_reward)
    return reward / (reward + 1.0)


@dataclass
class EnvVerifier:
    """Scores env traces by outcome (won 1, lost 0) and otherwise by normalized reward (below 1).

    A trace that is not an environment episode scores 0.5 (nothing to judge).
    """

    name: str = "env"

    def score(self, trace: Trace, ctx: VerifyContext) -> Score:
        """The trace's outcome, or its progress; ``detail`` says which."""
        if trace.won:
            return Score(value=1.0, detail=f"won (reward {trace.reward:g})")
        if trace.agent != "env" and trace.won is None and trace.reward == 0:
            return Score(value=0.5, detail="not an environment episode: no reward to judge")
        if trace.done:
            return Score(value=0.0, detail=f"lost (reward {trace.reward:g})")
        max_reward = trace.max_reward
        fraction = progress(trace.reward, max_reward)
        scale = f"of {max_reward:g}" if max_reward else "(most reward unknown: squashed)"
        where = "so far" if trace.partial else f"when the run ended ({trace.status})"
        shaped = ""
        if trace.progress is not None:
            fraction = max(fraction, progress(trace.progress, None))
            shaped = f", intermediate progress {trace.progress:g}"
        return Score(value=round(PROGRESS_CEILING * fraction, 6),
                     detail=f"not won; reward {trace.reward:g} {scale}{shaped} {where}, {len(trace.steps)} steps")
