"""A mixed-difficulty synthetic suite for the compute-optimal allocation check (no model weights).

Each question has a known per-sample accuracy by level (:data:`LEVELS`: easy 0.9, medium 0.5, hard 0.1,
impossible 0). A sample of question ``q`` with seed ``s`` is correct with that probability, decided by a
seeded generator of ``(q, s)``; a wrong sample gives one of four distractors. The verifier is imperfect but
informative: a correct answer scores uniformly in [0.6, 1.0], a wrong one in [0.0, 0.4] (seeded the same way).

Two ways to run it, both deterministic:

- :func:`simulate_uniform` / :func:`simulate_adaptive`: the allocation arithmetic alone (every sample costs
  :data:`SAMPLE_TOKENS` tokens), for hundreds of questions in milliseconds;
- :func:`synthetic_rows` + :func:`scripted_reply` + :class:`OracleVerifier`: a JSONL data file, a scripted
  model's reply function and a verifier, to run the same questions through ``ponder eval`` end to end.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ponder.graphs.strategies.allocation import SampleRecord, allocate, difficulty, weighted_vote

if TYPE_CHECKING:
    from ponder.graphs.verifiers.base import Score, Trace, VerifyContext
    from ponder.models.base import GenerationParams, Message

#: Per-sample accuracy of each level.
LEVELS = {"easy": 0.9, "medium": 0.5, "hard": 0.1, "impossible": 0.0}
#: Tokens one simulated sample costs (its verification included).
SAMPLE_TOKENS = 100
_QUESTION = re.compile(r"synthetic question (\d+)")


@dataclass(frozen=True)
class SyntheticQuestion:
    """One question: its id number, level, per-sample accuracy and gold answer."""

    number: int
    level: str
    accuracy: float

    @property
    def gold(self) -> str:
        """The right answer."""
        return str(1000 + self.number)

    @property
    def text(self) -> str:
        """The question as the agent sees it."""
        return f"synthetic question {self.number} ({self.level}): what is the answer?"


def questions(per_level: int) -> list[SyntheticQuestion]:
    """``per_level`` questions of each level, interleaved (easy, medium, hard, impossible, easy, ...)."""
    out = []
    for i in range(per_level):
        for j, (level, p) in enumerate(LEVELS.items()):
            out.append(SyntheticQuestion(number=i * len(LEVELS) + j, level=level, accuracy=p))
    return out


def sample(q: SyntheticQuestion, seed: int) -> tuple[str, bool]:
    """Sample ``seed`` of ``q``: ``(answer, correct)``."""
    rng = random.Random(f"answer:{q.number}:{seed}")
    correct = rng.random() < q.accuracy
    return (q.gold, True) if correct else (str(2000 + 10 * q.number + rng.randrange(4)), False)


def verifier_score(q: SyntheticQuestion, answer: str | None, seed: int) -> float:
    """The imperfect verifier's score of ``answer`` (see the module docstring)."""
    rng = random.Random(f"verify:{q.number}:{seed}:{answer}")
    return 0.6 + 0.4 * rng.random() if answer == q.gold else 0.4 * rng.random()


def record(q: SyntheticQuestion, seed: int) -> SampleRecord:
    """A simulated sample of ``q``."""
    answer, _ = sample(q, seed)
    return SampleRecord(answer=answer, key=answer, score=verifier_score(q, answer, seed), tokens=SAMPLE_TOKENS,
                        seed=seed)


def _correct(q: SyntheticQuestion, samples: Sequence[SampleRecord]) -> bool:
    chosen, _ = weighted_vote(samples)
    return chosen is not None and samples[chosen].answer == q.gold


def simulate_uniform(qs: Sequence[SyntheticQuestion], n: int) -> tuple[float, int]:
    """Every question gets ``n`` samples and a verifier-weighted vote: ``(accuracy, tokens)``."""
    wins = sum(_correct(q, [record(q, s) for s in range(n)]) for q in qs)
    return wins / len(qs), n * SAMPLE_TOKENS * len(qs)


def simulate_adaptive(qs: Sequence[SyntheticQuestion], budget_tokens: int, *, accept: float = 0.8,
                      first: int = 2) -> tuple[float, int, dict[str, dict[str, float]]]:
    """Two samples each, then the rest of ``budget_tokens`` by :func:`~ponder.graphs.strategies.allocation.allocate`.

    Returns:
        ``(accuracy, tokens spent, per level: mean samples and accuracy)``.
    """
    tasks = {str(q.number): [record(q, s) for s in range(first)] for q in qs}
    spent = first * SAMPLE_TOKENS * len(qs)
    plan = allocate(tasks, budget_tokens - spent, accept=accept)
    by_level: dict[str, list[tuple[int, bool]]] = {}
    for q in qs:
        samples = tasks[str(q.number)]
        extra = [record(q, first + i) for i in range(plan[str(q.number)])]
        spent += sum(s.tokens for s in extra)
        by_level.setdefault(q.level, []).append((len(samples) + len(extra), _correct(q, samples + extra)))
    levels = {level: {"samples": sum(n for n, _ in rows) / len(rows), "accuracy": sum(w for _, w in rows) / len(rows),
                      "easy_bin": sum(difficulty(tasks[str(q.number)], accept) == "easy" for q in qs
                                      if q.level == level) / len(rows)}
              for level, rows in by_level.items()}
    wins = sum(w for rows in by_level.values() for _, w in rows)
    return wins / len(qs), spent, levels


# ---------------------------------------------------------------- end to end (scripted model)

def synthetic_rows(qs: Sequence[SyntheticQuestion]) -> list[dict[str, str]]:
    """Rows of a QA data file (``question``, ``answer``, ``id``) for ``ponder eval gsm8k --data FILE``."""
    return [{"id": f"syn{q.number:03d}", "question": q.text, "answer": q.gold} for q in qs]


def question_of(text: str, qs: Sequence[SyntheticQuestion]) -> SyntheticQuestion | None:
    """The question whose text appears in ``text`` (a prompt or a trace's task)."""
    match = _QUESTION.search(text)
    return next((q for q in qs if q.number == int(match.group(1))), None) if match else None


def scripted_reply(qs: Sequence[SyntheticQuestion]):  # noqa: ANN201 - a ScriptedModel response function
    """A ``ScriptedModel`` response function: ``Final Answer: <sample(q, params.seed)>``."""

    def reply(messages: list[Message], params: GenerationParams) -> str:
        q = question_of(" ".join(str(m["content"]) for m in messages if m["role"] == "user"), qs)
        if q is None:
            return "Final Answer: unknown"
        return f"Final Answer: {sample(q, params.seed or 0)[0]}"

    return reply


class OracleVerifier:
    """The synthetic suite's imperfect verifier as a :class:`~ponder.graphs.verifiers.base.Verifier`."""

    name = "synthetic"

    def __init__(self, qs: Sequence[SyntheticQuestion], tokens: int = 0) -> None:
        self.qs = list(qs)
        self.tokens = tokens

    def score(self, trace: Trace, ctx: VerifyContext) -> Score:
        """Score the trace's final answer (a verification costs ``tokens`` prompt tokens, one model call)."""
        from ponder.graphs.verifiers.base import Score

        q = question_of(trace.task, self.qs)
        answer = (trace.final_answer or "").strip()
        value = verifier_score(q, answer, 0) if q is not None else 0.0
        return Score(value=value, prompt_tokens=self.tokens, model_calls=1 if self.tokens else 0,
                     detail="synthetic verifier")
