"""The PAL graph: the model writes ``solution()``, an out-of-process executor runs it.

START → recall → write ─┬─ code ─► execute ─┬─ answer ───────────────► remember → END
                        │                   └─ failed ─► write (retry), or max_steps ─► remember
                        └─ no code ─► write (retry), or give_up ─► remember

The skeleton (``recall``, ``max_steps``, ``give_up``, ``remember``) comes from :mod:`ponder.agents.kernel`; the
graph is compiled once (:func:`build_pal_graph`) and each run passes an
:class:`~ponder.agents.context.AgentContext` whose ``executor`` runs the programs.
"""

from __future__ import annotations

import functools
from typing import Any

from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from ponder.agents.context import AgentContext, model_step
from ponder.agents.kernel import GIVE_UP, MAX_STEPS, REMEMBER, AgentParts, agent_skeleton, call_model
from ponder.agents.parsing import answer_from_value, extract_code
from ponder.agents.state import PALState
from ponder.core.errors import ConfigError
from ponder.core.prompts import render
from ponder.models.base import Message


@functools.cache
def _system() -> str:
    return render("pal_system")


def pal_prefix(ctx: AgentContext) -> tuple[str, list[Message]]:
    """The system prompt (no few-shot turns); refuses a context without an executor before any model call."""
    if ctx.executor is None:
        raise ConfigError("the PAL agent needs a code executor")
    return _system(), []


def write(state: PALState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """One model call: a program to run, or a retry prompt when the reply holds no code."""
    call = call_model(state, runtime.context, state["messages"], ())
    completion, seconds, index = call.completion, call.seconds, len(state["steps"])
    code = extract_code(completion.text)
    if code is None:
        obs = render("pal_retry", problem="no Python code block was found.")
        step = model_step(index, "parse_error", completion, seconds, observation=obs)
        return {"steps": [step], "messages": step.to_messages(), **call.update()}
    step = model_step(index, "program", completion, seconds, action="python", action_input=code)
    return {"pending": step, **call.update()}


def execute(state: PALState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Run the pending program; its answer ends the run, its failure goes back to the model."""
    pending, executor = state["pending"], runtime.context.executor
    assert pending is not None and executor is not None
    result = executor.run(f"{pending.action_input}\n\nsolution()")
    answer = answer_from_value(result.value, result.stdout) if result.ok else None
    if answer is not None:
        step = pending.model_copy(update={"observation": answer, "tool_seconds": result.duration})
        return {"steps": [step], "final_answer": answer, "status": "solved", "pending": None}
    problem = result.summary() if not result.ok else "solution() returned None and printed nothing."
    step = pending.model_copy(update={"observation": render("pal_retry", problem=problem),
                                      "tool_seconds": result.duration})
    return {"steps": [step], "messages": step.to_messages(), "pending": None}


def retry_or_stop(state: PALState, runtime: Runtime[AgentContext]) -> str:
    """Another attempt while retries and steps are left; else ``give_up`` (no code) or ``max_steps`` (failed)."""
    attempts, limits = len(state["steps"]), runtime.context.limits
    if attempts <= limits.pal_retries and attempts < limits.max_steps:
        return "write"
    return GIVE_UP if state["steps"][-1].kind == "parse_error" else MAX_STEPS


def after_write(state: PALState, runtime: Runtime[AgentContext]) -> str:
    """``execute`` a program, or retry."""
    return "execute" if state.get("pending") is not None else retry_or_stop(state, runtime)


def after_execute(state: PALState, runtime: Runtime[AgentContext]) -> str:
    """``remember`` an answer, or retry."""
    return REMEMBER if state.get("status") else retry_or_stop(state, runtime)


@functools.cache
def build_pal_graph() -> CompiledStateGraph:
    """The PAL graph, compiled once per process (each run passes its :class:`AgentContext`)."""
    return agent_skeleton(AgentParts(
        name="pal", state=PALState, context=AgentContext, prefix=pal_prefix, entry="write",
        nodes={"write": write, "execute": execute},
        routes={"write": (after_write, ["execute", "write", "give_up"]),
                "execute": (after_execute, ["write", "max_steps", "remember"])}))
