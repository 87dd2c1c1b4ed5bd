"""The prompt an agent really sends, rebuilt for training data: system prompt, few-shot turns, the question.

Training conversations start with exactly what :mod:`ponder.agents.react` / :mod:`ponder.agents.pal` put before
the first model call (text tool protocol), so a fine-tuned model sees at training time the prompt it gets at run
time. :func:`prefix_sha256` fingerprints that prefix; trajectories record it (``metadata["prompt_sha256"]``) so an
export can tell when the prompt files or the tool set changed since the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ponder.core.errors import ConfigError
from ponder.core.hashing import messages_sha256
from ponder.core.records import Step
from ponder.core.settings import Settings, load_settings
from ponder.models.base import Message


def agent_prefix(agent: str, tools: Sequence[str] = ("calculator", "python"),
                 settings: Settings | None = None) -> list[Message]:
    """The messages before the question, as the agent sends them.

    ReAct: its system prompt listing ``tools`` and its few-shot turns; PAL: its system prompt.

    Raises:
        ConfigError: for an unknown agent or tool.
    """
    if agent == "pal":
        from ponder.agents.pal import pal_system_prompt

        return [{"role": "system", "content": pal_system_prompt()}]
    if agent != "react":
        raise ConfigError(f"unknown agent {agent!r}; training data is made for react or pal")
    from ponder.agents.react import example_messages, system_prompt
    from ponder.tools.base import ToolBox
    from ponder.tools.registry import build_tools

    toolbox = ToolBox(build_tools(list(tools), settings or load_settings()))
    return [{"role": "system", "content": system_prompt(toolbox)}, *example_messages(toolbox)]


def question_turn(task: str) -> Message:
    """The first user turn of a run (what :func:`ponder.agents.runner.initial_state` sends)."""
    return {"role": "user", "content": f"Question: {task}"}


def prefix_sha256(prefix: Sequence[Message]) -> str:
    """A short fingerprint of a prompt prefix (16 hex digits of the SHA-256 of its canonical JSON).

    The same function the agents record with (:func:`ponder.core.hashing.messages_sha256`).
    """
    return messages_sha256(prefix)


def run_conversation(prefix: Sequence[Message], task: str, steps: Sequence[Step]) -> list[dict[str, Any]]:
    """A recorded run as the conversation the model saw: ``prefix``, the question, each step's turns.

    It ends on the model's last reply (a final tool result, e.g. PAL's program output, is never sent back).
    """
    messages: list[dict[str, Any]] = [*prefix, question_turn(task)]
    for step in steps:
        messages.extend(step.to_messages())
    while messages and messages[-1]["role"] != "assistant":
        messages.pop()
    return messages
