"""``ponder star``: the STaR self-improvement loop (helper "star" implements it)."""

from __future__ import annotations


def star_command() -> None:
    """Run STaR rounds (being written)."""
    raise NotImplementedError("helper star")
