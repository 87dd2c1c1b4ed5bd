"""The ReAct graph: Thought / Action / Action Input / Observation, as text small local models can follow.

START → recall → agent ─┬─ final answer ───────────────────────────► remember → END
                        ├─ action ─► tools ─┬─► agent
                        │                   └─ step cap ─► max_steps ─► remember
                        ├─ malformed ─► agent (with a format reminder), or give_up ─► remember
                        └─ step cap ─► max_steps ─► remember

``recall`` and ``remember`` read and write memory (see ``memory/nodes.py``); without memory
(``deps.memory is None``) they do nothing and the run is exactly the memory-less one.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

from ponder.agents.deps import AgentDeps, call_model, model_step, step_params
from ponder.agents.parsing import parse_react
from ponder.core.prompts import load_json_prompt, render
from ponder.core.records import Step
from ponder.memory.nodes import compose, recall, remember
from ponder.models.base import Message

#: The model must never write its own observation.
REACT_STOP = ["\nObservation:", "Observation:"]


class ReActState(TypedDict, total=False):
    """State of one ReAct run."""

    task: str
    messages: Annotated[list[Message], operator.add]
    steps: Annotated[list[Step], operator.add]
    pending: Step | None
    final_answer: str | None
    status: str | None
    parse_failures: int
    prefix: list[Message] | None
    lessons: str | None
    memory: dict[str, Any] | None


def system_prompt(deps: AgentDeps) -> str:
    """The system prompt listing the agent's tools."""
    return render("react_system", tools=deps.tools.describe(), tool_names=", ".join(deps.tools.names()))


def example_messages(deps: AgentDeps) -> list[Message]:
    """Few-shot turns (``prompts/react_examples.json``) whose tools this agent has."""
    available = set(deps.tools.names())
    out: list[Message] = []
    for example in load_json_prompt("react_examples")["examples"]:
        if set(example["tools"]) <= available:
            out.extend(example["messages"])
    return out


def initial_state(task: str) -> ReActState:
    """The input state for a question."""
    return {"task": task, "messages": [{"role": "user", "content": f"Question: {task}"}], "steps": [],
            "pending": None, "final_answer": None, "status": None, "parse_failures": 0}


def build_react_graph(deps: AgentDeps) -> Any:
    """Build and compile the ReAct graph for ``deps``."""
    system, examples = system_prompt(deps), example_messages(deps)
    prefix: list[Message] = [{"role": "system", "content": system}, *examples]
    names = deps.tools.names()
    params = step_params(deps, REACT_STOP)

    def recall_node(state: ReActState) -> dict[str, Any]:
        return recall(deps.memory, state["task"], "react", system, examples)

    def agent(state: ReActState) -> dict[str, Any]:
        index = len(state["steps"])
        messages = compose(state.get("prefix") or prefix, state["messages"], state.get("lessons"))
        completion, seconds = call_model(deps, messages, params)
        parsed = parse_react(completion.text, names)
        if parsed.kind == "final":
            step = model_step(index, "final", completion, seconds, thought=parsed.thought)
            return {"steps": [step], "messages": step.to_messages(), "final_answer": parsed.final_answer,
                    "status": "solved"}
        if parsed.kind == "action":
            step = model_step(index, "action", completion, seconds, thought=parsed.thought,
                              action=parsed.action, action_input=parsed.action_input)
            return {"pending": step}
        problem = parsed.problem or "unreadable reply."
        if completion.finish_reason == "length":
            problem += " The reply was cut off at the token limit: be brief."
        reminder = render("react_format_reminder", problem=problem, tool_names=", ".join(names))
        step = model_step(index, "parse_error", completion, seconds, thought=parsed.thought,
                          action=parsed.action, observation=reminder)
        return {"steps": [step], "messages": step.to_messages(),
                "parse_failures": state.get("parse_failures", 0) + 1}

    def tools(state: ReActState) -> dict[str, Any]:
        pending = state["pending"]
        assert pending is not None and pending.action is not None
        result = deps.tools.call(pending.action, pending.action_input or "")
        step = pending.model_copy(update={"observation": result.observation, "tool_seconds": result.seconds})
        return {"steps": [step], "messages": step.to_messages(), "pending": None, "parse_failures": 0}

    def max_steps(state: ReActState) -> dict[str, Any]:
        return {"status": "max_steps"}

    def give_up(state: ReActState) -> dict[str, Any]:
        return {"status": "parse_error"}

    def remember_node(state: ReActState) -> dict[str, Any]:
        return remember(deps.memory, deps.model, deps.params, dict(state), "react")

    def after_agent(state: ReActState) -> str:
        if state.get("status"):
            return "remember"
        if state.get("pending") is not None:
            return "tools"
        if state.get("parse_failures", 0) >= deps.max_parse_failures:
            return "give_up"
        return _continue_or_stop(state)

    def _continue_or_stop(state: ReActState) -> str:
        return "max_steps" if len(state["steps"]) >= deps.max_steps else "agent"

    graph = StateGraph(ReActState)
    graph.add_node("recall", recall_node)
    graph.add_node("agent", agent)
    graph.add_node("tools", tools)
    graph.add_node("max_steps", max_steps)
    graph.add_node("give_up", give_up)
    graph.add_node("remember", remember_node)
    graph.add_edge(START, "recall")
    graph.add_edge("recall", "agent")
    graph.add_conditional_edges("agent", after_agent, ["tools", "agent", "give_up", "max_steps", "remember"])
    graph.add_conditional_edges("tools", _continue_or_stop, ["agent", "max_steps"])
    graph.add_edge("max_steps", "remember")
    graph.add_edge("give_up", "remember")
    graph.add_edge("remember", END)
    return graph.compile(name="react")
