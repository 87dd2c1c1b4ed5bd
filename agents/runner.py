"""``run_agent``: run one task through the ReAct or PAL graph and record its trajectory."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langgraph.graph.state import CompiledStateGraph

from ponder.agents.context import AgentContext, Limits, ToolCalling
from ponder.agents.driver import TRAJECTORY_FILE, drive
from ponder.agents.grammar import StepGrammar, pal_grammar, react_grammar_for, wants_grammar
from ponder.agents.state import initial_state as base_state
from ponder.agents.structured import OutputSchema, apply_output_schema, cached_output_schema
from ponder.agents.tracing import traced_run
from ponder.core.errors import ConfigError
from ponder.core.io import append_jsonl
from ponder.core.records import Step, Trajectory
from ponder.core.settings import Settings, load_settings
from ponder.core.spans import agent_span
from ponder.core.tracing import current_trace_id
from ponder.core.types import AgentName, ToolProtocol, choices
from ponder.memory.context import MemoryContext
from ponder.models.base import GenerationParams, ModelBackend
from ponder.tools.base import Tool, ToolBox
from ponder.tools.executor import CodeExecutor

AGENTS = choices(AgentName)
logger = logging.getLogger("ponder.agents")


def agent_graph(agent: str) -> CompiledStateGraph:
    """The compiled graph of ``agent`` (``react`` or ``pal``), built once per process."""
    if agent == "react":
        from ponder.agents.react import build_react_graph

        return build_react_graph()
    if agent == "pal":
        from ponder.agents.pal import build_pal_graph

        return build_pal_graph()
    raise ConfigError(f"unknown agent {agent!r}; choose one of: {', '.join(AGENTS)}")


def initial_state(agent: str, task: str) -> dict[str, Any]:
    """The graph input for ``task`` (the same for both agents: the question as the first turn)."""
    return dict(base_state(task, f"Question: {task}"))


def make_context(settings: Settings, model: ModelBackend, tools: list[Tool] | None = None,
                 executor: CodeExecutor | None = None, agent: str = "react",
                 memory: MemoryContext | None = None) -> AgentContext:
    """Assemble a run's context from settings (tools and executor default sensibly; no memory by default)."""
    if tools is None:
        from ponder.tools.registry import build_tools

        tools = build_tools(settings.tools, settings) if agent == "react" else []
        if agent != "react" and settings.mcp_servers:
            _warn_unused_mcp(agent, tuple(settings.mcp_servers))
    if executor is None and agent == "pal":
        from ponder.tools.sandbox import open_sandbox

        executor = open_sandbox(settings)
    params = GenerationParams(temperature=settings.temperature, top_p=settings.top_p,
                              max_tokens=settings.max_tokens, seed=settings.seed, logprobs=settings.logprobs)
    limits = Limits(max_steps=settings.max_steps, max_parse_failures=settings.max_parse_failures,
                    pal_retries=settings.pal_retries)
    toolbox = ToolBox(tools)
    protocol = tool_protocol(settings.tool_calling, model, agent, toolbox)
    wanted = protocol == "text" and wants_grammar(settings.constrained_steps, model, agent)
    grammar = step_grammar(agent, toolbox) if wanted else None
    return AgentContext(model=model, params=params, tools=toolbox, executor=executor, memory=memory,
                        limits=limits, grammar=grammar, tool_protocol=protocol)


def tool_protocol(setting: ToolProtocol, model: ModelBackend, agent: str, tools: ToolBox) -> ToolCalling:
    """How a run calls tools (``settings.tool_calling``); the choice is logged once per model and protocol.

    ``auto``: ``native`` for a ReAct run with tools on a backend with ``capabilities.tool_calls``, else ``text``.
    ``native`` asks for it (PAL runs still have no tools to call); ``text`` never uses it.

    Raises:
        ConfigError: for ``native`` on a backend without native tool calling.
    """
    if setting == "native" and agent != "react":
        _warn_unused_native(agent)
    if setting == "text" or agent != "react":
        return "text"
    supported = model.capabilities.tool_calls
    if setting == "native" and not supported:
        raise ConfigError(f"tool_calling is native but {model.spec} has no native tool calling (serve the model "
                          "with a tool-call parser: vllm serve --enable-auto-tool-choice --tool-call-parser ..., "
                          "llama-server --jinja); use --tool-calling auto or text")
    protocol: ToolCalling = "native" if supported and (setting == "native" or tools.names()) else "text"
    _log_protocol(model.spec, protocol)
    return protocol


