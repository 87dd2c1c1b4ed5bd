"""``BestOfN``: N independent runs of an inner strategy, each scored by a verifier; the best one answers.

Each sample gets the settings a self-consistency sample gets
(:func:`~ponder.graphs.strategies.self_consistency.sample_settings`: seed ``seed + i``, the samples' temperature,
0.7 when the settings are greedy), its own tools and sandbox sessions (made by the inner strategy per run) and
its own queue of memory writes (:meth:`~ponder.memory.context.MemoryContext.held`; only the picked sample's
reach the store). The samples run concurrently in threads, so a continuous-batching backend (the llama.cpp
engine, an ``openai:`` server) decodes them together; a backend that only decodes explicit batches gets the
calls of ``Single`` samples gathered by :class:`~ponder.models.batching.MicroBatcher`. In an environment
episode (``ctx.env``) every sample plays its own fresh environment.

Then every sample is scored by the verifier (``--verifier``; default: ``env`` in environments, ``execution``
for PAL, else ``self``); ``agreement`` gets the vote shares of all N answers. The pick:

- by default the highest score (ties: the earlier sample);
- with ``vote=True`` a verifier-weighted vote: each normalized answer gets the sum of its samples' scores,
  the heaviest answer wins, its best-scored sample stands for it (no answer voted: the highest score);
- in an environment a won sample wins whatever the scores (the first won one).

The outcome's candidates are the scored samples (or vote rows) best first; its usage counts every run and
every verifier call; ``metadata`` holds the scores, the picked sample and the verifier's name.
"""

from __future__ import annotations

import contextvars
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ponder.core.errors import ConfigError
from ponder.core.records import Trajectory, Usage
from ponder.graphs.self_consistency.graph import SCConfig
from ponder.graphs.self_consistency.normalize import answer_key
from ponder.graphs.strategies.base import Candidate, Outcome, Strategy, StrategyContext
from ponder.graphs.strategies.self_consistency import apply_held_memory, run_sample, sample_settings
from ponder.graphs.strategies.single import Single
from ponder.graphs.strategies.spec import DEFAULT_SAMPLES
from ponder.graphs.tracing import outcome_attributes, traced
from ponder.graphs.verifiers.agreement import vote_shares
from ponder.graphs.verifiers.base import Score, Verifier
from ponder.graphs.verifiers.registry import outcome_trace, resolve_verifier, verify_context
from ponder.memory.context import MemoryContext
from ponder.models.batching import MicroBatcher


def run_parallel(jobs: list[Any], fn: Any) -> list[Any]:
    """``[fn(job) for job in jobs]`` in one thread per job, each in a copy of the caller's context (cancel scope)."""
    if len(jobs) == 1:
        return [fn(jobs[0])]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(contextvars.copy_context().run, fn, job) for job in jobs]
        return [f.result() for f in futures]


