"""ReAct over the server's native function calling: tool definitions out, ``tool_calls`` back.

Used when the run's :attr:`~ponder.agents.context.AgentContext.tool_protocol` is ``native`` (the backend has
``capabilities.tool_calls``; :func:`~ponder.agents.runner.make_context` decides). One step is one model call with
the tools' JSON-Schema definitions and ``tool_choice="auto"``:

* a reply with tool calls runs the **first** call and records it as an ``action`` step with ``tool_call_id`` (its
  :meth:`~ponder.core.records.Step.to_messages` gives the assistant message with the call and the ``tool`` message
  with the result). When the model made several calls in one reply, only the first runs, and its observation
  says so (the prompt asks for one call at a time): one step stays one model call, and the conversation holds
  exactly the calls that were answered.
* arguments that are not a JSON object, and unknown tools, are the model's fault: the observation says what is
  wrong.
* a reply without tool calls is the final answer: its text, or what follows a ``Final Answer:`` line when it has
  one. An empty reply gets a reminder (a format failure, counted like the text protocol's).
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from ponder.agents.context import AgentContext, model_step
from ponder.agents.kernel import call_model
from ponder.agents.state import ReActState
from ponder.core.prompts import render
from ponder.models.base import ToolCall
from ponder.tools.base import ToolBox, ToolResult

_FINAL = re.compile(r"^\s*Final Answer:\s*(.*)", re.MULTILINE | re.DOTALL)


@functools.lru_cache(maxsize=64)
def native_system_prompt(names: tuple[str, ...]) -> str:
    """The system prompt of a native run (the tools themselves go to the server as definitions)."""
    return render("react_native_system", tool_names=", ".join(names) or "none")


def final_answer(text: str) -> str:
    """The final answer in a reply without tool calls: what follows ``Final Answer:``, else the whole text."""
    found = _FINAL.search(text)
    return (found.group(1) if found else text).strip()


def run_tool_call(tools: ToolBox, call: ToolCall) -> ToolResult:
    """Run one native tool call; arguments that are not a JSON object become an error observation."""
    try:
        arguments = json.loads(call.arguments or "{}")
    except (ValueError, RecursionError) as exc:
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else "too deeply nested or too large"
        arguments, problem = None, f"not valid JSON ({why})"
    else:
        problem = "" if isinstance(arguments, dict) else f"a JSON {type(arguments).__name__}, not an object"
    if arguments is None or problem:
        return ToolResult(f"Error: the arguments of {call.name} are {problem}; call it again with a JSON object "
                          "of its arguments.", False, 0.0)
    return tools.call(call.name, json.dumps(arguments), call_id=call.id)


def native_step(state: ReActState, ctx: AgentContext) -> dict[str, Any]:
    """One native ReAct step: a model call with tool definitions; a tool call run here, or the final answer."""
    call = call_model(state, ctx, state["messages"], (), params=ctx.native_params())
    completion, seconds, index = call.completion, call.seconds, len(state["steps"])
    thought = completion.text.strip()
    if completion.tool_calls:
        first = completion.tool_calls[0]
        result = run_tool_call(ctx.tools, first)
        observation = result.observation
        if len(completion.tool_calls) > 1:
            observation += (f"\n(Only this first of your {len(completion.tool_calls)} tool calls was run: "
                            "call one tool at a time.)")
        acted = model_step(index, "action", completion, seconds, thought=thought, action=first.name,
                           action_input=first.arguments, observation=observation, tool_seconds=result.seconds,
                           tool_call_id=first.id)
        return {"steps": [acted], "messages": acted.to_messages(), "parse_failures": 0, **call.update()}
    if thought:
        done = model_step(index, "final", completion, seconds)
        return {"steps": [done], "messages": done.to_messages(), "final_answer": final_answer(thought),
                "status": "solved", **call.update()}
    reminder = render("react_native_reminder", tool_names=", ".join(ctx.tools.names()) or "none")
    failed = model_step(index, "parse_error", completion, seconds, observation=reminder)
    return {"steps": [failed], "messages": failed.to_messages(),
            "parse_failures": state.get("parse_failures", 0) + 1, **call.update()}
