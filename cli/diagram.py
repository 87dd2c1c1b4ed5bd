"""Mermaid diagrams of the agent graphs (``ponder graph``), snapshotted in ``docs/graphs/``."""

from __future__ import annotations

from ponder.agents.deps import AgentDeps
from ponder.tools.executor import ExecResult


class _NoExecutor:
    """Stands in for an executor when a graph is only drawn, never run."""

    def run(self, code: str) -> ExecResult:  # pragma: no cover - never called
        raise RuntimeError("diagram-only executor")

    def close(self) -> None:
        """Nothing to release."""


def mermaid(agent: str) -> str:
    """Return the Mermaid source of the ``react``, ``pal`` or ``self_consistency`` graph."""
    if agent == "self_consistency":
        from ponder.graphs.self_consistency.graph import SCConfig, SCDeps, build_sc_graph

        def never(task: str, index: int, wave: int) -> object:  # pragma: no cover - drawn, never run
            raise RuntimeError("diagram-only graph")

        return build_sc_graph(SCDeps(config=SCConfig(), run_sample=never)).get_graph().draw_mermaid()  # type: ignore[arg-type]
    from ponder.agents.runner import build_graph
    from ponder.models.scripted import ScriptedModel
    from ponder.tools import default_tools
    from ponder.tools.base import ToolBox

    deps = AgentDeps(model=ScriptedModel([]), tools=ToolBox(default_tools()), executor=_NoExecutor())
    return build_graph(agent, deps).get_graph().draw_mermaid()