@dataclass
class BestOfN:
    """Runs ``inner`` ``n`` times independently and keeps the run the verifier likes best.

    Attributes:
        inner: What one sample runs (``Single``, ``Trials``, ...).
        n: Samples (N >= 1).
        verifier: The ``--verifier`` text (``"execution:0.7,self:0.3"``) or a verifier; ``None``: the default.
        vote: Pick by a verifier-weighted vote over normalized answers instead of the single best score.
        prm: Model spec of the process reward model when the verifier includes ``prm``.
        sampling: The samples' temperature, top-p and seed (``SCConfig`` fields; default: SC's defaults).
    """

    inner: Strategy = field(default_factory=Single)
    n: int = DEFAULT_SAMPLES
    verifier: str | Verifier | None = None
    vote: bool = False
    prm: str | None = None
    sampling: SCConfig | None = None

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ConfigError(f"best-of-N needs at least one sample (got {self.n})")

    @traced("best_of_n", outcome_attributes, task_arg=1)
    def run(self, task: str, ctx: StrategyContext, label: str | None = None) -> Outcome:
        """Run the samples, score them, pick one; its held memory writes are applied, the others' dropped."""
        start = time.perf_counter()
        verifier = resolve_verifier(self.verifier, agent=ctx.agent, env=ctx.env is not None, prm=self.prm)
        held: dict[int, MemoryContext] = {}
        outcomes = self._samples(task, ctx, label, held)
        answers = [o.answer if o.status == "solved" else None for o in outcomes]
        vctx = verify_context(ctx, votes=vote_shares(answers, ctx.answer_kind))
        scores: list[Score] = run_parallel(outcomes, lambda o: verifier.score(outcome_trace(o, ctx), vctx))
        keys = [answer_key(a, ctx.answer_kind) for a in answers]
        picked, candidates = self._pick(ctx, outcomes, scores, keys)
        for i, (outcome, score) in enumerate(zip(outcomes, scores, strict=True)):
            for traj in outcome.trajectories:
                traj.metadata.update(sample=i)
            chosen = outcome.trajectory or outcome.trajectories[-1]
            chosen.metadata.update(verifier=verifier.name, verifier_score=score.value, verifier_detail=score.detail)
        metadata: dict[str, Any] = {
            "verifier": verifier.name, "scores": [s.value for s in scores], "details": [s.detail for s in scores],
            "picked": picked, "vote": self.vote, "samples_run": len(outcomes),
            "verifier_usage": sum((s.usage for s in scores), Usage()).model_dump()}
        if ctx.memory is not None:
            metadata["memory"] = apply_held_memory(held, picked)
        result = Outcome.of("best_of_n", task, outcomes, outcomes[picked],
                            extra=sum((s.usage for s in scores), Usage()), metadata=metadata)
        result.candidates = _indexed(candidates, outcomes, result.trajectories)
        result.usage = result.usage.model_copy(update={"wall_seconds": round(time.perf_counter() - start, 4)})
        return result

    def _samples(self, task: str, ctx: StrategyContext, label: str | None,
                 held: dict[int, MemoryContext]) -> list[Outcome]:
        config = self.sampling or SCConfig(samples=self.n)
        caps = ctx.model.capabilities
        batcher = None
        if self.n > 1 and isinstance(self.inner, Single) and caps.batched_decoding and not caps.continuous_batching:
            batcher = MicroBatcher(ctx.model, window=config.batch_window, max_batch=self.n)
            batcher.enter(self.n)

        def sample(index: int) -> Outcome:
            memory = None
            if ctx.memory is not None:
                memory = held[index] = ctx.memory.held()
            own = ctx.derive(settings=sample_settings(ctx.settings, config, index), model=batcher or ctx.model,
                             memory=memory, write=False, on_step=None, on_attempt=None, on_sample=None)
            try:
                return run_sample(self.inner, task, own, label, index=index)
            finally:
                if batcher is not None:
                    batcher.leave()

        return run_parallel(list(range(self.n)), sample)

    def _pick(self, ctx: StrategyContext, outcomes: list[Outcome], scores: list[Score],
              keys: list[str | None]) -> tuple[int, list[tuple[list[int], Candidate]]]:
        """The picked sample, and the candidates best first (with the samples each stands for)."""
        order = sorted(range(len(outcomes)), key=lambda i: (-scores[i].value, i))
        by_score = [([i], Candidate(answer=outcomes[i].answer, key=keys[i], score=scores[i].value)) for i in order]
        won = [i for i, o in enumerate(outcomes) if ctx.env is not None and o.status == "solved"]
        if won:
            return won[0], by_score
        if not self.vote or all(k is None for k in keys):
            return order[0], by_score
        weight: dict[str, float] = defaultdict(float)
        members: dict[str, list[int]] = defaultdict(list)
        for i in order:  # best first, so each row's first member is its best-scored sample
            if keys[i] is not None:
                weight[keys[i]] += scores[i].value  # type: ignore[index]
                members[keys[i]].append(i)  # type: ignore[index]
        rows = sorted(members, key=lambda k: (-weight[k], min(members[k])))
        table = [(members[k], Candidate(answer=outcomes[members[k][0]].answer, key=k, score=round(weight[k], 6)))
                 for k in rows]
        return members[rows[0]][0], table


def _indexed(candidates: list[tuple[list[int], Candidate]], outcomes: list[Outcome],
             trajectories: list[Trajectory]) -> list[Candidate]:
    """The candidates with ``trajectories`` set to the flat indices of their samples' chosen trajectories."""
    position = {id(t): i for i, t in enumerate(trajectories)}
    out = []
    for samples, candidate in candidates:
        chosen = [outcomes[i].trajectory or outcomes[i].trajectories[-1] for i in samples]
        out.append(candidate.model_copy(update={"trajectories": [position[id(t)] for t in chosen]}))
    return out
