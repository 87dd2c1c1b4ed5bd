"""``BeamSearch``: step-level beam search over agent steps, kept by a verifier (a PRM, the model's value, env).

    START → plan ─┬─ Send("candidate") × k·b ─► candidate ─► collect ─┬─ Send("evaluate") × new ─► evaluate ─► prune ─┐
                  │                                                  └─ nothing new ──────────────────────► prune ─┤
                  └─ stop (solved / depth / budget / no beam left) ─► END                         ◄──────── plan ◄──┘

Each round every one of the ``k`` = ``spec.beam_width`` beams gets ``b`` = ``spec.expansions`` sampled next steps
(one ``Send`` branch each, all ``k·b`` decoded together by a continuous-batching backend; each step applied in
its own session: the tool call, the env action in a replayed fork, the program run). Candidates repeating a
sibling's action are dropped; the rest are scored by the verifier (one ``Send`` branch each). Finished
candidates are put aside; the ``k`` best unfinished ones (by score, ties by age) are the next beams
(``TreeNode.kept``). The search stops when a finished candidate succeeds (env: won; else solved with a score
of at least ``spec.accept``), at the step cap (``ctx.max_steps`` or ``settings.max_steps``), when the budget is
spent (tokens: the verifier's counted; samples: finished candidates) or when no beam is left. The answer is
the best finished leaf (env: won first, then by score), else the best last beam.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypedDict

from langgraph.graph import END
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from ponder.graphs.search.evaluate import search_graph
from ponder.graphs.search.outcome import finish, leaf_rank
from ponder.graphs.search.run import SearchRun
from ponder.graphs.search.stepper import Moved
from ponder.graphs.strategies.base import Outcome, StrategyContext
from ponder.graphs.tracing import expanded_attributes, outcome_attributes, traced
from ponder.graphs.verifiers.base import Score, Verifier

if TYPE_CHECKING:
    from ponder.graphs.strategies.spec import RunSpec


class BeamRun(SearchRun):
    """A beam search: the shared search state plus the finished leaves and the success, if any."""

    def __init__(self, task: str, ctx: StrategyContext, spec: RunSpec, verifier: Verifier | None,
                 actions_only: bool = True) -> None:
        super().__init__("beam", task, ctx, spec, {"beam_width": spec.beam_width, "expansions": spec.expansions,
                                                   "accept": spec.accept}, verifier, actions_only)
        self.finished: list[int] = []
        self.solved: int | None = None

    def stop_reason(self, depth: int, beams: list[int]) -> str | None:
        """Why the search stops before round ``depth`` (``None``: it goes on)."""
        if self.solved is not None:
            return "solved"
        if not beams:
            return "exhausted"
        if depth >= self.stepper.max_steps:
            return "depth"
        if self.over_budget():
            return "budget"
        if self.budget is not None and self.budget.kind == "samples" and len(self.finished) >= self.budget.value:
            return "budget"
        return None

    def chosen(self, beams: list[int]) -> int | None:
        """The best finished leaf (env: won first), else the best remaining beam."""
        pool = self.finished or beams
        return max(pool, key=lambda i: leaf_rank(self, i)) if pool else None


class BeamState(TypedDict, total=False):
    """State of a beam-search graph run (the tree lives in the :class:`BeamRun` context)."""

    depth: int
    beams: list[int]
    jobs: list[tuple[int, int]]
    mark: int
    moves: Annotated[list[tuple[int, Moved]], operator.add]
    fresh: list[int]
    score_mark: int
    scores: Annotated[list[tuple[int, Score]], operator.add]
    stop_reason: str | None


class CandidateTask(TypedDict):
    """The input of one ``candidate`` branch: the beam it extends and the seed of its model call."""

    node: int
    seed: int


def plan(state: BeamState, runtime: Runtime[BeamRun]) -> dict[str, Any]:
    """Check the stop rules, then give every beam ``b`` seeds."""
    run = runtime.context
    beams = state.get("beams", [0])
    reason = run.stop_reason(state.get("depth", 0), beams)
    if reason:
        return {"stop_reason": reason}
    jobs = [(beam, seed) for beam in beams for seed in run.seeds(run.spec.expansions)]
    run.enter(len(jobs))
    return {"jobs": jobs, "mark": len(state.get("moves", [])), "score_mark": len(state.get("scores", []))}


def fan_candidates(state: BeamState) -> list[Send] | str:
    """One ``candidate`` branch per beam and sample, or the end."""
    if state.get("stop_reason"):
        return END
    return [Send("candidate", CandidateTask(node=node, seed=seed)) for node, seed in state["jobs"]]


@traced("expand", expanded_attributes)
def candidate(task: CandidateTask, runtime: Runtime[BeamRun]) -> dict[str, Any]:
    """One sampled step from a beam, applied in a session of its own."""
    run = runtime.context
    try:
        return {"moves": [(task["node"], run.stepper.step(run.partials[task["node"]], task["seed"]))]}
    finally:
        run.leave()


def collect(state: BeamState, runtime: Runtime[BeamRun]) -> dict[str, Any]:
    """Add the candidates to the tree (a sibling's repeated action dropped)."""
    run = runtime.context
    moves = sorted(state.get("moves", [])[state.get("mark", 0):], key=lambda item: item[1].seed)
    fresh: list[int] = []
    for beam in state.get("beams", [0]):
        kept = run.dedupe(beam, [moved for parent, moved in moves if parent == beam])
        fresh += [run.add(beam, moved, batch=len(moves)) for moved in kept]
    run.enter(len(fresh))
    return {"fresh": fresh}


def prune(state: BeamState, runtime: Runtime[BeamRun]) -> dict[str, Any]:
    """Put finished candidates aside; the ``k`` best unfinished ones are the next beams."""
    run = runtime.context
    for node_id, score in state.get("scores", [])[state.get("score_mark", 0):]:
        run.apply_score(node_id, score)
    fresh = state.get("fresh") or []
    for node_id in fresh:
        if run.tree.nodes[node_id].terminal:
            run.finished.append(node_id)
            if run.solved is None and run.succeeded(node_id):
                run.solved = node_id
    ranked = sorted((i for i in fresh if not run.tree.nodes[i].terminal),
                    key=lambda i: (-(run.tree.nodes[i].score or 0.0), i))
    beams = ranked[: run.spec.beam_width]
    for node_id in ranked:
        node = run.tree.nodes[node_id]
        node.kept = node_id in beams
        node.visits = int(node.kept)
    return {"beams": beams, "depth": state.get("depth", 0) + 1, "fresh": []}


@functools.cache
def build_beam_graph() -> CompiledStateGraph:
    """The beam-search graph, compiled once per process (each search passes its :class:`BeamRun`)."""
    return search_graph("beam", BeamState, BeamRun, decide=("plan", plan), fan_moves=fan_candidates,
                        move=("candidate", candidate), gather=("collect", collect), conclude=("prune", prune))


@dataclass
class BeamSearch:
    """Step-level beam search over the context's agent (env episodes when ``ctx.env`` is set).

    Args:
        spec: ``beam_width`` (k), ``expansions`` (b), ``budget``, ``accept``, ``verifier`` / ``prm``,
            ``sample_temperature`` / ``sample_top_p`` / ``sample_seed``.
        verifier: Use this verifier instead of ``spec.verifier`` (tests, callers with their own).
        actions_only: Env episodes on a backend that honours grammars: every candidate is one admissible action
            (see :class:`~ponder.graphs.search.lats.LATS`).
    """

    spec: RunSpec
    verifier: Verifier | None = None
    actions_only: bool = True

    @traced("beam", outcome_attributes, task_arg=1)
    def run(self, task: str, ctx: StrategyContext, label: str | None = None) -> Outcome:
        """Search, then return the outcome (the best finished leaf chosen; the tree in ``records``)."""
        run = BeamRun(task, ctx, self.spec, self.verifier, self.actions_only)
        run.add_root(run.stepper.root())
        final = build_beam_graph().invoke({"depth": 0, "beams": [0]}, {"recursion_limit": 1_000_000}, context=run)
        chosen = run.solved if run.solved is not None else run.chosen(final.get("beams") or [])
        return finish(run, "beam", chosen, final.get("stop_reason") or "exhausted", label,
                      {"iterations": final.get("depth", 0), "finished": len(run.finished)})
