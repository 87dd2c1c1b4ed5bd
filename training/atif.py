"""ATIF (Agent Trajectory Interchange Format, Harbor / Terminal-Bench RFC 0001, v1.4) for exported trajectories.

The root object has ``schema_version`` ("ATIF-v1.4"), ``session_id``, ``agent`` (name, version, model_name,
extra), ``steps`` and optional ``notes``, ``final_metrics`` and ``extra``. Steps are numbered from 1; ``source``
is ``system``, ``user`` or ``agent``; agent-only fields (``model_name``, ``reasoning_content``, ``tool_calls``,
``metrics``) appear on agent steps only; an observation result's ``source_call_id`` names a tool call of its step.
ponder writes the system prompt and few-shot turns as ``system`` / ``user`` / ``agent`` steps marked
``extra.prefix``, the question as a ``user`` step, and one ``agent`` step per ponder step: the raw reply as
``message``, the thought as ``reasoning_content``, a tool call (``arguments: {"input": ...}``) with its
observation, and the token counts. The models below validate what is written (``extra="forbid"``: no field the
RFC does not define).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ponder.core.records import Step
from ponder.models.base import Message
from ponder.training.export_sources import Episode

ATIF_VERSION = "ATIF-v1.4"
_ROLES = {"system": "system", "user": "user", "assistant": "agent"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AtifToolCall(_Strict):
    """One tool invocation."""

    tool_call_id: str
    function_name: str
    arguments: dict[str, Any]


class AtifResult(_Strict):
    """One observation result."""

    source_call_id: str | None = None
    content: str | None = None


class AtifObservation(_Strict):
    """What came back after a step's actions."""

    results: list[AtifResult]


class AtifMetrics(_Strict):
    """Per-step LLM metrics."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    cost_usd: float | None = None
    logprobs: list[float] | None = None
    extra: dict[str, Any] | None = None


class AtifStep(_Strict):
    """One turn: a system prompt, a user message or an agent turn (reply, tool calls, observation)."""

    step_id: int = Field(ge=1)
    timestamp: str | None = None
    source: Literal["system", "user", "agent"]
    model_name: str | None = None
    message: str
    reasoning_content: str | None = None
    tool_calls: list[AtifToolCall] | None = None
    observation: AtifObservation | None = None
    metrics: AtifMetrics | None = None
    extra: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _agent_fields(self) -> AtifStep:
        agent_only = (self.model_name, self.reasoning_content, self.tool_calls, self.metrics)
        if self.source != "agent" and any(v is not None for v in agent_only):
            raise ValueError(f"step {self.step_id}: model_name, reasoning_content, tool_calls and metrics are for "
                             "agent steps only")
        ids = {call.tool_call_id for call in self.tool_calls or ()}
        for result in self.observation.results if self.observation else ():
            if result.source_call_id is not None and result.source_call_id not in ids:
                raise ValueError(f"step {self.step_id}: observation names unknown tool call {result.source_call_id}")
        return self


class AtifAgent(_Strict):
    """The agent system that produced the trajectory."""

    name: str
    version: str
    model_name: str | None = None
    extra: dict[str, Any] | None = None


class AtifFinalMetrics(_Strict):
    """Totals over the trajectory."""

    total_prompt_tokens: int | None = None
    total_completion_tokens: int | None = None
    total_cached_tokens: int | None = None
    total_cost_usd: float | None = None
    total_steps: int | None = None
    extra: dict[str, Any] | None = None


class AtifTrajectory(_Strict):
    """An ATIF document (one line of ``--format atif`` output)."""

    schema_version: Literal["ATIF-v1.0", "ATIF-v1.1", "ATIF-v1.2", "ATIF-v1.3", "ATIF-v1.4"] = ATIF_VERSION
    session_id: str
    agent: AtifAgent
    steps: list[AtifStep] = Field(min_length=1)
    notes: str | None = None
    final_metrics: AtifFinalMetrics | None = None
    extra: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _sequential(self) -> AtifTrajectory:
        if [s.step_id for s in self.steps] != list(range(1, len(self.steps) + 1)):
            raise ValueError("step_id must run 1, 2, 3, ... in order")
        return self


def to_atif(ep: Episode, prefix: list[Message], version: str, metadata: dict[str, Any]) -> AtifTrajectory:
    """``ep`` as an ATIF trajectory: ``prefix`` (system prompt, few-shot turns), the question, the agent's steps."""
    traj = ep.traj
    steps: list[AtifStep] = [AtifStep(step_id=i, source=_ROLES[m["role"]], message=m["content"],  # type: ignore[arg-type]
                                      extra={"prefix": True})
                             for i, m in enumerate(prefix, 1)]
    steps.append(AtifStep(step_id=len(steps) + 1, source="user", message=f"Question: {ep.task}"))
    steps += [_agent_step(len(steps) + 1 + i, step, traj.model) for i, step in enumerate(traj.steps)]
    usage = traj.usage
    return AtifTrajectory(
        session_id=traj.id, agent=AtifAgent(name=f"ponder-{traj.agent}", version=version, model_name=traj.model,
                                            extra={"tools": metadata.get("tools", [])}),
        steps=steps, notes="ponder export: the prompt prefix steps carry extra.prefix; tool inputs are text "
        "(arguments.input).", final_metrics=AtifFinalMetrics(
            total_prompt_tokens=usage.prompt_tokens, total_completion_tokens=usage.completion_tokens,
            total_steps=len(steps)),
        extra={**metadata, "status": traj.status, "final_answer": traj.final_answer})


def _agent_step(step_id: int, step: Step, model: str) -> AtifStep:
    calls = None
    observation = None
    if step.action and step.kind in ("action", "program"):
        call_id = step.tool_call_id or f"call_{step.index}"
        calls = [AtifToolCall(tool_call_id=call_id, function_name=step.action,
                              arguments={"input": step.action_input or ""})]
        if step.observation is not None:
            observation = AtifObservation(results=[AtifResult(source_call_id=call_id, content=step.observation)])
    elif step.observation is not None:  # a format reminder: feedback without a tool call
        observation = AtifObservation(results=[AtifResult(content=step.observation)])
    return AtifStep(step_id=step_id, source="agent", model_name=model, message=step.raw,
                    reasoning_content=step.thought or None, tool_calls=calls, observation=observation,
                    metrics=AtifMetrics(prompt_tokens=step.prompt_tokens, completion_tokens=step.completion_tokens),
                    extra={"kind": step.kind})
