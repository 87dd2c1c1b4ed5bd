"""``run_agent``: run one task through the ReAct or PAL graph and record its trajectory."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.agents.deps import AgentDeps
from ponder.core.errors import ConfigError
from ponder.core.io import append_jsonl
from ponder.core.records import Step, Trajectory, Usage
from ponder.core.settings import Settings, load_settings
from ponder.models.base import GenerationParams, ModelBackend
from ponder.tools.base import Tool, ToolBox
from ponder.tools.executor import CodeExecutor

if TYPE_CHECKING:
    from ponder.memory.context import MemoryContext

AGENTS = ("react", "pal")
TRAJECTORY_FILE = "trajectories.jsonl"


def build_graph(agent: str, deps: AgentDeps) -> Any:
    """Return the compiled graph for ``agent`` (``react`` or ``pal``)."""
    if agent == "react":
        from ponder.agents.react import build_react_graph

        return build_react_graph(deps)
    if agent == "pal":
        from ponder.agents.pal import build_pal_graph

        return build_pal_graph(deps)
    raise ConfigError(f"unknown agent {agent!r}; choose one of: {', '.join(AGENTS)}")


def initial_state(agent: str, task: str) -> dict[str, Any]:
    """The graph input for ``task``."""
    if agent == "pal":
        from ponder.agents.pal import initial_state as pal_initial

        return dict(pal_initial(task))
    from ponder.agents.react import initial_state as react_initial

    return dict(react_initial(task))


def make_deps(settings: Settings, model: ModelBackend, tools: list[Tool] | None = None,
              executor: CodeExecutor | None = None, agent: str = "react",
              memory: MemoryContext | None = None) -> AgentDeps:
    """Assemble an agent's dependencies from settings (tools and executor default sensibly; no memory by default)."""
    if tools is None:
        from ponder.tools.registry import build_tools

        tools = build_tools(settings.tools, settings) if agent == "react" else []
    if executor is None and agent == "pal":
        from ponder.tools.sandbox import open_sandbox

        executor = open_sandbox(settings)
    params = GenerationParams(temperature=settings.temperature, top_p=settings.top_p,
                              max_tokens=settings.max_tokens, seed=settings.seed,
                              logprobs=settings.logprobs)
    return AgentDeps(model=model, params=params, tools=ToolBox(tools), executor=executor,
                     max_steps=settings.max_steps, max_parse_failures=settings.max_parse_failures,
                     pal_retries=settings.pal_retries, memory=memory)


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

    Raises:
        PonderError: for configuration problems or a failing backend; the record (status ``error``)
        is written before the exception propagates.
    """
    from ponder.models.spec import load_model

    settings = settings or load_settings()
    agent = agent or settings.agent
    if agent not in AGENTS:
        raise ConfigError(f"unknown agent {agent!r}; choose one of: {', '.join(AGENTS)}")
    model = model or load_model(settings.model, settings)
    own_executor = executor is None and agent == "pal"
    own_tools = tools is None
    traj = Trajectory(task=task, agent=agent, model=model.spec,
                      backend=str(getattr(model, "backend_name", model.spec)), metadata=dict(metadata or {}))
    deps = make_deps(settings, model, tools, executor, agent,
                     memory=memory.for_run(memory.run_id or traj.id) if memory is not None else None)
    path = Path(out_dir or settings.out_dir) / TRAJECTORY_FILE
    if write:
        traj.metadata["trajectory_path"] = str(path)
    start = time.perf_counter()
    try:
        graph = build_graph(agent, deps)
        config = {"recursion_limit": 3 * settings.max_steps + 10}
        for update in graph.stream(initial_state(agent, task), config, stream_mode="updates"):
            for node_update in update.values():
                if not node_update:
                    continue
                for step in node_update.get("steps", []):
                    traj.steps.append(step)
                    if on_step:
                        on_step(step)
                for key in ("final_answer", "status"):
                    if node_update.get(key) is not None:
                        setattr(traj, key, node_update[key])
                if node_update.get("memory"):
                    traj.metadata["memory"] = node_update["memory"]
        if traj.status == "error" and traj.final_answer is None:
            traj.error = "the graph ended without a status"
    except BaseException as exc:
        traj.status = "error"
        traj.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise
    finally:
        traj.usage = _usage(traj.steps, time.perf_counter() - start)
        if own_executor and deps.executor is not None:
            deps.executor.close()
        if own_tools:
            from ponder.tools.registry import close_tools

            close_tools(list(deps.tools.tools.values()))
        if write:
            append_jsonl(path, traj)
    return traj


def _usage(steps: list[Step], wall: float) -> Usage:
    return Usage(
        prompt_tokens=sum(s.prompt_tokens for s in steps),
        completion_tokens=sum(s.completion_tokens for s in steps),
        model_calls=len(steps),
        tool_calls=sum(1 for s in steps if s.kind in ("action", "program")),
        wall_seconds=round(wall, 4),
    )
