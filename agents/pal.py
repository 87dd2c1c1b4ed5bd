"""The PAL graph: the model writes ``solution()``, an out-of-process executor runs it.

START → recall → step ─┬─ the program answered ────────────────────────────► remember → END
                 ▲     ├─ retries used up: give_up (no code) or max_steps ─► remember
                 └─────┴─ no code, or the program failed: a retry prompt, the next step

One ``step`` is a model call and, when the reply holds a program, its run. The skeleton (``recall``, ``max_steps``,
``give_up``, ``remember``) comes from :mod:`ponder.agents.kernel`; the graph is compiled once (:func:`build_pal_graph`)
and each run passes an :class:`~ponder.agents.context.AgentContext` whose ``executor`` runs the programs.
"""

from __future__ import annotations

import functools
from typing import Any

from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from ponder.agents.context import AgentContext, model_step
from ponder.agents.kernel import GIVE_UP, MAX_STEPS, REMEMBER, STEP, AgentParts, agent_skeleton, call_model
from ponder.agents.parsing import answer_from_value, extract_code
from ponder.agents.state import PALState
from ponder.core.errors import ConfigError
from ponder.core.prompts import render
from ponder.models.base import Message


@functools.cache
def pal_system_prompt() -> str:
    """PAL's system prompt (``prompts/pal_system.txt``)."""
    return render("pal_system")


def pal_prefix(ctx: AgentContext) -> tuple[str, list[Message]]:
    """The system prompt (no few-shot turns); refuses a context without an executor before any model call."""
    if ctx.executor is None:
        raise ConfigError("the PAL agent needs a code executor")
    return pal_system_prompt(), []


def step(state: PALState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """One PAL step: a model call and the program it wrote, run; an answer ends the run, else a retry prompt."""
    ctx = runtime.context
    call = call_model(state, ctx, state["messages"], ())
    completion, seconds, index = call.completion, call.seconds, len(state["steps"])
    code = extract_code(completion.text)
    if code is None:
        obs = render("pal_retry", problem="no Python code block was found.")
        failed = model_step(index, "parse_error", completion, seconds, observation=obs)
        return {"steps": [failed], "messages": failed.to_messages(), **call.update()}
    assert ctx.executor is not None  # pal_prefix refused a context without one
    result = ctx.executor.run(f"{code}\n\nsolution()")
    answer = answer_from_value(result.value, result.stdout) if result.ok else None
    problem = result.summary() if not result.ok else "solution() returned None and printed nothing."
    observation = answer if answer is not None else render("pal_retry", problem=problem)
    ran = model_step(index, "program", completion, seconds, action="python", action_input=code,
                     observation=observation, tool_seconds=result.duration)
    if answer is not None:
        return {"steps": [ran], "final_answer": answer, "status": "solved", **call.update()}
    return {"steps": [ran], "messages": ran.to_messages(), **call.update()}


def after_step(state: PALState, runtime: Runtime[AgentContext]) -> str:
    """Where a run goes after a step: ``remember`` an answer, or the next step.

    Another attempt follows while retries and steps are left; then ``give_up`` (the last reply held no code) or
    ``max_steps`` (the last program failed).
    """
    if state.get("status"):
        return REMEMBER
    attempts, limits = len(state["steps"]), runtime.context.limits
    if attempts <= limits.pal_retries and attempts < limits.max_steps:
        return STEP
    return GIVE_UP if state["steps"][-1].kind == "parse_error" else MAX_STEPS


#: What PAL adds to the kernel (the search stepper runs these parts one step at a time).
PAL_PARTS = AgentParts(name="pal", state=PALState, context=AgentContext, prefix=pal_prefix, step=step,
                       route=after_step)


@functools.cache
def build_pal_graph() -> CompiledStateGraph:
    """The PAL graph, compiled once per process (each run passes its :class:`AgentContext`)."""
    return agent_skeleton(PAL_PARTS)