@functools.cache
def _warn_unused_mcp(agent: str, servers: tuple[str, ...]) -> None:
    logger.warning("MCP server(s) %s are not used: only the ReAct agent calls tools, and this run's agent is %s",
                   ", ".join(servers), agent)


@functools.cache
def _warn_unused_native(agent: str) -> None:
    logger.warning("tool_calling is native, but only the ReAct agent calls tools; this run's agent is %s", agent)


@functools.cache
def _log_protocol(spec: str, protocol: str) -> None:
    logger.info("ReAct on %s calls tools through the %s protocol", spec,
                "native function-calling" if protocol == "native" else "Thought/Action text")


def step_grammar(agent: str, tools: ToolBox) -> StepGrammar:
    """The grammar of ``agent``'s steps (``react``: with these tools; ``pal``: the program block)."""
    return react_grammar_for(tools) if agent == "react" else StepGrammar("pal", pal_grammar())


def run_agent(
    task: str,
    *,
    agent: str | None = None,
    settings: Settings | None = None,
    model: ModelBackend | None = None,
    tools: list[Tool] | None = None,
    executor: CodeExecutor | None = None,
    on_step: Callable[[Step], None] | None = None,
    out_dir: str | Path | None = None,
    write: bool = True,
    metadata: dict[str, object] | None = None,
    memory: MemoryContext | None = None,
    output_schema: OutputSchema | None = None,
) -> Trajectory:
    """Run one task and return its trajectory, appended to ``<out_dir>/trajectories.jsonl``.

    Args:
        task: The question or instruction.
        agent: ``react`` or ``pal`` (default: ``settings.agent``).
        settings: Settings (default: :func:`~ponder.core.settings.load_settings`).
        model: A backend (default: loaded from ``settings.model``, once per process).
        tools: ReAct tools (default: ``settings.tools``, fresh for this run and closed after it).
        executor: PAL code executor (default: a fresh sandbox session, ``settings.sandbox``).
        on_step: Called with each finished step as the run progresses.
        out_dir: Where to append the record (default: ``settings.out_dir``).
        write: Set ``False`` to skip writing the record.
        metadata: Extra fields stored in the record.
        memory: Reflexion / ExpeL memory (see :mod:`ponder.memory.context`); ``None`` runs without memory.
            What was retrieved and written is recorded in ``metadata["memory"]``.
        output_schema: Return the final answer as a validated object too (default: ``settings.output_schema``,
            loaded once per process): ``traj.output`` and ``metadata["output"]`` (see
            :func:`~ponder.agents.structured.apply_output_schema`).

    Raises:
        PonderError: for configuration problems or a failing backend; the record (status ``error``)
        is written before the exception propagates.
    """
    from ponder.models.affinity import model_session, session_key
    from ponder.models.llamacpp_formats import format_metadata
    from ponder.models.spec import load_model
    from ponder.models.traced import traced

    settings = settings or load_settings()
    agent = agent or settings.agent
    graph = agent_graph(agent)
    if output_schema is None and settings.output_schema:  # before the model loads: a bad file fails fast
        output_schema = cached_output_schema(settings.output_schema)
    model = traced(model or load_model(settings.model, settings))
    traj = Trajectory(task=task, agent=agent, model=model.spec, backend=model.backend_name,
                      metadata={**format_metadata(model.load_info), **(metadata or {})})
    ctx = make_context(settings, model, tools, executor, agent,
                       memory=memory.for_run(memory.run_id or traj.id) if memory is not None else None)
    if ctx.grammar is not None:
        traj.metadata["grammar"] = ctx.grammar.name
    if agent == "react":
        traj.metadata["tool_protocol"] = ctx.tool_protocol
    path = Path(out_dir or settings.out_dir) / TRAJECTORY_FILE
    if write:
        traj.metadata["trajectory_path"] = str(path)
    try:
        with model_session(session_key() or traj.id), agent_span(agent, task, model.spec) as current:
            if trace_id := current_trace_id():
                traj.metadata["trace_id"] = trace_id
            drive(graph, initial_state(agent, task), ctx, traj, on_step)
            if output_schema is not None:
                apply_output_schema(traj, ctx.model, ctx.params, output_schema)
            traced_run(current, traj)
    finally:
        _release(ctx, own_tools=tools is None, own_executor=executor is None)
        if write:
            append_jsonl(path, traj)
    return traj


def _release(ctx: AgentContext, *, own_tools: bool, own_executor: bool) -> None:
    """Close the tools and the sandbox session the run opened itself."""
    try:
        if own_executor and ctx.executor is not None:
            ctx.executor.close()
    finally:
        if own_tools:
            from ponder.tools.registry import close_tools

            close_tools(list(ctx.tools.tools.values()))
