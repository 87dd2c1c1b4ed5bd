"""The PAL graph: the model writes ``solution()``, an out-of-process executor runs it.

START → write ─┬─ code ─► execute ─┬─ answer ─────────────► END
│                   └─ failed ─► write (retry) or give_up ─► END
└─ no code ─► write (retry) or give_up ─► END
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from ponder.agents.parsing import answer_from_value, extract_code
from ponder.agents.prompts import render
from ponder.errors import ConfigError
from ponder.graphs.deps import AgentDeps, call_model, model_step, step_params
from ponder.models.base import Message
from ponder.records import Step


class PALState(TypedDict, total=False):
    """State of one PAL run."""

    task: str
    messages: Annotated[list[Message], operator.add]
    steps: Annotated[list[Step], operator.add]
    pending: Step | None
    final_answer: str | None
    status: str | None
    last_failure: str | None


def initial_state(task: str) -> PALState:
    """The input state for a question."""
    return {"task": task, "messages": [{"role": "user", "content": f"Question: {task}"}], "steps": [],
            "pending": None, "final_answer": None, "status": None, "last_failure": None}


def build_pal_graph(deps: AgentDeps) -> Any:
    """Build and compile the PAL graph for ``deps`` (which must carry an executor)."""
    if deps.executor is None:
        raise ConfigError("the PAL agent needs a code executor")
    executor = deps.executor
    system: Message = {"role": "system", "content": render("pal_system")}
    params = step_params(deps, [])

    def write(state: PALState) -> dict[str, Any]:
        index = len(state["steps"])
        completion, seconds = call_model(deps, [system, *state["messages"]], params)
        code = extract_code(completion.text)
        if code is None:
            problem = "no Python code block was found."
            obs = render("pal_retry", problem=problem)
            step = model_step(index, "parse_error", completion, seconds, observation=obs)
            return {"steps": [step], "messages": step.to_messages(), "last_failure": "parse_error"}
        step = model_step(index, "program", completion, seconds, action="python", action_input=code)
        return {"pending": step}

    def execute(state: PALState) -> dict[str, Any]:
        pending = state["pending"]
        assert pending is not None
        result = executor.run(f"{pending.action_input}\n\nsolution()")
        answer = answer_from_value(result.value, result.stdout) if result.ok else None
        if answer is not None:
            step = pending.model_copy(update={"observation": answer, "tool_seconds": result.duration})
            return {"steps": [step], "final_answer": answer, "status": "solved", "pending": None}
        problem = result.summary() if not result.ok else "solution() returned None and printed nothing."
        obs = render("pal_retry", problem=problem)
        step = pending.model_copy(update={"observation": obs, "tool_seconds": result.duration})
        return {"steps": [step], "messages": step.to_messages(), "pending": None, "last_failure": "max_steps"}

    def give_up(state: PALState) -> dict[str, Any]:
        return {"status": state.get("last_failure") or "max_steps"}

    def attempts(state: PALState) -> int:
        return len([s for s in state["steps"] if s.kind in ("program", "parse_error")])

    def after_write(state: PALState) -> str:
        if state.get("pending") is not None:
            return "execute"
        return _retry_or_give_up(state)

    def after_execute(state: PALState) -> str:
        return END if state.get("status") else _retry_or_give_up(state)

    def _retry_or_give_up(state: PALState) -> str:
        return "write" if attempts(state) <= deps.pal_retries and attempts(state) < deps.max_steps else "give_up"

    graph = StateGraph(PALState)
    graph.add_node("write", write)
    graph.add_node("execute", execute)
    graph.add_node("give_up", give_up)
    graph.add_edge(START, "write")
    graph.add_conditional_edges("write", after_write, ["execute", "write", "give_up"])
    graph.add_conditional_edges("execute", after_execute, ["write", "give_up", END])
    graph.add_edge("give_up", END)
    return graph.compile(name="pal")
