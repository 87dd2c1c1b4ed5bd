"""The driver: a graph run streamed into a Trajectory (steps, on_step, status, memory log, elision, usage)."""

from __future__ import annotations

from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from ponder.agents.context import Limits
from ponder.agents.driver import drive, recursion_limit
from ponder.agents.state import AgentState
from ponder.core.records import Step, Trajectory


class Ctx:
    """A stand-in context: the script of node updates (and the limits the driver reads)."""

    def __init__(self, updates: list[dict[str, Any]]) -> None:
        self.updates = updates
        self.limits = Limits(max_steps=5)


def scripted_graph(state: type = AgentState) -> Any:
    """A graph of one node per scripted update (``n0``, ``n1``, ...), each writing its update."""

    def make(i: int):  # type: ignore[no-untyped-def]
        def node(_: Any, runtime) -> dict[str, Any]:  # type: ignore[no-untyped-def]
            update = runtime.context.updates[i]
            if isinstance(update, BaseException):
                raise update
            return update

        return node

    graph = StateGraph(state, context_schema=Ctx)
    previous = START
    for i in range(4):
        graph.add_node(f"n{i}", make(i))
        graph.add_edge(previous, f"n{i}")
        previous = f"n{i}"
    graph.add_edge(previous, END)
    return graph.compile()


GRAPH = scripted_graph()


def step(i: int, kind: str = "action", **fields: Any) -> Step:
    return Step(index=i, kind=kind, prompt_tokens=10, completion_tokens=2, action="tool", **fields)  # type: ignore[arg-type]


def run(updates: list[Any], **kwargs: Any) -> tuple[Trajectory, dict[str, Any]]:
    traj = Trajectory(task="t", agent="react", model="m")
    final = drive(GRAPH, {"task": "t", "steps": [], "messages": []}, Ctx(updates), traj, **kwargs)  # type: ignore[arg-type]
    return traj, final


def test_steps_status_answer_memory_and_usage_are_recorded_in_order() -> None:
    seen: list[Step] = []
    log = {"mode": "reflexion", "retrieved": []}
    traj, final = run([
        {"memory": {"prefix": [], "log": log}},
        {"steps": [step(0)], "messages": [{"role": "user", "content": "x"}], "elided_observations": 3},
        {"steps": [step(1, "final")], "status": "solved", "final_answer": "42", "elided_observations": 1},
        {"memory": {"prefix": [], "log": {**log, "outcome": "success"}}},
    ], on_step=seen.append)
    assert [s.index for s in traj.steps] == [0, 1] and seen == traj.steps
    assert traj.status == "solved" and traj.final_answer == "42" and traj.error is None
    assert traj.metadata["memory"] == {**log, "outcome": "success"}
    assert traj.metadata["elided_observations"] == 3  # the most elided from one prompt
    assert traj.usage.model_calls == 2 and traj.usage.tool_calls == 1 and traj.usage.prompt_tokens == 20
    assert traj.usage.wall_seconds >= 0 and "steps" not in final and final["status"] == "solved"


def test_without_memory_or_elision_the_metadata_stays_clean() -> None:
    traj, _ = run([{"memory": {"prefix": []}}, {}, {"status": "max_steps"}, {}])
    assert traj.status == "max_steps" and "memory" not in traj.metadata
    assert "elided_observations" not in traj.metadata


def test_a_graph_without_a_status_is_an_error() -> None:
    traj, _ = run([{}, {}, {}, {}])
    assert traj.status == "error" and traj.error == "the graph ended without a status"


def test_a_raising_graph_records_the_error_and_keeps_what_it_had() -> None:
    traj = Trajectory(task="t", agent="react", model="m")
    values: dict[str, Any] = {}
    updates = [{"steps": [step(0)], "reward": 1.0}, RuntimeError("boom"), {}, {}]

    class WithReward(AgentState, TypedDict, total=False):
        reward: float

    with pytest.raises(RuntimeError, match="boom"):
        drive(scripted_graph(WithReward), {"task": "t", "steps": [], "messages": []}, Ctx(updates), traj,  # type: ignore[arg-type]
              values=values)
    assert traj.status == "error" and traj.error == "RuntimeError: boom"
    assert len(traj.steps) == 1 and traj.usage.model_calls == 1 and values["reward"] == 1.0


def test_recursion_limit_leaves_room_for_the_skeleton() -> None:
    assert recursion_limit(8) == 34 and recursion_limit(1) > 2 + 4
