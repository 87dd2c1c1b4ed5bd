"""``run_self_consistency``: N independent agent trajectories, a vote, early stopping, one record.

Each sample is a full :func:`~ponder.agents.runner.run_agent` call with its own sampling parameters
(seed ``seed + i``), its own tools and sandbox session (created and closed by ``run_agent``), and its own
queue of memory writes (held): after the vote, only the chosen sample's writes reach the store. With a
backend that decodes batches natively (``transformers``), the samples' model calls are gathered into
batches by :class:`~ponder.models.batching.MicroBatcher`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.core.errors import ConfigError
from ponder.core.io import append_jsonl
from ponder.core.records import Trajectory, Usage
from ponder.core.settings import Settings, load_settings
from ponder.graphs.self_consistency.graph import SCConfig, SCDeps, build_sc_graph
from ponder.graphs.self_consistency.judge import make_judge
from ponder.graphs.self_consistency.normalize import answer_key
from ponder.graphs.self_consistency.records import SampleRecord, SelfConsistencyResult
from ponder.graphs.self_consistency.voting import VOTE_METHODS, logprob_weight
from ponder.models.base import ModelBackend

if TYPE_CHECKING:
    from ponder.memory.context import MemoryContext

SC_FILE = "self_consistency.jsonl"
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


def _weight(config: SCConfig, task: str, traj: Trajectory) -> float:
    if config.vote != "weighted":
        return 1.0
    if config.verifier is not None:
        return min(1.0, max(0.0, float(config.verifier(task, traj))))
    logprobs = [s.logprob for s in traj.steps]
    if not logprobs or any(lp is None for lp in logprobs):
        return 1.0
    return logprob_weight(sum(lp for lp in logprobs if lp is not None), traj.usage.completion_tokens) or 1.0


def run_self_consistency(
    task: str,
    *,
    config: SCConfig | None = None,
    agent: str | None = None,
    settings: Settings | None = None,
    model: ModelBackend | None = None,
    memory: MemoryContext | None = None,
    on_sample: Callable[[SampleRecord], None] | None = None,
    out_dir: str | Path | None = None,
    write: bool = True,
    metadata: dict[str, object] | None = None,
) -> SelfConsistencyResult:
    """Run ``config.samples`` independent trajectories of ``agent`` on ``task`` and vote.

    Args:
        task: The question.
        config: Samples, vote, stop rule, budget (default: 8 samples, majority, no early stop).
        agent: ``react`` or ``pal`` (default: ``settings.agent``).
        settings: Settings (default: :func:`~ponder.core.settings.load_settings`).
        model: A backend (default: loaded from ``settings.model``).
        memory: Memory for every sample (writes held; the chosen sample's are applied after the vote).
        on_sample: Called with each finished sample (from the branch's thread).
        out_dir: Where ``self_consistency.jsonl`` is appended (default: ``settings.out_dir``).
        write: Set ``False`` to skip writing the record.
        metadata: Extra fields stored in the record.

    Raises:
        ConfigError: for invalid options (unknown vote, samples < 1).
    """
    from ponder.models.batching import MicroBatcher
    from ponder.models.spec import load_model

    config = config or SCConfig()
    settings = settings or load_settings()
    agent = agent or settings.agent
    if config.samples < 1:
        raise ConfigError("--samples must be at least 1")
    if config.vote not in VOTE_METHODS:
        raise ConfigError(f"unknown vote {config.vote!r}; choose one of: {', '.join(VOTE_METHODS)}")
    answer_key(None, config.answer_kind)  # unknown kinds fail before any sample runs
    backend = model or load_model(settings.model, settings)
    batcher = None
    if config.batch and config.wave_size() > 1 and backend.capabilities.batched_decoding:
        batcher = MicroBatcher(backend, window=config.batch_window, max_batch=config.wave_size())
    sample_model: ModelBackend = batcher or backend  # type: ignore[assignment]
    held: dict[int, MemoryContext] = {}

    def run_sample(question: str, index: int, wave: int) -> SampleRecord:
        own = sample_settings(settings, config, index)
        sample_memory = None
        if memory is not None:
            sample_memory = held[index] = dataclasses.replace(memory, hold_writes=True, pending=[], run_id="")
        try:
            traj = _run_one(question, agent, own, sample_model, sample_memory)
        finally:
            if batcher is not None:
                batcher.leave()
        record = SampleRecord(index=index, wave=wave, seed=own.seed, temperature=own.temperature,
                              top_p=own.top_p, key=_key(config, traj), weight=_weight(config, task, traj),
                              trajectory=traj)
        if on_sample is not None:
            on_sample(record)
        return record

    judge = make_judge(backend, settings) if config.vote == "judge" else None
    on_wave = (lambda indices: batcher.enter(len(indices))) if batcher is not None else None
    graph = build_sc_graph(SCDeps(config=config, run_sample=run_sample, judge=judge, on_wave=on_wave))
    start = time.perf_counter()
    state = graph.invoke({"task": task, "samples": [], "launched": 0, "waves": 0},
                         {"max_concurrency": config.wave_size(), "recursion_limit": 4 * config.samples + 10})
    result = _result(task, agent, backend, config, state, time.perf_counter() - start, metadata)
    result.batch_sizes = list(batcher.batches) if batcher is not None else []
    if memory is not None:
        result.memory = _apply_memory(held, result.chosen_sample)
    if write:
        append_jsonl(Path(out_dir or settings.out_dir) / SC_FILE, result)
    return result


def _run_one(task: str, agent: str, settings: Settings, model: ModelBackend,
             memory: MemoryContext | None) -> Trajectory:
    from ponder.agents.runner import run_agent

    try:
        return run_agent(task, agent=agent, settings=settings, model=model, write=False, memory=memory)
    except Exception as exc:  # one broken sample must not sink the others: it abstains
        return Trajectory(task=task, agent=agent, model=model.spec, status="error",
                          error=f"{type(exc).__name__}: {exc}")


def _key(config: SCConfig, traj: Trajectory) -> str | None:
    if traj.status != "solved":
        return None
    return answer_key(traj.final_answer, config.answer_kind, config.normalize)


def _result(task: str, agent: str, backend: ModelBackend, config: SCConfig, state: dict[str, Any], wall: float,
            metadata: dict[str, object] | None) -> SelfConsistencyResult:
    samples = sorted(state.get("samples", []), key=lambda s: s.index)
    table = state.get("table")
    judge = state.get("judge")
    usage = Usage(
        prompt_tokens=sum(s.trajectory.usage.prompt_tokens for s in samples) + (judge.prompt_tokens if judge else 0),
        completion_tokens=sum(s.trajectory.usage.completion_tokens for s in samples)
        + (judge.completion_tokens if judge else 0),
        model_calls=sum(s.trajectory.usage.model_calls for s in samples) + (1 if judge else 0),
        tool_calls=sum(s.trajectory.usage.tool_calls for s in samples),
        wall_seconds=round(wall, 4),
    )
    saved = config.samples - len(samples)
    per_sample = (sum(s.trajectory.usage.total_tokens for s in samples) / len(samples)) if samples else 0
    return SelfConsistencyResult(
        task=task, agent=agent, model=backend.spec, backend=str(getattr(backend, "backend_name", backend.spec)),
        answer_kind=config.answer_kind, vote=config.vote, samples_planned=config.samples, samples_run=len(samples),
        waves=state.get("waves", 0), stop_rule=config.stop_rule if config.early_stop else None,
        stop_reason=state.get("stop_reason") or "all_samples", budget=str(config.budget) if config.budget else None,
        final_answer=state.get("final_answer"), winner_key=table.winner if table else None,
        chosen_sample=state.get("chosen_sample"), agreement=round(table.agreement, 4) if table else 0.0,
        votes=table.rows if table else [], abstained=table.abstained if table else [], judge=judge,
        samples=samples, usage=usage, samples_saved=saved, tokens_saved_estimate=round(saved * per_sample),
        metadata=dict(metadata or {}),
    )


def _apply_memory(held: dict[int, MemoryContext], chosen: int | None) -> dict[str, object]:
    """Apply the chosen sample's held writes; drop every other sample's."""
    applied = [r.model_dump() for r in held[chosen].flush()] if chosen is not None and chosen in held else []
    dropped = sum(ctx.discard() for i, ctx in held.items() if i != chosen)
    return {"applied": applied, "discarded": dropped, "from_sample": chosen}
