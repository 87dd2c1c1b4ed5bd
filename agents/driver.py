"""The driver: stream one agent-graph run into a :class:`~ponder.core.records.Trajectory`.

Every entry point (:func:`~ponder.agents.runner.run_agent`, :func:`~ponder.agents.env.run_env_agent`) runs its
graph through :func:`drive`, so steps, ``on_step``, status, answer, the memory log, the context budget's record
and the usage are filled in one way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from langgraph.graph.state import CompiledStateGraph

from ponder.agents.context import AgentContext
from ponder.core.records import Step, Trajectory, Usage

#: The file in a run's output folder that every entry point appends its trajectories to.
TRAJECTORY_FILE = "trajectories.jsonl"
#: State keys the driver does not keep in its final values (the trajectory holds the steps).
_GROWING = ("steps", "messages")


def recursion_limit(max_steps: int) -> int:
    """LangGraph's superstep limit for a run of ``max_steps`` model calls.

    A step is one task and the skeleton adds at most three (``recall``, a cap, ``remember``); the limit leaves room
    for agents whose step takes more tasks and for a graph that runs the agent graph as a subgraph.
    """
    return 3 * max_steps + 10


def describe_error(exc: BaseException) -> str:
    """``Type: message`` (or just the type) for a trajectory's ``error``."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def drive(graph: CompiledStateGraph, state: dict[str, Any], context: AgentContext, trajectory: Trajectory,
          on_step: Callable[[Step], None] | None = None, *, started: float | None = None,
          values: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run ``graph`` from ``state`` with ``context`` and record the run in ``trajectory``.

    Args:
        graph: A compiled agent graph.
        state: The input state.
        context: The run's runtime context (its ``limits.max_steps`` sets the recursion limit).
        trajectory: Receives the steps (as they finish), status, final answer, ``metadata["memory"]``
            (the memory log, when memory is on), ``metadata["tools"]`` and ``["prompt_sha256"]`` (the prompt's
            tool names and fingerprint: :func:`~ponder.agents.kernel.prompt_facts`),
            ``metadata["elided_observations"]`` (when the context budget
            elided any) and the usage.
        on_step: Called with each finished step.
        started: ``time.perf_counter()`` when the run began (default: now); the usage's wall time counts from it.
        values: Collects the final values (default: a new dict); holds the values so far when the graph raised.

    Returns:
        The final values of the state's keys other than ``steps`` and ``messages``.

    Raises:
        BaseException: whatever the graph raised; the trajectory then has status ``error`` and ``error`` set.
    """
    start = time.perf_counter() if started is None else started
    final: dict[str, Any] = {} if values is None else values
    memory: dict[str, Any] = {}
    try:
        config = {"recursion_limit": recursion_limit(context.limits.max_steps)}
        for update in graph.stream(state, config, context=context, stream_mode="updates"):
            for node_update in update.values():
                if node_update:
                    _absorb(node_update, trajectory, final, memory, on_step)
        _conclude(trajectory, final, memory)
    except BaseException as exc:
        trajectory.status, trajectory.error = "error", describe_error(exc)
        raise
    finally:
        trajectory.usage = Usage.from_steps(trajectory.steps, time.perf_counter() - start)
    return final


def _absorb(update: dict[str, Any], trajectory: Trajectory, final: dict[str, Any], memory: dict[str, Any],
            on_step: Callable[[Step], None] | None) -> None:
    for step in update.get("steps", ()):
        trajectory.steps.append(step)
        if on_step:
            on_step(step)
    memory.update(update.get("memory") or {})  # recall and remember write the memory sub-state whole
    elided = max(final.get("elided_observations", 0), update.get("elided_observations", 0))
    final.update((k, v) for k, v in update.items() if k not in _GROWING)
    final["elided_observations"] = elided


def _conclude(trajectory: Trajectory, final: dict[str, Any], memory: dict[str, Any]) -> None:
    final["memory"] = memory
    trajectory.final_answer = final.get("final_answer")
    status = final.get("status")
    if status is None:
        trajectory.status, trajectory.error = "error", "the graph ended without a status"
    else:
        trajectory.status = status
    if memory.get("log"):
        trajectory.metadata["memory"] = memory["log"]
    trajectory.metadata.update(memory.get("prompt") or {})
    if final.get("elided_observations"):
        trajectory.metadata["elided_observations"] = final["elided_observations"]
