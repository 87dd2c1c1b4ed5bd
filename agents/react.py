"""The ReAct graph: Thought / Action / Action Input / Observation, as text small local models can follow.

START → recall → agent ─┬─ final answer ───────────────────────────► remember → END
                        ├─ action ─► tools ─┬─► agent
                        │                   └─ step cap ─► max_steps ─► remember
                        ├─ malformed ─► agent (with a format reminder), or give_up ─► remember
                        └─ step cap ─► max_steps ─► remember

The skeleton (``recall``, the caps, ``remember``) comes from :mod:`ponder.agents.kernel`; the graph is compiled
once (:func:`build_react_graph`) and each run passes an :class:`~ponder.agents.context.AgentContext`.
"""

from __future__ import annotations

import functools
from typing import Any

from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from ponder.agents.context import AgentContext, model_step
from ponder.agents.kernel import AgentParts, agent_skeleton, call_model, model_router, tool_router
from ponder.agents.parsing import parse_react
from ponder.agents.state import ReActState
from ponder.core.prompts import load_json_prompt, render
from ponder.models.base import Message
from ponder.tools.base import ToolBox

#: The model must never write its own observation.
REACT_STOP = ("\nObservation:", "Observation:")


def system_prompt(tools: ToolBox) -> str:
    """The system prompt listing the agent's tools."""
    return _system(tools.describe(), tuple(tools.names()))


@functools.lru_cache(maxsize=64)
def _system(described: str, names: tuple[str, ...]) -> str:
    return render("react_system", tools=described, tool_names=", ".join(names))


@functools.lru_cache(maxsize=64)
def _examples(names: tuple[str, ...]) -> tuple[Message, ...]:
    available = set(names)
    out: list[Message] = []
    for example in load_json_prompt("react_examples")["examples"]:
        if set(example["tools"]) <= available:
            out.extend(example["messages"])
    return tuple(out)


def example_messages(tools: ToolBox) -> list[Message]:
    """Few-shot turns (``prompts/react_examples.json``) whose tools this agent has."""
    return list(_examples(tuple(tools.names())))


def react_prefix(ctx: AgentContext) -> tuple[str, list[Message]]:
    """The system prompt and few-shot turns of a run (cached per tool set)."""
    return system_prompt(ctx.tools), example_messages(ctx.tools)


def agent(state: ReActState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """One model call, parsed into a final answer, a pending tool call or a format reminder."""
    ctx = runtime.context
    call = call_model(state, ctx, state["messages"], REACT_STOP)
    completion, seconds, index = call.completion, call.seconds, len(state["steps"])
    parsed = parse_react(completion.text, ctx.tools.names())
    if parsed.kind == "final":
        step = model_step(index, "final", completion, seconds, thought=parsed.thought)
        return {"steps": [step], "messages": step.to_messages(), "final_answer": parsed.final_answer,
                "status": "solved", **call.update()}
    if parsed.kind == "action":
        step = model_step(index, "action", completion, seconds, thought=parsed.thought,
                          action=parsed.action, action_input=parsed.action_input)
        return {"pending": step, **call.update()}
    problem = parsed.problem or "unreadable reply."
    if completion.finish_reason == "length":
        problem += " The reply was cut off at the token limit: be brief."
    reminder = render("react_format_reminder", problem=problem, tool_names=", ".join(ctx.tools.names()))
    step = model_step(index, "parse_error", completion, seconds, thought=parsed.thought,
                      action=parsed.action, observation=reminder)
    return {"steps": [step], "messages": step.to_messages(),
            "parse_failures": state.get("parse_failures", 0) + 1, **call.update()}


def tools(state: ReActState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Run the pending tool call; its observation goes back to the model."""
    pending = state["pending"]
    assert pending is not None and pending.action is not None
    result = runtime.context.tools.call(pending.action, pending.action_input or "")
    step = pending.model_copy(update={"observation": result.observation, "tool_seconds": result.seconds})
    return {"steps": [step], "messages": step.to_messages(), "pending": None, "parse_failures": 0}


@functools.cache
def build_react_graph() -> CompiledStateGraph:
    """The ReAct graph, compiled once per process (each run passes its :class:`AgentContext`)."""
    return agent_skeleton(AgentParts(
        name="react", state=ReActState, context=AgentContext, prefix=react_prefix, entry="agent",
        nodes={"agent": agent, "tools": tools},
        routes={"agent": (model_router("tools", "agent"), ["tools", "agent", "give_up", "max_steps", "remember"]),
                "tools": (tool_router("agent"), ["agent", "max_steps"])}))
