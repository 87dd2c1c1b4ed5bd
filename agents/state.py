"""The state of an agent run: one base :class:`AgentState` that every agent's state extends.

``messages`` and ``steps`` grow by concatenation; every other key (the memory sub-state included, which
``recall`` and ``remember`` write whole) is replaced by the latest value written. Few reducers keep a step cheap.
"""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

from ponder.core.records import Step
from ponder.core.types import Status
from ponder.memory.nodes import MemoryState
from ponder.models.base import Message


class AgentState(TypedDict, total=False):
    """What every agent's state holds.

    Attributes:
        task: The question or instruction.
        messages: The conversation after the prompt prefix (the question first, then turns and observations).
        steps: The finished steps, in order.
        final_answer: The answer, once there is one.
        status: How the run ended; ``None`` while it runs.
        parse_failures: Malformed replies in a row.
        elided_observations: Observations the context budget elided from the latest prompt (0: none).
        memory: The memory sub-state (prompt prefix, Reflexion lessons, the memory log).
    """

    task: str
    messages: Annotated[list[Message], operator.add]
    steps: Annotated[list[Step], operator.add]
    final_answer: str | None
    status: Status | None
    parse_failures: int
    elided_observations: int
    memory: MemoryState


class ReActState(AgentState, total=False):
    """State of one ReAct run (the base fields are all it needs)."""


class PALState(AgentState, total=False):
    """State of one PAL run (the base fields are all it needs)."""


class EnvAgentState(AgentState, total=False):
    """State of one episode in an environment.

    Attributes:
        admissible: The actions the environment accepts now, when it says.
        reward: The total reward so far.
        done: Whether the episode is over.
        won: Whether the episode was won.
        env_steps: Actions sent to the environment.
        progress: The environment's intermediate rewards summed (``EnvStep.info["intermediate_reward"]``, e.g.
            TextWorld's quest progress), when it gives them; the ``env`` verifier reads it, the agent never sees it.
    """

    admissible: list[str] | None
    reward: float
    done: bool
    won: bool
    env_steps: int
    progress: float


def initial_state(task: str, first_message: str) -> AgentState:
    """The input state of a run: ``first_message`` (the question, or the first observation) as the first turn."""
    return {"task": task, "messages": [{"role": "user", "content": first_message}], "steps": [], "final_answer": None,
            "status": None, "parse_failures": 0}
