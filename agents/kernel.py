"""The agent kernel: the skeleton every agent graph shares, its router and the budgeted model call.

    START → recall → step ─┬─ finished ─────────────────────► remember → END
                     ▲     ├─ parse-failure cap ─► give_up ─► remember
                     │     ├─ step cap ─► max_steps ────────► remember
                     └─────┴─ otherwise: the next step

One agent step is one graph task (as a smolagents step is think + act): the ``step`` node calls the model, parses
the reply and, when the reply asks for one, runs the tool call, the ``env.step`` or the program, and returns the
finished :class:`~ponder.core.records.Step`. LangGraph's per-task machinery then runs once per step, not twice.

An agent supplies :class:`AgentParts`: its state and context types, its prompt prefix, its step and (when the
default :func:`after_step` does not fit) its router; :func:`agent_skeleton` adds ``recall`` (the prompt prefix and
memory), ``max_steps``, ``give_up`` and ``remember`` and compiles the graph. The ``step`` node returns a LangGraph
``Command`` (its update and the router's choice on the updated state) rather than leaving the choice to a
conditional edge, which would copy the state once more per step. Graphs are compiled once per process
(the builders are cached); each run passes its dependencies as LangGraph's runtime context
(:class:`~ponder.agents.context.AgentContext`), read by the nodes as ``runtime.context``. Without memory
(``context.memory is None``) ``recall`` only sets the prompt prefix and ``remember`` does nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command

from ponder.agents.budget import fit_prompt
from ponder.agents.context import AgentContext
from ponder.agents.state import AgentState
from ponder.agents.tracing import traced_step
from ponder.core.hashing import messages_sha256
from ponder.core.spans import step_span
from ponder.memory.nodes import recall, remember
from ponder.models.base import Completion, GenerationParams, Message

if TYPE_CHECKING:
    from ponder.memory.context import MemoryContext

RECALL, STEP, REMEMBER, MAX_STEPS, GIVE_UP = "recall", "step", "remember", "max_steps", "give_up"
#: Where a step may go next.
STEP_TARGETS = (STEP, MAX_STEPS, GIVE_UP, REMEMBER)

#: A node: ``(state, runtime) -> state update``.
Node = Callable[..., dict[str, Any]]
#: A router: ``(state, runtime) -> next node``.
Router = Callable[..., str]
#: The system prompt and few-shot turns of a run, from its context.
PrefixFn = Callable[[Any], tuple[str, list[Message]]]


def step_cap_reached(state: AgentState, runtime: Runtime[AgentContext]) -> bool:
    """Whether the run has used all its model calls."""
    return len(state["steps"]) >= runtime.context.limits.max_steps


def parse_cap_reached(state: AgentState, runtime: Runtime[AgentContext]) -> bool:
    """Whether the malformed replies in a row reached the cap."""
    return state.get("parse_failures", 0) >= runtime.context.limits.max_parse_failures


def after_step(state: AgentState, runtime: Runtime[AgentContext]) -> str:
    """After a step: ``remember`` when the run finished, else a cap (parse failures first) or the next ``step``."""
    if state.get("status"):
        return REMEMBER
    if parse_cap_reached(state, runtime):
        return GIVE_UP
    return MAX_STEPS if step_cap_reached(state, runtime) else STEP


@dataclass(frozen=True)
class AgentParts:
    """What an agent adds to the skeleton.

    Attributes:
        name: The graph's name (also the agent name memory stores experiences under).
        state: The state type (an :class:`~ponder.agents.state.AgentState`).
        context: The runtime context type (an :class:`~ponder.agents.context.AgentContext`).
        prefix: The system prompt text and few-shot turns for a context (cache it: it runs once per run).
        step: One agent step: the model call, the parsed reply and the action it asks for; its update appends
            the finished step (and sets ``status`` when the run is over).
        route: Where the run goes after a step: one of :data:`STEP_TARGETS`; it sees the state with the step's
            update applied.
    """

    name: str
    state: type
    context: type
    prefix: PrefixFn
    step: Node
    route: Router = after_step


def agent_skeleton(parts: AgentParts) -> CompiledStateGraph:
    """Wire ``parts`` into START → recall → step ⟲ → remember → END (with ``max_steps`` and ``give_up``); compile."""
    graph = StateGraph(parts.state, context_schema=parts.context)
    graph.add_node(RECALL, _recall_node(parts))
    graph.add_node(STEP, _routed(parts.step, parts.route), destinations=STEP_TARGETS)
    graph.add_node(MAX_STEPS, max_steps)
    graph.add_node(GIVE_UP, give_up)
    graph.add_node(REMEMBER, _remember_node(parts.name))
    graph.add_edge(START, RECALL)
    graph.add_edge(RECALL, STEP)
    graph.add_edge(MAX_STEPS, REMEMBER)
    graph.add_edge(GIVE_UP, REMEMBER)
    graph.add_edge(REMEMBER, END)
    return graph.compile(name=parts.name)


def _routed(node: Node, router: Router) -> Node:
    """``node`` returning a :class:`Command`: its update and the node ``router`` picks on the updated state.

    Routing inside the node saves LangGraph's conditional-edge pass (a copy of the state with the writes applied).
    """

    def step(state: Any, runtime: Runtime[AgentContext]) -> Command:
        with step_span(len(state["steps"]) + 1) as current:
            update = node(state, runtime)
            traced_step(current, update.get("steps"))
        view = {**state, **update}
        if "steps" in update:
            view["steps"] = [*state["steps"], *update["steps"]]
        return Command(update=update, goto=router(view, runtime))

    return step


def _recall_node(parts: AgentParts) -> Node:
    def recall_node(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
        ctx = runtime.context
        return {"memory": recalled_memory(parts, ctx, ctx.memory, state["task"])}

    return recall_node


def recalled_memory(parts: AgentParts, ctx: AgentContext, memory: MemoryContext | None,
                    task: str) -> dict[str, Any]:
    """The memory sub-state a run starts with: the prompt prefix, what memory recalled, and the prompt's facts.

    Shared by the kernel's ``recall`` node and the search stepper (which recalls from the strategy's memory).
    """
    system, examples = parts.prefix(ctx)
    prefix: list[Message] = [{"role": "system", "content": system}, *examples]
    recalled = {"prefix": prefix, **recall(memory, task, parts.name, system, examples)}
    return {**recalled, "prompt": prompt_facts(recalled, ctx.tools.names())}


def prompt_facts(memory: dict[str, Any], tools: list[str]) -> dict[str, Any]:
    """What a trajectory records of its prompt (``metadata["tools"]``, ``metadata["prompt_sha256"]``).

    The fingerprint covers the prefix the run sent (system prompt, few-shot turns, recalled insights and
    experiences) and Reflexion's lessons when there were any, so an export that rebuilds the prompt from the
    prompt files and ``tools`` can tell when the run saw something else.
    """
    sent: list[Message] = list(memory["prefix"])
    if memory.get("lessons"):
        sent.append({"role": "user", "content": memory["lessons"]})
    return {"tools": list(tools), "prompt_sha256": messages_sha256(sent)}


def _remember_node(agent: str) -> Node:
    def remember_node(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
        ctx = runtime.context
        update = remember(ctx.memory, ctx.model, ctx.params, state, agent)
        return {"memory": {**state["memory"], **update}} if update else {}

    return remember_node


def max_steps(state: AgentState) -> dict[str, Any]:
    """The step cap was reached."""
    return {"status": "max_steps"}


def give_up(state: AgentState) -> dict[str, Any]:
    """Too many malformed replies in a row."""
    return {"status": "parse_error"}


@dataclass(frozen=True)
class ModelCall:
    """One budgeted model call: the completion, its seconds and the observations elided from its prompt."""

    completion: Completion
    seconds: float
    elided: int = 0

    def update(self) -> dict[str, Any]:
        """The state update recording the elision (empty when nothing was elided; the driver keeps the most)."""
        return {"elided_observations": self.elided} if self.elided else {}


def call_model(state: AgentState, ctx: AgentContext, history: list[Message], stop: tuple[str, ...],
               grammar: str | None = None, params: GenerationParams | None = None) -> ModelCall:
    """Call the model on the prompt prefix and ``history``, fitted into its context window (one completion).

    ``grammar`` constrains this call only (default: the run's grammar, if any; see
    :meth:`~ponder.agents.context.AgentContext.step_params`); ``params`` replaces the step parameters altogether
    (native tool calling: :meth:`~ponder.agents.context.AgentContext.native_params`).
    """
    memory = state["memory"]
    params = params or ctx.step_params(stop, grammar)
    fitted = fit_prompt(ctx.model, memory["prefix"], history, memory.get("lessons"), params)
    start = time.perf_counter()
    completion = ctx.model.generate(fitted.messages, fitted.params)[0]
    return ModelCall(completion, time.perf_counter() - start, fitted.elided)
