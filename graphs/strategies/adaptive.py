"""``Adaptive``: compute-optimal sampling for one task (Snell et al.-style), and the suite allocator's worker.

A cheap first pass runs the inner strategy twice (sample seeds ``seed + 0`` and ``seed + 1``) and scores each
run with the verifier (:func:`ponder.graphs.verifiers.registry.build_verifier` from ``spec.verifier``). When the
two agree and the best score is at least ``spec.accept`` the task is easy and the run stops. Otherwise more
samples run, one at a time, while the budget allows (``spec.budget``: tokens or samples; default
:data:`DEFAULT_MAX_SAMPLES` samples), the verifier-weighted confidence stays below ``spec.accept`` and one more
sample is still expected to gain at least :data:`MIN_GAIN` (the model in :mod:`~ponder.graphs.strategies.
allocation`). The answer is the verifier-weighted vote over every sample (env episodes: the best-scored run, as
their runs give no comparable answer); ``metadata["allocation"]`` records the difficulty bin, samples, tokens and
why sampling stopped. Verifier calls count in ``Outcome.usage``.

**Suite-level allocation** (:mod:`ponder.envs.adaptive`) drives the same strategy through the normal runner in
two phases, told by a plan file in the run directory (:data:`PLAN_FILE`): ``first_pass`` runs the two samples
only; ``allocate`` continues a task from its first-pass samples (read from the first pass's
:data:`LEDGER_FILE`) with exactly the extra samples the plan gave it (within its token cap), and counts the
first pass's tokens in its usage, so a result's tokens are everything spent on the episode. Every run appends
its samples to ``<out_dir>/`` :data:`LEDGER_FILE` (one line per task).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from ponder.core.records import Trajectory, Usage
from ponder.graphs.strategies.allocation import (
    SampleRecord,
    confidence,
    difficulty,
    expected_gain,
    sample_cost,
    weighted_vote,
)
from ponder.graphs.strategies.base import Candidate, Outcome, Strategy, StrategyContext
from ponder.graphs.strategies.single import Single
from ponder.graphs.strategies.spec import RunSpec

if TYPE_CHECKING:
    from ponder.graphs.verifiers.base import Verifier, VerifyContext

#: Samples of the cheap first pass.
FIRST_PASS = 2
#: The sample cap of a per-task run without ``--budget``.
DEFAULT_MAX_SAMPLES = 8
#: Below this expected gain in P(correct) one more sample is not worth running.
MIN_GAIN = 0.01
#: The suite allocator's plan, in the run directory.
PLAN_FILE = "adaptive_plan.json"
#: Every task's samples (answer, key, score, tokens), one JSON line per task, in the run directory.
LEDGER_FILE = "adaptive_samples.jsonl"


class PlanEntry(BaseModel):
    """One episode's share of the suite budget."""

    extra: int = Field(0, ge=0, description="Samples to add to the first pass.")
    tokens: int | None = Field(None, ge=0, description="Token cap of those samples (checked before each one "
                                                       "starts; None: no cap, a budget in samples).")


class Plan(BaseModel):
    """The plan file the suite allocator writes for a phase."""

    phase: Literal["first_pass", "allocate"]
    first_pass_dir: str | None = None
    episodes: dict[str, PlanEntry] = Field(default_factory=dict)


class LedgerLine(BaseModel):
    """One line of :data:`LEDGER_FILE`: a task's samples."""

    episode_id: str
    task: str
    samples: list[SampleRecord]
    usage: Usage = Field(default_factory=Usage)


def read_plan(out_dir: Path | None) -> Plan | None:
    """The plan in ``out_dir`` (``None``: none, a per-task run)."""
    path = Path(out_dir) / PLAN_FILE if out_dir is not None else None
    if path is None or not path.is_file():
        return None
    return Plan.model_validate_json(path.read_text(encoding="utf-8"))


