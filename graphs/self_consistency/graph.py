"""The self-consistency graph: waves of independent agent runs fanned out with ``Send``, a vote, a stop rule.

START → plan ─┬─ Send("sample", i) × wave ─► sample ─► tally ─┬─ settled / budget / all run ─► decide → END
              └─ nothing left to launch ────────────────────────┴─ otherwise ─► plan

Each ``sample`` branch runs a whole ReAct or PAL trajectory through :func:`ponder.agents.runner.run_agent`
with its own state, tools, sandbox session and held-back memory writes (see ``run.py``): no branch sees
another's steps. The branches' results are merged with ``operator.add`` and voted on in ``tally``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from ponder.graphs.self_consistency.normalize import NormalizeContext
from ponder.graphs.self_consistency.records import JudgeRecord, SampleRecord
from ponder.graphs.self_consistency.stopping import Budget, settled
from ponder.graphs.self_consistency.voting import Ballot, VoteTable, tally


@dataclass
class SCConfig:
    """How many samples, how to vote and when to stop.

    Attributes:
        samples: Most samples (trajectories) to run.
        vote: ``majority``, ``weighted`` (log-prob or verifier weights) or ``judge`` (an LLM picks).
        answer_kind: Normalizer for the vote (``auto``, ``number``, ``text``, ``choice``, ``code``, or registered).
        early_stop: Stop between waves once ``stop_rule`` says the vote is settled.
        stop_rule: ``certain`` (never changes the answer), ``beta`` or ``esc`` (see ``stopping.py``).
        threshold: Confidence for ``beta``.
        window: Agreeing samples that settle the vote for ``esc`` (default: the wave size, at least 4).
        wave: Samples per wave; default all at once, or half of them with early stopping.
        budget: A cap in samples or tokens.
        temperature: Sampling temperature of every sample (default: the settings' when above 0, else 0.7).
        top_p: Nucleus sampling of every sample (default: the settings').
        seed: Sample ``i`` uses ``seed + i`` (default: the settings' seed, else 0).
        batch: Gather the branches' model calls into batches when the backend decodes batches natively.
        batch_window: Longest wait for a batch to fill (seconds).
        normalize: Options of the normalizer (choices, code tests, a sandbox factory).
        verifier: ``(task, trajectory) -> score`` for weighted votes instead of log-probabilities.
    """

    samples: int = 8
    vote: str = "majority"
    answer_kind: str = "auto"
    early_stop: bool = False
    stop_rule: str = "certain"
    threshold: float = 0.95
    window: int | None = None
    wave: int | None = None
    budget: Budget | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    batch: bool = True
    batch_window: float = 0.05
    normalize: NormalizeContext = field(default_factory=NormalizeContext)
    verifier: Callable[[str, Any], float] | None = None

    def wave_size(self) -> int:
        """Samples per wave."""
        if self.wave:
            return max(1, min(self.wave, self.samples))
        return max(1, math.ceil(self.samples / 2)) if self.early_stop else self.samples


class SCState(TypedDict, total=False):
    """State of a self-consistency run."""

    task: str
    samples: Annotated[list[SampleRecord], operator.add]
    launched: int
    waves: int
    launch: list[int]
    stop_reason: str | None
    table: VoteTable | None
    final_answer: str | None
    chosen_sample: int | None
    judge: JudgeRecord | None


class SampleTask(TypedDict):
    """The input of one ``sample`` branch."""

    task: str
    index: int
    wave: int


@dataclass
class SCDeps:
    """What the graph needs: the config, a function running one sample, the judge (for ``judge``).

    ``on_wave`` is called with each wave's sample indices before its branches start (the micro-batcher's cue).
    """

    config: SCConfig
    run_sample: Callable[[str, int, int], SampleRecord]
    judge: Callable[[str, VoteTable, list[SampleRecord]], JudgeRecord] | None = None
    on_wave: Callable[[list[int]], None] | None = None


def ballots(samples: list[SampleRecord]) -> list[Ballot]:
    """The vote's view of the samples."""
    return [Ballot(index=s.index, answer=s.trajectory.final_answer, key=s.key, weight=s.weight) for s in samples]


def spent_tokens(samples: list[SampleRecord]) -> int:
    """Prompt plus completion tokens of the samples so far."""
    return sum(s.trajectory.usage.total_tokens for s in samples)


def build_sc_graph(deps: SCDeps) -> Any:
    """Build and compile the self-consistency graph for ``deps``."""
    config = deps.config

    def plan(state: SCState) -> dict[str, Any]:
        launched = state.get("launched", 0)
        size = min(config.wave_size(), config.samples - launched)
        if config.budget is not None:
            allowed = config.budget.allows(launched, spent_tokens(state.get("samples", [])))
            if allowed is not None:
                size = min(size, allowed)
            if size <= 0 < config.samples - launched:
                return {"launch": [], "stop_reason": "budget"}
        indices = list(range(launched, launched + max(size, 0)))
        if indices and deps.on_wave is not None:
            deps.on_wave(indices)
        return {"launch": indices, "launched": launched + len(indices), "waves": state.get("waves", 0) + 1}

    def fan_out(state: SCState) -> list[Send] | str:
        launch = state.get("launch") or []
        if not launch:
            return "decide"
        wave = state.get("waves", 1)
        return [Send("sample", SampleTask(task=state["task"], index=i, wave=wave)) for i in launch]

    def sample(task: SampleTask) -> dict[str, Any]:
        return {"samples": [deps.run_sample(task["task"], task["index"], task["wave"])]}

    def tally_node(state: SCState) -> dict[str, Any]:
        samples = state.get("samples", [])
        table = tally(ballots(samples), "majority" if config.vote == "judge" else config.vote)
        remaining = config.samples - state.get("launched", 0)
        if remaining <= 0:
            return {"table": table, "stop_reason": "all_samples"}
        window = config.window or max(config.wave_size(), 4)
        if config.early_stop and settled(config.stop_rule, table, ballots(samples), remaining,
                                         threshold=config.threshold, window=window):
            return {"table": table, "stop_reason": "settled"}
        return {"table": table}

    def decide(state: SCState) -> dict[str, Any]:
        samples = state.get("samples", [])
        table = state.get("table") or tally(ballots(samples), "majority" if config.vote == "judge" else config.vote)
        judge: JudgeRecord | None = None
        row = table.rows[0] if table.rows else None
        if config.vote == "judge" and deps.judge is not None and len(table.rows) > 1:
            judge = deps.judge(state["task"], table, samples)
            if judge.choice is not None:
                row = table.rows[judge.choice - 1]
        if row is None:
            return {"table": table, "final_answer": None, "chosen_sample": None, "judge": judge}
        return {"table": table, "final_answer": row.answer, "chosen_sample": row.samples[0], "judge": judge}

    def after_tally(state: SCState) -> str:
        return "decide" if state.get("stop_reason") else "plan"

    graph = StateGraph(SCState)
    graph.add_node("plan", plan)
    graph.add_node("sample", sample)
    graph.add_node("tally", tally_node)
    graph.add_node("decide", decide)
    graph.add_edge(START, "plan")
    graph.add_conditional_edges("plan", fan_out, ["sample", "decide"])
    graph.add_edge("sample", "tally")
    graph.add_conditional_edges("tally", after_tally, ["plan", "decide"])
    graph.add_edge("decide", END)
    return graph.compile(name="self_consistency")
