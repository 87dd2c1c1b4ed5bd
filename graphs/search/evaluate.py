"""The ``evaluate`` fan-out both searches share: one ``Send`` branch per new node, scored by the verifier.

Beam search and LATS gather their new nodes into ``state["fresh"]``; :func:`fan_evaluate` sends each to the
``evaluate`` node (the verifier calls of one step decoded together on a batching backend) or, when nothing new
was found, goes straight to the node that reads the scores (``prune`` / ``simulate``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypedDict

from langgraph.runtime import Runtime
from langgraph.types import Send

from ponder.graphs.search.run import SearchRun

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


def evaluate(task: EvaluateTask, runtime: Runtime[SearchRun]) -> dict[str, Any]:
    """The verifier's score of one new node (appended to ``scores``)."""
    run = runtime.context
    try:
        return {"scores": [(task["node"], run.score(run.partials[task["node"]]))]}
    finally:
        run.leave()
