"""``SelfConsistency``: N independent runs of an inner strategy, a vote, early stopping, one record.

Each sample is one run of the inner strategy (one agent run, or a whole trials loop) with its own sampling
parameters (seed ``seed + i``), its own tools and sandbox sessions (made and closed per run) and its own
queue of memory writes (:meth:`~ponder.memory.context.MemoryContext.held`): after the vote, only the chosen
sample's writes reach the store. The waves, the vote and the stop rules are the graph of
:mod:`ponder.graphs.self_consistency.graph`.

How the samples reach the model:

- A backend with continuous batching (``capabilities.continuous_batching``: the llama.cpp engine, an
  ``openai:`` server with N requests in flight) decodes concurrent calls together by itself: every branch
  calls it directly from its thread, with its own seed, and no wave waits for a batch to fill.
- A backend that only decodes explicit batches (``capabilities.batched_decoding``: transformers) gets the
  branches' calls gathered into batches by :class:`~ponder.models.batching.MicroBatcher` when every sample is
  one agent run (a batch runs with its lowest seed: see the batcher).
- Anything else is called by the branches in parallel threads.

Each sample runs inside its own :func:`~ponder.models.cancel.cancel_scope`. When early stopping settles the
vote while samples are running (:mod:`ponder.graphs.self_consistency.inflight`), their tokens are cancelled: a
backend that honours the token ends the model call at once (:class:`~ponder.core.errors.GenerationCancelled`),
any other stops the sample after its current step. The sample is recorded as ``discarded`` with the steps it
finished (their tokens count in the usage); it never votes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ponder.core.errors import GenerationCancelled
from ponder.core.io import append_jsonl
from ponder.core.records import Step, Trajectory, Usage
from ponder.core.settings import Settings
from ponder.core.spans import chain_span, set_attributes
from ponder.graphs.self_consistency.graph import SCConfig, SCDeps, build_sc_graph
from ponder.graphs.self_consistency.judge import make_judge
from ponder.graphs.self_consistency.normalize import answer_key
from ponder.graphs.self_consistency.records import SC_FILE, SampleRecord, SelfConsistencyResult
from ponder.graphs.self_consistency.voting import logprob_weight
from ponder.graphs.strategies.base import Candidate, Outcome, Strategy, StrategyContext
from ponder.graphs.strategies.single import Single
from ponder.graphs.tracing import sc_attributes, traced
from ponder.memory.context import MemoryContext
from ponder.models.base import ModelBackend
from ponder.models.batching import MicroBatcher
from ponder.models.cancel import CancelToken, current_token
from ponder.models.llamacpp_formats import format_metadata

#: Sampling temperature used when the settings ask for greedy decoding (identical samples would be useless).
DEFAULT_SC_TEMPERATURE = 0.7


def sample_settings(settings: Settings, config: SCConfig, index: int) -> Settings:
    """The settings of sample ``index``: its temperature, top-p and seed (``seed + index``)."""
    temperature = config.temperature
    if temperature is None:
        temperature = settings.temperature if settings.temperature > 0 else DEFAULT_SC_TEMPERATURE
    top_p = config.top_p if config.top_p is not None else settings.top_p
    base = config.seed if config.seed is not None else (settings.seed or 0)
    return settings.model_copy(update={"temperature": temperature, "top_p": top_p, "seed": base + index,
                                       "logprobs": settings.logprobs or config.vote == "weighted"})


@dataclass
class SelfConsistency:
    """Runs ``inner`` ``config.samples`` times independently and votes.

    Attributes:
        inner: What one sample runs (``Single``, ``Trials``, ...).
        config: Samples, vote, stop rule, budget, batching.
    """

    inner: Strategy = field(default_factory=Single)
    config: SCConfig = field(default_factory=SCConfig)

    def run(self, task: str, ctx: StrategyContext, label: str | None = None) -> Outcome:
        """Vote; the outcome's trajectories are every sample's, its candidates the vote rows (best first)."""
        outcomes: dict[int, Outcome] = {}
        result = self.vote(task, ctx, label, outcomes)
        return _outcome(result, [outcomes[s.index] for s in result.samples if s.index in outcomes])

    @traced("self_consistency", sc_attributes, task_arg=1)
    def vote(self, task: str, ctx: StrategyContext, label: str | None = None,
             outcomes: dict[int, Outcome] | None = None) -> SelfConsistencyResult:
        """Run the samples and the vote; the record is appended to ``self_consistency.jsonl`` when ``ctx.write``.

        Every sample trajectory gets ``metadata["sample"]`` and ``["self_consistency_id"]``.

        Args:
            task: The question.
            ctx: The run's context; its memory (if any) is held per sample, the chosen sample's writes applied.
            label: The gold answer, passed to every sample's inner strategy.
            outcomes: Filled with each sample's inner outcome by sample index.

        Raises:
            ConfigError: for an unknown answer kind (before any sample runs).
            GenerationCancelled: when the caller's cancel scope was cancelled (every sample is cancelled too).
        """
        config = self.config
        answer_key(None, config.answer_kind)  # unknown kinds fail before any sample runs
        continuous = ctx.model.capabilities.continuous_batching
        wave = config.wave_size(continuous)
        batcher = self._batcher(ctx.model, wave)
        start = time.perf_counter()
        sampler = _Sampler(self, task, ctx, label, batcher, {} if outcomes is None else outcomes, start)
        judge = make_judge(ctx.model, ctx.settings) if config.vote == "judge" else None
        on_wave = (lambda indices: batcher.enter(len(indices))) if batcher is not None else None
        graph = build_sc_graph(SCDeps(config=config, run_sample=sampler, judge=judge, on_wave=on_wave,
                                      continuous=continuous))
        state = graph.invoke({"task": task, "samples": [], "launched": 0, "waves": 0},
                             {"max_concurrency": wave, "recursion_limit": 4 * config.samples + 10})
        result = _result(task, ctx, config, state, time.perf_counter() - start)
        result.batch_sizes = list(batcher.batches) if batcher is not None else []
        for sample in result.samples:
            for traj in (*sample.earlier, sample.trajectory):
                traj.metadata.update(sample=sample.index, self_consistency_id=result.id)
        if ctx.memory is not None:
            result.memory = apply_held_memory(sampler.held, result.chosen_sample)
        if ctx.write:
            append_jsonl(Path(ctx.out_dir or ctx.settings.out_dir) / SC_FILE, result)
        if result.stop_reason == "cancelled":
            raise GenerationCancelled("self-consistency cancelled by the caller")
        return result

    def _batcher(self, model: ModelBackend, wave: int) -> MicroBatcher | None:
        """The micro-batcher for a backend that decodes explicit batches only (``None``: call the model directly)."""
        caps = model.capabilities
        if (self.config.batch and wave > 1 and isinstance(self.inner, Single) and caps.batched_decoding
                and not caps.continuous_batching):
            return MicroBatcher(model, window=self.config.batch_window, max_batch=wave)
        return None


class _Sampler:
    """Runs sample ``index`` of one vote: its settings, its held memory, its inner run, its record.

    It runs inside the sample's cancel scope (set by the graph's ``sample`` node): once the scope's token is
    cancelled the sample ends after its current step (at once with a backend that honours the token) and its
    record is ``discarded``.
    """

    def __init__(self, owner: SelfConsistency, task: str, ctx: StrategyContext, label: str | None,
                 batcher: MicroBatcher | None, outcomes: dict[int, Outcome], started: float) -> None:
        self.owner, self.task, self.ctx, self.label = owner, task, ctx, label
        self.batcher = batcher
        self.outcomes = outcomes
        self.started = started
        self.held: dict[int, MemoryContext] = {}

    def __call__(self, question: str, index: int, wave: int) -> SampleRecord:
        config, ctx = self.owner.config, self.ctx
        own = sample_settings(ctx.settings, config, index)
        token = current_token()
        begin = time.perf_counter()
        steps: list[Step] = []
        if token is not None and token.cancelled:  # the vote settled before this sample started
            if self.batcher is not None:
                self.batcher.leave()
            return self._discarded(question, index, wave, own, steps, begin)
        memory = None
        if ctx.memory is not None:
            memory = self.held[index] = ctx.memory.held()
        sample_ctx = ctx.derive(settings=own, model=self.batcher or ctx.model, memory=memory, write=False,
                                on_step=_collect(steps, token), on_attempt=None, on_sample=None)
        try:
            outcome = self._run(question, sample_ctx, index)
        finally:
            if self.batcher is not None:
                self.batcher.leave()
        if token is not None and token.cancelled:
            return self._discarded(question, index, wave, own, steps, begin)
        self.outcomes[index] = outcome
        traj = outcome.trajectory or outcome.trajectories[-1]
        record = SampleRecord(index=index, wave=wave, seed=own.seed, temperature=own.temperature, top_p=own.top_p,
                              key=_key(config, outcome), weight=_weight(config, self.task, traj), trajectory=traj,
                              earlier=[t for t in outcome.trajectories if t is not traj],
                              spent=None if outcome.kind == "single" else outcome.usage,
                              start_s=round(begin - self.started, 4),
                              end_s=round(time.perf_counter() - self.started, 4))
        if ctx.on_sample is not None:
            ctx.on_sample(record)
        return record

    def _discarded(self, question: str, index: int, wave: int, own: Settings, steps: list[Step],
                   begin: float) -> SampleRecord:
        """The record of a sample cancelled by early stopping: the steps it finished, no vote."""
        end = time.perf_counter()
        traj = Trajectory(task=question, agent=self.ctx.agent, model=self.ctx.model.spec,
                          backend=self.ctx.model.backend_name, steps=list(steps), status="error",
                          error="discarded: the vote settled before this sample finished",
                          usage=Usage.from_steps(steps, end - begin), metadata={"discarded": True})
        return SampleRecord(index=index, wave=wave, seed=own.seed, temperature=own.temperature, top_p=own.top_p,
                            key=None, trajectory=traj, discarded=True, start_s=round(begin - self.started, 4),
                            end_s=round(end - self.started, 4))

    def _run(self, question: str, ctx: StrategyContext, index: int) -> Outcome:
        return run_sample(self.owner.inner, question, ctx, self.label, propagate=(), index=index)


def run_sample(inner: Strategy, task: str, ctx: StrategyContext, label: str | None, *,
               propagate: tuple[type[Exception], ...] = (GenerationCancelled,), index: int | None = None) -> Outcome:
    """One sample of a vote or a best-of-N: a sample that raises becomes an ``error`` trajectory (it abstains).

    Args:
        inner: The strategy one sample runs.
        task: The task.
        ctx: The sample's own context (seed, held memory).
        label: The gold answer, when known.
        propagate: Exceptions that are not the sample's failure and go to the caller (default: a cancellation;
            self-consistency records a cancelled sample itself, so it passes ``()``).
        index: The sample's number (its span is ``sample {index}``).
    """
    try:
        with chain_span(f"sample {index}" if index is not None else "sample", {
                "ponder.sample.index": index, "gen_ai.request.seed": ctx.settings.seed,
                "gen_ai.request.temperature": ctx.settings.temperature}) as current:
            outcome = inner.run(task, ctx, label)
            set_attributes(current, {"output.value": outcome.answer, "ponder.status": outcome.status})
    except propagate:
        raise
    except Exception as exc:  # noqa: BLE001 - one broken sample must not sink the others
        traj = Trajectory(task=task, agent=ctx.agent, model=ctx.model.spec, status="error",
                          error=f"{type(exc).__name__}: {exc}")
        return Outcome(kind="single", task=task, status="error", trajectories=[traj], chosen=0)
    if not outcome.trajectories:
        traj = Trajectory(task=task, agent=ctx.agent, model=ctx.model.spec, status="error",
                          error="the sample ran no trajectory")
        outcome.trajectories.append(traj)
    return outcome


def _collect(steps: list[Step], token: CancelToken | None) -> Callable[[Step], None]:
    """The sample's ``on_step``: keeps its steps (a discarded sample's usage) and ends it once its token is cancelled.

    Raising here stops the agent after the step it just finished, for backends that do not watch the token.
    """
    def on_step(step: Step) -> None:
        steps.append(step)
        if token is not None and token.cancelled:
            raise GenerationCancelled("self-consistency: the vote settled without this sample")

    return on_step


def _key(config: SCConfig, outcome: Outcome) -> str | None:
    if outcome.status != "solved":
        return None
    return answer_key(outcome.answer, config.answer_kind, config.normalize)


def _weight(config: SCConfig, task: str, traj: Trajectory) -> float:
    if config.vote != "weighted":
        return 1.0
    if config.verifier is not None:
        return min(1.0, max(0.0, float(config.verifier(task, traj))))
    logprobs = [s.logprob for s in traj.steps]
    if not logprobs or any(lp is None for lp in logprobs):
        return 1.0
    return logprob_weight(sum(lp for lp in logprobs if lp is not None), traj.usage.completion_tokens) or 1.0


def _result(task: str, ctx: StrategyContext, config: SCConfig, state: dict[str, Any],
            wall: float) -> SelfConsistencyResult:
    samples = sorted(state.get("samples", []), key=lambda s: s.index)
    table = state.get("table")
    judge = state.get("judge")
    judged = Usage(prompt_tokens=judge.prompt_tokens, completion_tokens=judge.completion_tokens,
                   model_calls=1) if judge else Usage()
    usage = sum((s.usage for s in samples), judged).model_copy(update={"wall_seconds": round(wall, 4)})
    voted = [s for s in samples if not s.discarded]
    saved = config.samples - len(voted)
    per_sample = (sum(s.usage.total_tokens for s in voted) / len(voted)) if voted else 0
    discarded_tokens = sum(s.usage.total_tokens for s in samples if s.discarded)
    backend: ModelBackend = ctx.model
    return SelfConsistencyResult(
        task=task, agent=ctx.agent, model=backend.spec, backend=backend.backend_name,
        answer_kind=config.answer_kind, vote=config.vote, samples_planned=config.samples, samples_run=len(voted),
        samples_discarded=len(samples) - len(voted),
        waves=state.get("waves", 0), stop_rule=config.stop_rule if config.early_stop else None,
        stop_reason=state.get("stop_reason") or "all_samples", budget=str(config.budget) if config.budget else None,
        final_answer=state.get("final_answer"), winner_key=table.winner if table else None,
        chosen_sample=state.get("chosen_sample"), agreement=round(table.agreement, 4) if table else 0.0,
        votes=table.rows if table else [], abstained=table.abstained if table else [], judge=judge,
        samples=samples, usage=usage, samples_saved=saved,
        tokens_saved_estimate=max(0, round(saved * per_sample) - discarded_tokens),
        metadata={**format_metadata(backend.load_info), **ctx.metadata},
    )


def apply_held_memory(held: dict[int, MemoryContext], chosen: int | None) -> dict[str, object]:
    """Apply the chosen sample's held writes; drop every other sample's (also used by best-of-N)."""
    applied = [r.model_dump() for r in held[chosen].flush()] if chosen is not None and chosen in held else []
    dropped = sum(ctx.discard() for i, ctx in held.items() if i != chosen)
    return {"applied": applied, "discarded": dropped, "from_sample": chosen}


def _outcome(result: SelfConsistencyResult, attempts: list[Outcome]) -> Outcome:
    """The strategy outcome of a vote: the voting samples' trajectories in sample order, the vote rows as candidates.

    Discarded samples stay in the record only (their tokens are in the usage).
    """
    trajectories: list[Trajectory] = []
    position: dict[int, int] = {}
    for sample in result.voters():
        trajectories.extend(sample.earlier)
        position[sample.index] = len(trajectories)
        trajectories.append(sample.trajectory)
    weighted = result.vote == "weighted"
    candidates = [Candidate(answer=row.answer, key=row.key, score=row.weight if weighted else row.votes,
                            trajectories=[position[i] for i in row.samples if i in position]) for row in result.votes]
    chosen = position.get(result.chosen_sample) if result.chosen_sample is not None else None
    status = trajectories[chosen].status if chosen is not None else "error"
    return Outcome(kind="self_consistency", task=result.task, answer=result.final_answer, status=status,
                   trajectories=trajectories, chosen=chosen, usage=result.usage, candidates=candidates,
                   attempts=attempts, records=[result],
                   metadata={"self_consistency_id": result.id, "samples_run": result.samples_run,
                             "samples_discarded": result.samples_discarded,
                             "stop_reason": result.stop_reason, "agreement": result.agreement,
                             "chosen_sample": result.chosen_sample})
