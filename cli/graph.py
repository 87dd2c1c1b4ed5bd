"""``ponder graph [AGENT]``: print the Mermaid diagram of an agent graph."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from ponder.core.types import AgentName

#: The graphs ``ponder graph`` draws: the agents and self-consistency.
GraphName = Literal[AgentName, "self_consistency"]


def graph(agent: Annotated[GraphName, typer.Argument(help="An agent, or self-consistency.")] = "react") -> None:
    """Print the Mermaid diagram of an agent graph."""
    from ponder.cli.diagram import mermaid

    print(mermaid(agent), end="")
