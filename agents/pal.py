"""The PAL graph: the model writes ``solution()``, an out-of-process executor runs it.

START → recall → write ─┬─ code ─► execute ─┬─ answer ───────────────► remember → END
                        │                   └─ failed ─► write (retry) or give_up ─► remember
                        └─ no code ─► write (retry) or give_up ─► remember

``recall`` and ``remember`` read and write memory (see ``memory/nodes.py``); without memory
(``deps.memory is None``) they do nothing and the run is exactly the memory-less one.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

from ponder.agents.deps import AgentDeps, call_model, model_step, step_params
from ponder.agents.parsing import answer_from_value, extract_code
from ponder.core.errors import ConfigError
from ponder.core.prompts import render
from ponder.core.records import Step
from ponder.memory.nodes import compose, recall, remember
from ponder.models.base import Message


class PALState(TypedDict, total=False):
    """State of one PAL run."""

    task: str
    messages: Annotated[list[Message], operator.add]
    steps: Annotated[list[Step], operator.add]
    pending: Step | None
    final_answer: str | None
    status: str | None
    last_failure: str | None
    prefix: list[Message] | None
    lessons: str | None
    memory: dict[str, Any] | None


def initial_state(task: str) -> PALState:
    """The input state for a question."""
    return {"task": task, "messages": [{"role": "user", "content": f"Question: {task}"}], "steps": [],
            "pending": None, "final_answer": None, "status": None, "last_failure": None}


def build_pal_graph(deps: AgentDeps) -> Any:
    """Build and compile the PAL graph for ``deps`` (which must carry an executor)."""
    if deps.executor is None:
        raise ConfigError("the PAL agent needs a code executor")
    executor = deps.executor
    system_text = render("pal_system")
    system: Message = {"role": "system", "content": system_text}
    params = step_params(deps, [])

    def recall_node(state: PALState) -> dict[str, Any]:
        return recall(deps.memory, state["task"], "pal", system_text, [])

    def write(state: PALState) -> dict[str, Any]:
        index = len(state["steps"])
        messages = compose(state.get("prefix") or [system], state["messages"], state.get("lessons"))
        completion, seconds = call_model(deps, messages, params)
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

    def remember_node(state: PALState) -> dict[str, Any]:
        return remember(deps.memory, deps.model, deps.params, dict(state), "pal")

    def attempts(state: PALState) -> int:
        return len([s for s in state["steps"] if s.kind in ("program", "parse_error")])

    def after_write(state: PALState) -> str:
        if state.get("pending") is not None:
            return "execute"
        return _retry_or_give_up(state)

    def after_execute(state: PALState) -> str:
        return "remember" if state.get("status") else _retry_or_give_up(state)

    def _retry_or_give_up(state: PALState) -> str:
        return "write" if attempts(state) <= deps.pal_retries and attempts(state) < deps.max_steps else "give_up"

    graph = StateGraph(PALState)
    graph.add_node("recall", recall_node)
    graph.add_node("write", write)
    graph.add_node("execute", execute)
    graph.add_node("give_up", give_up)
    graph.add_node("remember", remember_node)
    graph.add_edge(START, "recall")
    graph.add_edge("recall", "write")
    graph.add_conditional_edges("write", after_write, ["execute", "write", "give_up"])
    graph.add_conditional_edges("execute", after_execute, ["write", "give_up", "remember"])
    graph.add_edge("give_up", "remember")
    graph.add_edge("remember", END)
    return graph.compile(name="pal")
