"""``Single``: one agent run, the leaf every other strategy wraps (a question, or an env episode)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ponder.core.records import Step
from ponder.core.types import AgentName
from ponder.graphs.strategies.base import Outcome, StrategyContext

if TYPE_CHECKING:
    from ponder.tools.base import Tool
    from ponder.tools.executor import CodeExecutor


@dataclass
class Single:
    """One run of the agent through :func:`ponder.agents.runner.run_agent`, or one env episode.

    When the context has an environment factory (``ctx.env``), the run is one episode played by the env agent
    (:func:`ponder.agents.env.run_env_agent`) in a fresh environment (closed afterwards): the outcome's answer
    is ``"won"`` / ``"lost"`` (``None`` when the episode did not end), its status the trajectory's (``solved``
    only for a won episode) and ``metadata`` holds ``reward``, ``won`` and ``env_steps``.

    Attributes:
        agent: The agent (default: the context's; an env episode is always played by the env agent).
        tools: ReAct tools shared by every run of this strategy and owned by the caller (default: the
            context's factory, else ``settings.tools`` made fresh per run).
        executor: A PAL executor shared by every run, owned by the caller (default: the context's factory,
            else a fresh sandbox session per run).
    """

    agent: AgentName | None = None
    tools: list[Tool] | None = None
    executor: CodeExecutor | None = None

    def run(self, task: str, ctx: StrategyContext, label: str | None = None) -> Outcome:
        """Run the agent once (at most ``ctx.max_steps`` steps, when set).

        Tools and executors made by the context's factories are closed afterwards.
        """
        from ponder.agents.runner import run_agent
        from ponder.tools.registry import close_tools

        if ctx.env is not None:
            return play_env(task, ctx)
        tools = self.tools if self.tools is not None else (ctx.tools() if ctx.tools else None)
        executor = self.executor if self.executor is not None else (ctx.executor() if ctx.executor else None)
        settings = ctx.settings
        if ctx.max_steps is not None:
            settings = settings.model_copy(update={"max_steps": ctx.max_steps})
        try:
            traj = run_agent(task, agent=self.agent or ctx.agent, settings=settings, model=ctx.model, tools=tools,
                             executor=executor, on_step=ctx.on_step, out_dir=ctx.out_dir, write=ctx.write,
                             metadata=dict(ctx.metadata), memory=ctx.memory)
        finally:
            if self.tools is None and tools is not None:
                close_tools(tools)
            if self.executor is None and executor is not None:
                executor.close()
        return Outcome(kind="single", task=task, answer=traj.final_answer, status=traj.status, trajectories=[traj],
                       chosen=0, usage=traj.usage)


def play_env(task: str, ctx: StrategyContext) -> Outcome:
    """Play one episode of ``ctx.env()`` with the env agent (``ctx.max_steps`` steps at most); close the env.

    The trajectory is appended to ``out_dir/trajectories.jsonl`` when ``ctx.write`` (its
    ``metadata["trajectory_path"]`` says so, as for :func:`~ponder.agents.runner.run_agent`). ``ctx.on_step``
    sees every step once the episode is over.
    """
    from ponder.agents.env import TRAJECTORY_FILE, run_env_agent
    from ponder.core.io import append_jsonl

    assert ctx.env is not None
    env = ctx.env()
    try:
        run = run_env_agent(env, task, model=ctx.model, settings=ctx.settings, memory=ctx.memory, out_dir=ctx.out_dir,
                            max_steps=ctx.max_steps, metadata=dict(ctx.metadata), write=False)
    finally:
        env.close()
    traj = run.trajectory
    if ctx.write:
        path = Path(ctx.out_dir or ctx.settings.out_dir) / TRAJECTORY_FILE
        traj.metadata["trajectory_path"] = str(path)
        append_jsonl(path, traj)
    if ctx.on_step is not None:  # the env agent takes no step callback: its steps are reported after the episode
        _report_steps(traj.steps, ctx.on_step)
    return Outcome(kind="single", task=task, answer=traj.final_answer, status=traj.status, trajectories=[traj],
                   chosen=0, usage=traj.usage,
                   metadata={"reward": run.reward, "won": run.success, "env_steps": run.env_steps,
                             **({"env_error": run.error} if run.error else {})})


def _report_steps(steps: list[Step], on_step: Callable[[Step], None]) -> None:
    """Show every step to ``on_step``; a cancellation it raises (a settled vote) stops nothing that still runs."""
    from ponder.core.errors import GenerationCancelled

    for step in steps:
        try:
            on_step(step)
        except GenerationCancelled:
            continue
