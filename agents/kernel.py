"""The agent kernel: the skeleton every agent graph shares, its routers and the budgeted model call.

    START → recall → <entry> … the agent's own nodes … ─┬─ finished ─────────────────► remember → END
                                                          ├─ step cap ─► max_steps ─► remember
                                                          └─ parse-failure cap ─► give_up ─► remember

An agent supplies :class:`AgentParts`: its state and context types, its prompt prefix, its nodes and where each
goes next (usually through the routers below); :func:`agent_skeleton` adds ``recall`` (the prompt prefix and
memory), ``max_steps``, ``give_up`` and ``remember`` and compiles the graph. A routed node returns a LangGraph
``Command`` (its update and the router's choice on the updated state) rather than leaving the choice to a
conditional edge, which would copy the state once more per step. Graphs are compiled once per process
(the builders are cached); each run passes its dependencies as LangGraph's runtime context
(:class:`~ponder.agents.context.AgentContext`), read by the nodes as ``runtime.context``. Without memory
(``context.memory is None``) ``recall`` only sets the prompt prefix and ``remember`` does nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command

from ponder.agents.budget import fit_prompt
from ponder.agents.context import AgentContext
from ponder.agents.state import AgentState
from ponder.memory.nodes import recall, remember
from ponder.models.base import Completion, Message

RECALL, REMEMBER, MAX_STEPS, GIVE_UP = "recall", "remember", "max_steps", "give_up"

#: A node: ``(state, runtime) -> state update``.
Node = Callable[..., dict[str, Any]]
#: A router: ``(state, runtime) -> next node``.
Router = Callable[..., str]
#: The system prompt and few-shot turns of a run, from its context.
PrefixFn = Callable[[Any], tuple[str, list[Message]]]


@dataclass(frozen=True)
class AgentParts:
    """What an agent adds to the skeleton.

    Attributes:
        name: The graph's name (also the agent name memory stores experiences under).
        state: The state type (an :class:`~ponder.agents.state.AgentState`).
        context: The runtime context type (an :class:`~ponder.agents.context.AgentContext`).
        prefix: The system prompt text and few-shot turns for a context (cache it: it runs once per run).
        entry: The node after ``recall`` (the one that calls the model).
        nodes: The agent's nodes by name.
        routes: Where a node goes next: node → (router, the nodes it may return); the router sees the state with
            the node's update applied.
        edges: Plain edges: source node → target node.
    """

    name: str
    state: type
    context: type
    prefix: PrefixFn
    entry: str
    nodes: Mapping[str, Node]
    routes: Mapping[str, tuple[Router, Sequence[str]]] = field(default_factory=dict)
    edges: Mapping[str, str] = field(default_factory=dict)


def agent_skeleton(parts: AgentParts) -> CompiledStateGraph:
    """Wire ``parts`` into START → recall → … → remember → END (with ``max_steps`` and ``give_up``) and compile."""
    graph = StateGraph(parts.state, context_schema=parts.context)
    graph.add_node(RECALL, _recall_node(parts))
    for name, node in parts.nodes.items():
        if name in parts.routes:
            router, targets = parts.routes[name]
            graph.add_node(name, _routed(name, node, router), destinations=tuple(targets))
        else:
            graph.add_node(name, node)
    graph.add_node(MAX_STEPS, max_steps)
    graph.add_node(GIVE_UP, give_up)
    graph.add_node(REMEMBER, _remember_node(parts.name))
    graph.add_edge(START, RECALL)
    graph.add_edge(RECALL, parts.entry)
    for source, target in parts.edges.items():
        graph.add_edge(source, target)
    graph.add_edge(MAX_STEPS, REMEMBER)
    graph.add_edge(GIVE_UP, REMEMBER)
    graph.add_edge(REMEMBER, END)
    return graph.compile(name=parts.name)


def _routed(name: str, node: Node, router: Router) -> Node:
    """``node`` returning a :class:`Command`: its update and the node ``router`` picks on the updated state.

    Routing inside the node saves LangGraph's conditional-edge pass (a copy of the state with the writes applied).
    """

    def routed(state: Any, runtime: Runtime[AgentContext]) -> Command:
        update = node(state, runtime)
        view = {**state, **update}
        if "steps" in update:
            view["steps"] = [*state["steps"], *update["steps"]]
        return Command(update=update, goto=router(view, runtime))

    routed.__name__ = routed.__qualname__ = name
    return routed


def _recall_node(parts: AgentParts) -> Node:
    def recall_node(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
        ctx = runtime.context
        system, examples = parts.prefix(ctx)
        prefix: list[Message] = [{"role": "system", "content": system}, *examples]
        return {"memory": {"prefix": prefix, **recall(ctx.memory, state["task"], parts.name, system, examples)}}

    return recall_node


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


def step_cap_reached(state: AgentState, runtime: Runtime[AgentContext]) -> bool:
    """Whether the run has used all its model calls."""
    return len(state["steps"]) >= runtime.context.limits.max_steps


def parse_cap_reached(state: AgentState, runtime: Runtime[AgentContext]) -> bool:
    """Whether the malformed replies in a row reached the cap."""
    return state.get("parse_failures", 0) >= runtime.context.limits.max_parse_failures


def model_router(tool: str, entry: str) -> Router:
    """After a model call: ``remember`` when finished, ``tool`` when a call is pending, else a cap or ``entry``."""

    def after_model(state: AgentState, runtime: Runtime[AgentContext]) -> str:
        if state.get("status"):
            return REMEMBER
        if state.get("pending") is not None:
            return tool
        if parse_cap_reached(state, runtime):
            return GIVE_UP
        return MAX_STEPS if step_cap_reached(state, runtime) else entry

    return after_model


def tool_router(entry: str) -> Router:
    """After a tool call: ``max_steps`` at the step cap, else ``entry``."""

    def after_tool(state: AgentState, runtime: Runtime[AgentContext]) -> str:
        return MAX_STEPS if step_cap_reached(state, runtime) else entry

    return after_tool


@dataclass(frozen=True)
class ModelCall:
    """One budgeted model call: the completion, its seconds and the observations elided from its prompt."""

    completion: Completion
    seconds: float
    elided: int = 0

    def update(self) -> dict[str, Any]:
        """The state update recording the elision (empty when nothing was elided; the driver keeps the most)."""
        return {"elided_observations": self.elided} if self.elided else {}


def call_model(state: AgentState, ctx: AgentContext, history: list[Message], stop: tuple[str, ...]) -> ModelCall:
    """Call the model on the prompt prefix and ``history``, fitted into its context window (one completion)."""
    memory = state["memory"]
    fitted = fit_prompt(ctx.model, memory["prefix"], history, memory.get("lessons"), ctx.step_params(stop))
    start = time.perf_counter()
    completion = ctx.model.generate(fitted.messages, fitted.params)[0]
    return ModelCall(completion, time.perf_counter() - start, fitted.elided)
