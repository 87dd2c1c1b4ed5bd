"""``Refine``: sequential revision — attempt, score, and revise with the verifier's feedback, up to R rounds.

Each attempt is one run of the inner strategy, scored by the verifier (``--verifier``; default: ``env`` in
environments, ``execution`` for PAL, else ``self``) on the original task. An attempt scoring at least
``accept`` ends the loop (in an environment, so does a won episode); otherwise the next attempt's task is
the original task with the feedback appended (``prompts/refine_feedback.txt``: a compact summary of the
previous attempt, its score and the verifier's detail).

**How the feedback reaches the model.** Through the task text: the ReAct and PAL agents show the task as the
first user turn, so the revision reads the feedback there, with no change to the agents or the memory
(Reflexion's lessons go through the memory context, which may be off). The attempt's trajectory records that
task; ``metadata["refine_round"]`` and ``["refine_feedback"]`` (the feedback alone) are stored with it. The env
agent shows observations, not the task: in an environment episode the feedback goes in front of the first
observation instead (:class:`FeedbackEnv` wraps each fresh environment; the task stays as it is), where
Reflexion's lessons go too.

The best-scored attempt answers (ties: the later one, which had more feedback; a won episode always wins); every
attempt is kept, and the usage counts every attempt and every verifier call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ponder.core.errors import ConfigError
from ponder.core.prompts import render
from ponder.core.records import Usage
from ponder.graphs.strategies.base import Candidate, Outcome, Strategy, StrategyContext
from ponder.graphs.strategies.single import Single
from ponder.graphs.tracing import outcome_attributes, traced
from ponder.graphs.verifiers.base import Score, Verifier
from ponder.graphs.verifiers.registry import outcome_trace, resolve_verifier, verify_context
from ponder.memory.experience import compact_trajectory

if TYPE_CHECKING:
    from ponder.core.environment import Env, EnvReset, EnvStep

#: Most characters of the previous attempt's summary in the feedback (its end is kept).
SUMMARY_CHARS = 2000


def attempt_summary(outcome: Outcome, limit: int = SUMMARY_CHARS) -> str:
    """The previous attempt as compact text (steps and answer, without the question), its end kept."""
    traj = outcome.trajectory or (outcome.trajectories[-1] if outcome.trajectories else None)
    if traj is None:
        return f"(no trajectory) answer: {outcome.answer}"
    lines = compact_trajectory(traj.task, traj.steps, traj.final_answer).split("\n")[1:]
    if traj.error:
        lines.append(f"Error: {traj.error}")
    text = "\n".join(lines).strip() or f"(no steps) answer: {traj.final_answer}"
    return text if len(text) <= limit else "..." + text[-limit:]


def feedback_text(task: str, outcome: Outcome, score: Score) -> str:
    """The next attempt's task: ``task`` with the previous attempt, its score and the verifier's detail."""
    return render("refine_feedback", task=task.rstrip(), attempt=attempt_summary(outcome),
                  score=f"{score.value:.2f}", detail=score.detail or "(no detail)")


class FeedbackEnv:
    """An environment whose first observation starts with the refine feedback (everything else delegated)."""

    def __init__(self, env: Env, feedback: str) -> None:
        self.env, self.feedback = env, feedback
        self.name, self.instructions, self.examples = env.name, env.instructions, env.examples

    def reset(self) -> EnvReset:
        """The wrapped reset, the feedback in front of its observation."""
        first = self.env.reset()
        return first.model_copy(update={"observation": f"{self.feedback}\n\n{first.observation}"})

    def step(self, action: str) -> EnvStep:
        """The wrapped environment's step."""
        return self.env.step(action)

    def close(self) -> None:
        """Close the wrapped environment."""
        self.env.close()

    def fork(self) -> Env:
        """A fork of the wrapped environment (raises ``AttributeError`` when it cannot fork), feedback kept."""
        return FeedbackEnv(self.env.fork(), self.feedback)  # type: ignore[attr-defined]