def read_ledger(out_dir: Path) -> dict[str, LedgerLine]:
    """The ledger of a run directory by episode id (the last line of an episode wins; empty when missing).

    Read once per version of the file (every episode of the final run reads the first pass's ledger).
    """
    path = Path(out_dir) / LEDGER_FILE
    if not path.is_file():
        return {}
    stat = path.stat()
    return _ledger(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _ledger(path: str, _mtime_ns: int, _size: int) -> dict[str, LedgerLine]:
    from ponder.core.io import read_jsonl

    return {line.episode_id: line for line in read_jsonl(Path(path), LedgerLine)}


@dataclass
class _State:
    samples: list[SampleRecord] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    prior_dir: Path | None = None


@dataclass
class Adaptive:
    """Sample until the verifier is confident, the gain is too small or the budget is spent (see the module doc).

    Attributes:
        spec: ``verifier``, ``accept``, ``budget``, ``prm``, ``answer_kind``, sampling temperature and seed.
        inner: What one sample runs (default: ``Single``).
        verifier: The verifier (default: built from ``spec.verifier`` by the verifier registry).
        verify_context: Makes the verifier's context from the strategy context (default: the registry's).
    """

    spec: RunSpec = field(default_factory=RunSpec)
    inner: Strategy = field(default_factory=Single)
    verifier: Verifier | None = None
    verify_context: Callable[[StrategyContext], VerifyContext] | None = None

    def run(self, task: str, ctx: StrategyContext, label: str | None = None) -> Outcome:
        """Run ``task`` adaptively (or the suite plan's phase for this episode)."""
        episode = str(ctx.metadata.get("episode_id") or task)
        plan = read_plan(ctx.out_dir)
        state = _State()
        if plan is not None and plan.phase == "allocate":
            reason = self._continue(task, ctx, label, plan, episode, state)
        else:
            self._sample(task, ctx, label, state, FIRST_PASS)
            easy = difficulty(state.samples, self.spec.accept) == "easy"
            reason = "easy" if easy else "first_pass" if plan is not None else self._more(task, ctx, label, state)
        return self._finish(task, ctx, episode, state, reason)

    def _more(self, task: str, ctx: StrategyContext, label: str | None, state: _State) -> str:
        from ponder.graphs.self_consistency.stopping import Budget

        budget = Budget.parse(self.spec.budget) or Budget("samples", DEFAULT_MAX_SAMPLES)
        while True:
            if budget.kind == "samples" and len(state.samples) >= budget.value:
                return "budget"
            if budget.kind == "tokens" and state.usage.total_tokens + sample_cost(state.samples) > budget.value:
                return "budget"
            if confidence(state.samples) >= self.spec.accept:
                return "confident"
            if expected_gain(state.samples, 1) < MIN_GAIN:
                return "no_gain"
            self._sample(task, ctx, label, state, 1)

    def _continue(self, task: str, ctx: StrategyContext, label: str | None, plan: Plan, episode: str,
                  state: _State) -> str:
        entry = plan.episodes.get(episode, PlanEntry())
        prior = read_ledger(Path(plan.first_pass_dir)).get(episode) if plan.first_pass_dir else None
        if prior is None:  # not in the first pass (e.g. it failed there): a first pass now, nothing more
            self._sample(task, ctx, label, state, FIRST_PASS)
            return "no_first_pass"
        state.samples = list(prior.samples)
        state.prior_dir = Path(plan.first_pass_dir)
        state.usage = prior.usage
        spent, left = 0, entry.extra
        while left > 0:  # waves of the samples that still fit under the cap at the most a sample cost so far
            fit = left if entry.tokens is None else min(left, (entry.tokens - spent) // sample_cost(state.samples))
            if fit <= 0:
                return "cap"
            before = state.usage.total_tokens
            self._sample(task, ctx, label, state, fit)
            spent += state.usage.total_tokens - before
            left -= fit
        return "planned"

    def _sample(self, task: str, ctx: StrategyContext, label: str | None, state: _State, n: int) -> None:
        """Run ``n`` more samples: concurrently when the backend batches concurrent calls itself, else in turn."""
        from concurrent.futures import ThreadPoolExecutor

        first = len(state.samples)
        shares = weighted_vote(state.samples)[1]  # the vote so far (the agreement verifier reads it)
        if n > 1 and ctx.model.capabilities.continuous_batching:
            with ThreadPoolExecutor(max_workers=n, thread_name_prefix="adaptive") as pool:
                done = list(pool.map(lambda i: self._one(task, ctx, label, first + i, shares), range(n)))
        else:
            done = [self._one(task, ctx, label, first + i, shares) for i in range(n)]
        for out, record, cost in done:
            state.usage = state.usage + cost
            state.outcomes.append(out)
            state.samples.append(record)

    def _one(self, task: str, ctx: StrategyContext, label: str | None, index: int,
             shares: dict[str, float]) -> tuple[Outcome, SampleRecord, Usage]:
        """Sample ``index`` (seed ``seed + index``), scored by the verifier: its outcome, record and cost."""
        from ponder.graphs.self_consistency.normalize import answer_key
        from ponder.graphs.strategies.self_consistency import DEFAULT_SC_TEMPERATURE
        from ponder.graphs.verifiers.base import Trace

        verifier, vctx = self._verifier(ctx)
        kind = self.spec.answer_kind if self.spec.answer_kind != "auto" else ctx.answer_kind
        voting = ctx.env is None  # an env episode's runs are compared by score alone (best-of-N)
        seed = (self.spec.sample_seed if self.spec.sample_seed is not None else (ctx.settings.seed or 0)) + index
        temperature = self.spec.sample_temperature or ctx.settings.temperature or DEFAULT_SC_TEMPERATURE
        own = ctx.settings.model_copy(update={"temperature": temperature, "seed": seed})
        out = self.inner.run(task, ctx.derive(settings=own, metadata={"sample": index}), label)
        traj = out.trajectory
        score = verifier.score(Trace.from_trajectory(traj, max_reward=ctx.max_reward),
                               replace(vctx, votes=shares)) if traj is not None else None
        cost = out.usage + (score.usage if score is not None else Usage())
        record = SampleRecord(answer=out.answer, key=answer_key(out.answer, kind) if voting else None,
                              status=out.status, score=score.value if score else 0.0, tokens=cost.total_tokens,
                              trajectory_id=traj.id if traj is not None else None, seed=seed)
        return out, record, cost

    def _verifier(self, ctx: StrategyContext) -> tuple[Verifier, VerifyContext]:
        from ponder.graphs.verifiers.registry import build_verifier, verify_context

        verifier = self.verifier or build_verifier(self.spec.verifier, agent=ctx.agent, env=ctx.env is not None,
                                                   prm=self.spec.prm)
        return verifier, (self.verify_context or verify_context)(ctx)

    def _finish(self, task: str, ctx: StrategyContext, episode: str, state: _State, reason: str) -> Outcome:
        from ponder.core.io import append_jsonl

        chosen, shares = weighted_vote(state.samples)
        first = len(state.samples) - len(state.outcomes)  # samples before this call (the first pass, resumed)
        trajectories = [t for o in state.outcomes for t in o.trajectories]
        index = None
        if chosen is not None and chosen >= first and state.outcomes[chosen - first].trajectory is not None:
            chosen_traj = state.outcomes[chosen - first].trajectory
            index = next(i for i, t in enumerate(trajectories) if t is chosen_traj)
        elif chosen is not None and state.prior_dir is not None:  # a first-pass sample won: its trajectory joins
            prior = _prior_trajectory(state.prior_dir, state.samples[chosen].trajectory_id)
            if prior is not None:
                trajectories.append(prior)
                index = len(trajectories) - 1
        best = state.samples[chosen] if chosen is not None else None
        first_pass = state.samples[:FIRST_PASS]
        allocation: dict[str, Any] = {
            "difficulty": difficulty(first_pass, self.spec.accept), "samples": len(state.samples),
            "first_pass_samples": len(first_pass), "tokens": state.usage.total_tokens, "stop_reason": reason,
            "confidence": round(confidence(state.samples), 4), "shares": shares,
            "scores": [round(s.score, 4) for s in state.samples]}
        if ctx.write:
            append_jsonl(Path(ctx.out_dir or ctx.settings.out_dir) / LEDGER_FILE,
                         LedgerLine(episode_id=episode, task=task, samples=state.samples, usage=state.usage))
        status = best.status if best is not None else "error"
        return Outcome(kind="adaptive", task=task, answer=best.answer if best else None, status=status,  # type: ignore[arg-type]
                       trajectories=trajectories, chosen=index, usage=state.usage, attempts=state.outcomes,
                       candidates=sorted((Candidate(answer=s.answer, score=round(s.score, 4)) for s in state.samples),
                                         key=lambda c: -c.score),
                       records=[r for o in state.outcomes for r in o.records],
                       metadata={"allocation": allocation, "samples_run": len(state.samples),
                                 "answer_trajectory": best.trajectory_id if best else None})


def _prior_trajectory(run_dir: Path, trajectory_id: str | None) -> Trajectory | None:
    """A first-pass trajectory by id, as a copy for this run's records (``None``: not found)."""
    from ponder.core.io import read_jsonl

    path = run_dir / "trajectories.jsonl"
    if trajectory_id is None or not path.is_file():
        return None
    found = next((t for t in read_jsonl(path, Trajectory) if t.id == trajectory_id), None)
    if found is not None:
        found.metadata.pop("trajectory_path", None)  # the suite appends it to this run's trajectories
    return found


def plan_json(plan: Plan) -> str:
    """The plan file's text."""
    return json.dumps(plan.model_dump(mode="json"), indent=2) + "\n"
