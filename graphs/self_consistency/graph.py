"""The self-consistency graph: waves of independent agent runs fanned out with ``Send``, a vote, a stop rule.

START → plan ─┬─ Send("sample", i) × wave ─► sample ─► tally ─┬─ settled / budget / all run ─► decide → END
              └─ nothing left to launch ────────────────────────┴─ otherwise ─► plan

Each ``sample`` branch runs one inner strategy (a whole ReAct or PAL trajectory, or a trials loop) with its
own settings, tools, sandbox sessions and held-back memory writes (see
:mod:`ponder.graphs.strategies.self_consistency`): no branch sees another's steps. The branches' results
are merged with ``operator.add`` and voted on in ``tally``.

With early stopping the vote is also re-checked as each sample ends (:mod:`.inflight`): once it is settled,
the samples still running are cancelled (their records are marked ``discarded`` and never vote) and the run
stops with ``settled``. On a backend with continuous batching the default wave is every sample at once (see
:meth:`SCConfig.wave_size`).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Send
from pydantic import BaseModel, ConfigDict, Field, InstanceOf

from ponder.core.types import StopRule, VoteMethod
from ponder.graphs.self_consistency.inflight import InFlight
from ponder.graphs.self_consistency.normalize import NormalizeContext
from ponder.graphs.self_consistency.records import JudgeRecord, SampleRecord
from ponder.graphs.self_consistency.stopping import Budget, settled
from ponder.graphs.self_consistency.voting import Ballot, VoteTable, tally
from ponder.graphs.tracing import decided_attributes, traced
from ponder.models.cancel import cancel_scope, current_token

if TYPE_CHECKING:
    from ponder.graphs.strategies.spec import RunSpec


class SCConfig(BaseModel):
    """How many samples, how to vote and when to stop (built from a ``RunSpec`` by :meth:`from_spec`).

    Attributes:
        samples: Most samples (trajectories) to run.
        vote: ``majority``, ``weighted`` (log-prob or verifier weights) or ``judge`` (an LLM picks).
        answer_kind: Normalizer for the vote (``auto``, ``number``, ``text``, ``choice``, ``code``, or registered).
        early_stop: Stop once ``stop_rule`` says the vote is settled (checked as each sample ends; samples still
            running then are cancelled and discarded).
        stop_rule: ``certain`` (never changes the answer), ``beta`` or ``esc`` (see ``stopping.py``).
        threshold: Confidence for ``beta``.
        window: Agreeing samples that settle the vote for ``esc`` (default: the wave size without continuous
            batching, at least 4).
        wave: Samples per wave (see :meth:`wave_size` for the default).
        budget: A cap in samples or tokens.
        temperature: Sampling temperature of every sample (default: the settings' when above 0, else 0.7).
        top_p: Nucleus sampling of every sample (default: the settings').
        seed: Sample ``i`` uses ``seed + i`` (default: the settings' seed, else 0).
        batch: Gather the branches' model calls into batches when the backend decodes batches natively but has
            no continuous-batching engine (a continuous backend takes the branches' calls directly).
        batch_window: Longest wait for a batch to fill (seconds).
        normalize: Options of the normalizer (choices, code tests, a sandbox factory).
        verifier: ``(task, trajectory) -> score`` for weighted votes instead of log-probabilities.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    samples: int = Field(8, ge=1)
    vote: VoteMethod = "majority"
    answer_kind: str = "auto"
    early_stop: bool = False
    stop_rule: StopRule = "certain"
    threshold: float = Field(0.95, gt=0.0, lt=1.0)
    window: int | None = Field(None, ge=1)
    wave: int | None = Field(None, ge=1)
    budget: InstanceOf[Budget] | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    batch: bool = True
    batch_window: float = Field(0.05, ge=0.0)
    normalize: InstanceOf[NormalizeContext] = Field(default_factory=NormalizeContext)
    verifier: Callable[[str, Any], float] | None = None

    @classmethod
    def from_spec(cls, spec: RunSpec, *, normalize: NormalizeContext | None = None,
                  verifier: Callable[[str, Any], float] | None = None) -> SCConfig:
        """The self-consistency options of a validated :class:`~ponder.graphs.strategies.spec.RunSpec`."""
        return cls(samples=spec.samples, vote=spec.vote, answer_kind=spec.answer_kind, early_stop=spec.early_stop,
                   stop_rule=spec.stop_rule, threshold=spec.threshold, window=spec.window, wave=spec.wave,
                   budget=Budget.parse(spec.budget), temperature=spec.sample_temperature, top_p=spec.sample_top_p,
                   seed=spec.sample_seed, batch=spec.batch, batch_window=spec.batch_window,
                   normalize=normalize or NormalizeContext(), verifier=verifier)

    def wave_size(self, continuous: bool = False) -> int:
        """Samples per wave: ``wave`` when set, else all of them, or half of them with early stopping.

        With ``continuous`` (the backend decodes concurrent calls together and can cancel them) early stopping
        launches every sample at once too and cancels what the vote no longer needs. The answer is the same
        either way for ``certain``; the wall time decides: launching all is never slower than running every
        sample (cancelling only ends it sooner) and has no barrier where a wave waits for its slowest sample,
        while half-waves only win when the first half settles the vote, by the bigger batch's per-sequence
        slowdown (large on a small CPU, where 8 sequences decode about 2× the tokens per second of one, so each
        at about a quarter of the speed; small on a GPU), and lose a barrier plus the bigger batch's throughput
        whenever it does not. Samples the vote never needed still spend tokens
        until they are cancelled (counted in the usage); set ``wave`` to trade wall time for tokens.
        """
        if self.wave:
            return max(1, min(self.wave, self.samples))
        if self.early_stop and not continuous:
            return max(1, math.ceil(self.samples / 2))
        return self.samples


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

    ``run_sample`` runs inside the sample's :func:`~ponder.models.cancel.cancel_scope`; it returns a record
    with ``discarded`` set when the scope's token was cancelled. ``on_wave`` is called with each wave's sample
    indices before its branches start (the micro-batcher's cue). ``continuous``: the backend decodes concurrent
    calls together (the default wave is then every sample, see :meth:`SCConfig.wave_size`).
    """

    config: SCConfig
    run_sample: Callable[[str, int, int], SampleRecord]
    judge: Callable[[str, VoteTable, list[SampleRecord]], JudgeRecord] | None = None
    on_wave: Callable[[list[int]], None] | None = None
    continuous: bool = False


def ballots(samples: list[SampleRecord]) -> list[Ballot]:
    """The vote's view of the samples."""
    return [Ballot(index=s.index, answer=s.trajectory.final_answer, key=s.key, weight=s.weight) for s in samples]


def voters(samples: list[SampleRecord]) -> list[SampleRecord]:
    """The samples that vote: every one but those discarded by early stopping."""
    return [s for s in samples if not s.discarded]


def spent_tokens(samples: list[SampleRecord]) -> int:
    """Prompt plus completion tokens of the samples so far (every trajectory of each sample)."""
    return sum(s.usage.total_tokens for s in samples)


class _Nodes:
    """The graph's nodes over one :class:`SCDeps`."""

    def __init__(self, deps: SCDeps) -> None:
        self.deps = deps
        self.config = deps.config
        self.wave = deps.config.wave_size(deps.continuous)
        self.inflight = InFlight(deps.config.samples, self.settles)

    def plan(self, state: SCState) -> dict[str, Any]:
        config = self.config
        launched = state.get("launched", 0)
        size = min(self.wave, config.samples - launched)
        if config.budget is not None:
            allowed = config.budget.allows(launched, spent_tokens(state.get("samples", [])))
            if allowed is not None:
                size = min(size, allowed)
            if size <= 0 < config.samples - launched:
                return {"launch": [], "stop_reason": "budget"}
        indices = list(range(launched, launched + max(size, 0)))
        if indices and self.deps.on_wave is not None:
            self.deps.on_wave(indices)
        return {"launch": indices, "launched": launched + len(indices), "waves": state.get("waves", 0) + 1}

    def fan_out(self, state: SCState) -> list[Send] | str:
        launch = state.get("launch") or []
        if not launch:
            return "decide"
        wave = state.get("waves", 1)
        return [Send("sample", SampleTask(task=state["task"], index=i, wave=wave)) for i in launch]

    def sample(self, task: SampleTask) -> dict[str, Any]:
        token = self.inflight.start(task["index"], current_token())
        with cancel_scope(token):
            record = self.deps.run_sample(task["task"], task["index"], task["wave"])
        self.inflight.finish(record)
        return {"samples": [record]}

    def _table(self, samples: list[SampleRecord]) -> VoteTable:
        return tally(ballots(samples), "majority" if self.config.vote == "judge" else self.config.vote)

    def settles(self, counted: list[SampleRecord], remaining: int, first_pending: int) -> bool:
        """The stop rule over the ``counted`` samples with ``remaining`` ones (the lowest ``first_pending``) to come."""
        config = self.config
        if not config.early_stop:
            return False
        window = config.window or max(config.wave_size(), 4)
        return settled(config.stop_rule, self._table(counted), ballots(counted), remaining,
                       threshold=config.threshold, window=window, first_pending=first_pending)

    def tally(self, state: SCState) -> dict[str, Any]:
        counted = voters(state.get("samples", []))
        table = self._table(counted)
        if self.inflight.stopped is not None:
            return {"table": table, "stop_reason": self.inflight.stopped}
        launched = state.get("launched", 0)
        if launched >= self.config.samples:
            return {"table": table, "stop_reason": "all_samples"}
        if self.settles(counted, self.config.samples - len(counted), launched):
            return {"table": table, "stop_reason": "settled"}
        return {"table": table}

    @traced("vote", decided_attributes)
    def decide(self, state: SCState) -> dict[str, Any]:
        samples = voters(state.get("samples", []))
        table = state.get("table") or self._table(samples)
        judge: JudgeRecord | None = None
        row = table.rows[0] if table.rows else None
        if self.config.vote == "judge" and self.deps.judge is not None and len(table.rows) > 1:
            judge = self.deps.judge(state["task"], table, samples)
            if judge.choice is not None:
                row = table.rows[judge.choice - 1]
        if row is None:
            return {"table": table, "final_answer": None, "chosen_sample": None, "judge": judge}
        return {"table": table, "final_answer": row.answer, "chosen_sample": row.samples[0], "judge": judge}

    @staticmethod
    def after_tally(state: SCState) -> str:
        return "decide" if state.get("stop_reason") else "plan"


def build_sc_graph(deps: SCDeps) -> CompiledStateGraph:
    """Build and compile the self-consistency graph for ``deps``."""
    nodes = _Nodes(deps)
    graph = StateGraph(SCState)
    graph.add_node("plan", nodes.plan)
    graph.add_node("sample", nodes.sample)
    graph.add_node("tally", nodes.tally)
    graph.add_node("decide", nodes.decide)
    graph.add_edge(START, "plan")
    graph.add_conditional_edges("plan", nodes.fan_out, ["sample", "decide"])
    graph.add_edge("sample", "tally")
    graph.add_conditional_edges("tally", nodes.after_tally, ["plan", "decide"])
    graph.add_edge("decide", END)
    return graph.compile(name="self_consistency")
