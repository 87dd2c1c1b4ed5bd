"""The environment protocol an agent plays (games, web pages): what ``reset`` and ``step`` return.

Environments live in :mod:`ponder.envs`; the env agent (:mod:`ponder.agents.env`) plays any object with this shape.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field


class EnvReset(BaseModel):
    """What an environment shows at the start of an episode."""

    observation: str
    admissible_actions: list[str] | None = None
    info: dict[str, Any] = Field(default_factory=dict)


class EnvStep(BaseModel):
    """What an environment answers to one action."""

    observation: str
    reward: float = 0.0
    done: bool = False
    admissible_actions: list[str] | None = None
    info: dict[str, Any] = Field(default_factory=dict)


@runtime_checkable
class Env(Protocol):
    """A text environment (a game, a web page, a tool-less task).

    Attributes:
        name: The environment's name (recorded in trajectories).
        instructions: The action format for the agent's system prompt (``""``: the agent's generic default).
        examples: The name of the agent's few-shot set for this environment (``""``: none).
    """

    name: str
    instructions: str
    examples: str

    def reset(self) -> EnvReset:
        """Start (or restart) the episode."""
        ...

    def step(self, action: str) -> EnvStep:
        """Take one action; an invalid action gets the environment's own answer, not an exception."""
        ...

    def close(self) -> None:
        """Release the game process or browser."""
        ...
