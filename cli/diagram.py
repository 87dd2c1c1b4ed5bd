"""Mermaid diagrams of the agent graphs (``ponder graph``), snapshotted in ``docs/graphs/``."""

from __future__ import annotations


def mermaid(agent: str) -> str:
    """Return the Mermaid source of the ``react``, ``pal`` or ``self_consistency`` graph."""
    if agent == "self_consistency":
        from ponder.graphs.self_consistency.graph import SCConfig, SCDeps, build_sc_graph

        def never(task: str, index: int, wave: int) -> object:  # pragma: no cover - drawn, never run
            raise RuntimeError("diagram-only graph")

        return build_sc_graph(SCDeps(config=SCConfig(), run_sample=never)).get_graph().draw_mermaid()  # type: ignore[arg-type]
    from ponder.agents.runner import agent_graph

    return agent_graph(agent).get_graph().draw_mermaid()
