"""The ReAct graph: Thought / Action / Action Input / Observation, as text small local models can follow.

START → recall → step ─┬─ final answer ───────────────────► remember → END
                 ▲     ├─ parse-failure cap ─► give_up ───► remember
                 │     ├─ step cap ─► max_steps ──────────► remember
                 └─────┴─ otherwise (the tool's observation or a format reminder): the next step

One ``step`` is a model call, its reply parsed and, for an action, the tool call. The skeleton (``recall``, the caps,
``remember``) comes from :mod:`ponder.agents.kernel`; the graph is compiled once (:func:`build_react_graph`) and each
run passes an :class:`~ponder.agents.context.AgentContext`. With native tool calling (the context's
``tool_protocol``) the step is :func:`~ponder.agents.react_native.native_step` and the prompt has no text format.
"""

from __future__ import annotations

import functools
from typing import Any

from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from ponder.agents.context import AgentContext, model_step
from ponder.agents.kernel import AgentParts, agent_skeleton, call_model
from ponder.agents.parsing import parse_react
from ponder.agents.react_native import native_step, native_system_prompt
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
    """The system prompt and few-shot turns of a run (cached per tool set; native runs have no examples)."""
    if ctx.tool_protocol == "native":
        return native_system_prompt(tuple(ctx.tools.names())), []
    return system_prompt(ctx.tools), example_messages(ctx.tools)


def step(state: ReActState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """One ReAct step: a model call parsed into a final answer, a tool call (run here) or a format reminder."""
    ctx = runtime.context
    if ctx.tool_protocol == "native":
        return native_step(state, ctx)
    call = call_model(state, ctx, state["messages"], REACT_STOP)
    completion, seconds, index = call.completion, call.seconds, len(state["steps"])
    parsed = parse_react(completion.text, ctx.tools.names())
    if parsed.kind == "final":
        done = model_step(index, "final", completion, seconds, thought=parsed.thought)
        return {"steps": [done], "messages": done.to_messages(), "final_answer": parsed.final_answer,
                "status": "solved", **call.update()}
    if parsed.kind == "action":
        assert parsed.action is not None
        result = ctx.tools.call(parsed.action, parsed.action_input or "")
        acted = model_step(index, "action", completion, seconds, thought=parsed.thought, action=parsed.action,
                           action_input=parsed.action_input, observation=result.observation,
                           tool_seconds=result.seconds)
        return {"steps": [acted], "messages": acted.to_messages(), "parse_failures": 0, **call.update()}
    problem = parsed.problem or "unreadable reply."
    if completion.finish_reason == "length":
        problem += " The reply was cut off at the token limit: be brief."
    reminder = render("react_format_reminder", problem=problem, tool_names=", ".join(ctx.tools.names()))
    failed = model_step(index, "parse_error", completion, seconds, thought=parsed.thought,
                        action=parsed.action, observation=reminder)
    return {"steps": [failed], "messages": failed.to_messages(),
            "parse_failures": state.get("parse_failures", 0) + 1, **call.update()}


#: What ReAct adds to the kernel (the search stepper runs these parts one step at a time).
REACT_PARTS = AgentParts(name="react", state=ReActState, context=AgentContext, prefix=react_prefix, step=step)


@functools.cache
def build_react_graph() -> CompiledStateGraph:
    """The ReAct graph, compiled once per process (each run passes its :class:`AgentContext`)."""
    return agent_skeleton(REACT_PARTS)
