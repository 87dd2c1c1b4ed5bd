"""``Single``: one agent run, the leaf every other strategy wraps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ponder.core.types import AgentName
from ponder.graphs.strategies.base import Outcome, StrategyContext

if TYPE_CHECKING:
    from ponder.tools.base import Tool
    from ponder.tools.executor import CodeExecutor


@dataclass
class Single:
    """One run of the agent through :func:`ponder.agents.runner.run_agent`.

    Attributes:
        agent: The agent (default: the context's).
        tools: ReAct tools shared by every run of this strategy and owned by the caller (default: the
            context's factory, else ``settings.tools`` made fresh per run).
        executor: A PAL executor shared by every run, owned by the caller (default: the context's factory,
            else a fresh sandbox session per run).
    """

    agent: AgentName | None = None
    tools: list[Tool] | None = None
    executor: CodeExecutor | None = None

    def run(self, task: str, ctx: StrategyContext, label: str | None = None) -> Outcome:
        """Run the agent once; tools and executors made by the context's factories are closed afterwards."""
        from ponder.agents.runner import run_agent
        from ponder.tools.registry import close_tools

        tools = self.tools if self.tools is not None else (ctx.tools() if ctx.tools else None)
        executor = self.executor if self.executor is not None else (ctx.executor() if ctx.executor else None)
        try:
            traj = run_agent(task, agent=self.agent or ctx.agent, settings=ctx.settings, model=ctx.model, tools=tools,
                             executor=executor, on_step=ctx.on_step, out_dir=ctx.out_dir, write=ctx.write,
                             metadata=dict(ctx.metadata), memory=ctx.memory)
        finally:
            if self.tools is None and tools is not None:
                close_tools(tools)
            if self.executor is None and executor is not None:
                executor.close()
        return Outcome(kind="single", task=task, answer=traj.final_answer, status=traj.status, trajectories=[traj],
                       chosen=0, usage=traj.usage)
