"""The environment protocol an agent plays (games, web pages): what ``reset`` and ``step`` return.

Environments live in :mod:`ponder.envs`; the env agent (:mod:`ponder.agents.env`) plays any object with this shape.
"""

from __future__ import annotations

from collections.abc import Sequence
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


@runtime_checkable
class ForkableEnv(Env, Protocol):
    """An environment that can branch: ``fork()`` gives an independent copy in the same state.

    Tree search (``lats``, ``beam``) expands one state into several children; each child acts in its own fork.
    A fork answers the same actions with the same observations as the original would (tested per environment).
    """

    def fork(self) -> Env:
        """A new, independent environment in this one's current state (the caller closes it)."""
        ...


def replay(env: Env, actions: Sequence[str]) -> tuple[EnvReset, list[EnvStep]]:
    """Reset ``env`` and send ``actions`` in order: the reset and every step's answer.

    This is how every ponder environment forks (a deterministic game replays to the same state) and how a
    search reaches a node from its action prefix.
    """
    first = env.reset()
    return first, [env.step(action) for action in actions]


class ReplayFork:
    """Mixin: ``fork()`` by replaying the actions taken since the last ``reset`` on a fresh instance.

    A subclass implements :meth:`fresh` (a new, unstarted environment with the same constructor arguments) and
    calls :meth:`_forget` in ``reset`` and :meth:`_remember` in ``step``.
    """

    _actions: list[str]

    def fresh(self) -> Env:
        """A new, unstarted environment like this one."""
        raise NotImplementedError

    def _forget(self) -> None:
        self._actions = []

    def _remember(self, action: str) -> None:
        vars(self).setdefault("_actions", []).append(action)

    def actions(self) -> list[str]:
        """The actions sent since the last ``reset``."""
        return list(vars(self).get("_actions", []))

    def fork(self) -> Env:
        """A fresh environment, reset and replayed to this one's state."""
        other = self.fresh()
        replay(other, self.actions())
        return other
