"""The loop both searches share, and its ``evaluate`` fan-out: one ``Send`` branch per new node.

    START → decide ─┬─ Send(move) × n ─► move ─► gather ─┬─ Send("evaluate") × new ─► evaluate ─► conclude ─┐
                    └─ stop ─► END                        └─ nothing new ───────────────────────► conclude ─┤
                           ▲─────────────────────────────────────────────────────────────────────────────────┘

Beam search (plan / candidate / collect / prune) and LATS (select / expand / gather / simulate) are this loop with
their own nodes (:func:`search_graph`). They gather their new nodes into ``state["fresh"]``; :func:`fan_evaluate`
sends each to ``evaluate`` (the verifier calls of one step decoded together on a batching backend) or, when
nothing new was found, goes straight to the node that reads the scores.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from ponder.graphs.search.run import SearchRun
from ponder.graphs.tracing import evaluated_attributes, traced

EVALUATE = "evaluate"


class EvaluateTask(TypedDict):
    """The input of one ``evaluate`` branch: the node to score."""

    node: int


def fan_evaluate(then: str) -> Callable[[Mapping[str, Any]], list[Send] | str]:
    """A router: one ``evaluate`` branch per new node in ``state["fresh"]``; none: ``then``."""

    def route(state: Mapping[str, Any]) -> list[Send] | str:
        fresh = state.get("fresh") or []
        return [Send(EVALUATE, EvaluateTask(node=i)) for i in fresh] if fresh else then

    route.__name__ = f"fan_evaluate_or_{then}"
    return route


@traced("evaluate", evaluated_attributes)
def evaluate(task: EvaluateTask, runtime: Runtime[SearchRun]) -> dict[str, Any]:
    """The verifier's score of one new node (appended to ``scores``)."""
    run = runtime.context
    try:
        return {"scores": [(task["node"], run.score(run.partials[task["node"]]))]}
    finally:
        run.leave()


#: A named node: ``(name, function)``.
NamedNode = tuple[str, Callable[..., Any]]


def search_graph(name: str, state: type, context: type, *, decide: NamedNode,
                 fan_moves: Callable[..., list[Send] | str], move: NamedNode, gather: NamedNode,
                 conclude: NamedNode) -> CompiledStateGraph:
    """The search loop compiled with a strategy's nodes (the diagram above); ``fan_moves`` routes ``decide``."""
    graph = StateGraph(state, context_schema=context)
    for node_name, node in (decide, move, gather, (EVALUATE, evaluate), conclude):
        graph.add_node(node_name, node)
    graph.add_edge(START, decide[0])
    graph.add_conditional_edges(decide[0], fan_moves, [move[0], END])
    graph.add_edge(move[0], gather[0])
    graph.add_conditional_edges(gather[0], fan_evaluate(conclude[0]), [EVALUATE, conclude[0]])
    graph.add_edge(EVALUATE, conclude[0])
    graph.add_edge(conclude[0], decide[0])
    return graph.compile(name=name)