def with_feedback(factory: Callable[[], Env], feedback: str) -> Callable[[], Env]:
    """An environment factory whose environments show ``feedback`` before their first observation."""
    return lambda: FeedbackEnv(factory(), feedback)


@dataclass
class Refine:
    """Runs ``inner``, then up to ``rounds`` revisions with the verifier's feedback until one is accepted.

    Attributes:
        inner: What one attempt runs (``Single``, ``BestOfN``, ...).
        rounds: Most revisions after the first attempt (R >= 0).
        verifier: The ``--verifier`` text or a verifier; ``None``: the default for the task.
        accept: The score that ends the loop.
        prm: Model spec of the process reward model when the verifier includes ``prm``.
    """

    inner: Strategy = field(default_factory=Single)
    rounds: int = 3
    verifier: str | Verifier | None = None
    accept: float = 0.8
    prm: str | None = None

    def __post_init__(self) -> None:
        if self.rounds < 0:
            raise ConfigError(f"refine rounds must be at least 0 (got {self.rounds})")
        if not 0.0 < self.accept <= 1.0:
            raise ConfigError(f"refine accept must be in (0, 1] (got {self.accept})")

    @traced("refine", outcome_attributes, task_arg=1)
    def run(self, task: str, ctx: StrategyContext, label: str | None = None) -> Outcome:
        """Attempt and revise; the outcome's answer is the best-scored attempt's."""
        verifier = resolve_verifier(self.verifier, agent=ctx.agent, env=ctx.env is not None, prm=self.prm)
        vctx = verify_context(ctx)
        attempts: list[Outcome] = []
        scores: list[Score] = []
        prompt, feedback, stop = task, None, "rounds"
        for round_ in range(self.rounds + 1):
            extra: dict[str, Any] = {"refine_round": round_}
            if feedback is not None:
                extra["refine_feedback"] = feedback
            changes: dict[str, Any] = {}
            if feedback is not None and ctx.env is not None:
                changes["env"] = with_feedback(ctx.env, feedback)
            outcome = self.inner.run(task if ctx.env is not None else prompt, ctx.derive(metadata=extra, **changes),
                                     label)
            score = verifier.score(outcome_trace(outcome, ctx).model_copy(update={"task": task}), vctx)
            attempts.append(outcome)
            scores.append(score)
            if ctx.on_attempt is not None:
                ctx.on_attempt(round_ + 1, outcome)
            if ctx.env is not None and outcome.status == "solved":
                stop = "won"
                break
            if score.value >= self.accept:
                stop = "accepted"
                break
            prompt = feedback_text(task, outcome, score)
            feedback = prompt[len(task.rstrip()):].strip()
        return self._outcome(task, ctx, attempts, scores, verifier.name, stop)

    def _outcome(self, task: str, ctx: StrategyContext, attempts: list[Outcome], scores: list[Score], name: str,
                 stop: str) -> Outcome:
        order = sorted(range(len(attempts)), key=lambda i: (-scores[i].value, -i))
        won = [i for i, a in enumerate(attempts) if ctx.env is not None and a.status == "solved"]
        picked = won[0] if won else order[0]
        for outcome, score in zip(attempts, scores, strict=True):
            chosen = outcome.trajectory or (outcome.trajectories[-1] if outcome.trajectories else None)
            if chosen is not None:
                chosen.metadata.update(verifier=name, verifier_score=score.value, verifier_detail=score.detail)
        spent = sum((s.usage for s in scores), Usage())
        result = Outcome.of("refine", task, attempts, attempts[picked], extra=spent, metadata={
            "verifier": name, "scores": [s.value for s in scores], "details": [s.detail for s in scores],
            "picked": picked, "rounds_run": len(attempts) - 1, "stop_reason": stop, "accept": self.accept,
            "verifier_usage": spent.model_dump()})
        position = {id(t): i for i, t in enumerate(result.trajectories)}
        for i in ([picked] + [j for j in order if j != picked]):
            traj = attempts[i].trajectory
            result.candidates.append(Candidate(answer=attempts[i].answer, score=scores[i].value,
                                               trajectories=[position[id(traj)]] if traj is not None else []))
        return result
