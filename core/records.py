"""Trajectory records: steps, usage, whole runs (written and read by :mod:`ponder.core.io`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from ponder.core.types import Status, StepKind


class Usage(BaseModel):
    """Compute spent by a run."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_calls: int = 0
    tool_calls: int = 0
    wall_seconds: float = 0.0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_steps(cls, steps: Sequence[Step], wall_seconds: float = 0.0) -> Usage:
        """The usage of ``steps``: token sums, one model call per step, a tool call per action or program.

        A ``think`` action (the env agent's thought) calls no tool.
        """
        return cls(prompt_tokens=sum(s.prompt_tokens for s in steps),
                   completion_tokens=sum(s.completion_tokens for s in steps), model_calls=len(steps),
                   tool_calls=sum(1 for s in steps if s.kind in ("action", "program") and s.action != "think"),
                   wall_seconds=round(wall_seconds, 4))

    def __add__(self, other: Usage) -> Usage:
        """Field-wise sum (``sum(usages, Usage())`` totals many runs)."""
        return Usage(prompt_tokens=self.prompt_tokens + other.prompt_tokens,
                     completion_tokens=self.completion_tokens + other.completion_tokens,
                     model_calls=self.model_calls + other.model_calls, tool_calls=self.tool_calls + other.tool_calls,
                     wall_seconds=round(self.wall_seconds + other.wall_seconds, 4))


class Step(BaseModel):
    """One agent step: a model call and, when it asked for one, a tool call.

    ``kind`` is ``action`` (a tool was called), ``final`` (the model answered), ``parse_error``
    (malformed output answered with a format reminder) or ``program`` (PAL: a program was run).
    """

    index: int
    kind: StepKind
    raw: str = Field("", description="The model's text for this step, as generated.")
    thought: str = ""
    action: str | None = None
    action_input: str | None = None
    observation: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprob: float | None = Field(None, description="Sum of token log-probabilities, when the backend gave them.")
    model_seconds: float = 0.0
    tool_seconds: float = 0.0
    tool_call_id: str | None = Field(None, description="Native tool calling: the server's id of this step's "
                                     "tool call (the action and its JSON arguments are in action/action_input).")

    def to_messages(self) -> list[dict[str, Any]]:
        """The chat messages this step contributes to the conversation.

        Text protocol: the reply, then the observation as a user turn. Native tool calling (``tool_call_id``
        set): an assistant message with the tool call, then a ``tool`` message with the result.
        """
        if self.tool_call_id is not None:
            call = {"id": self.tool_call_id, "type": "function",
                    "function": {"name": self.action or "", "arguments": self.action_input or "{}"}}
            return [{"role": "assistant", "content": self.raw, "tool_calls": [call]},
                    {"role": "tool", "tool_call_id": self.tool_call_id, "content": self.observation or ""}]
        msgs = [{"role": "assistant", "content": self.raw}]
        if self.observation is not None:
            msgs.append({"role": "user", "content": f"Observation: {self.observation}"})
        return msgs


class RunRecord(BaseModel):
    """The fields every run record starts with: its id, when, the task, the agent and the model that ran it."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    task: str
    agent: str
    model: str
    backend: str = ""


class Trajectory(RunRecord):
    """A whole agent run."""

    steps: list[Step] = Field(default_factory=list)
    final_answer: str | None = None
    status: Status = "error"
    error: str | None = None
    usage: Usage = Field(default_factory=Usage)
    output: Any = Field(None, description="With an output schema: the final answer as a validated JSON value "
                        "(``None`` without a schema, or when no valid object came back; see metadata['output']).")
    metadata: dict[str, object] = Field(default_factory=dict)
