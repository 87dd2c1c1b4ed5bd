"""What an agent run and its steps add to their spans (see :mod:`ponder.core.spans`)."""

from __future__ import annotations

from opentelemetry.trace import Span

from ponder.core.records import Step, Trajectory
from ponder.core.spans import INPUT_TOKENS, OUTPUT_TOKENS, set_attributes, set_error, set_output


def traced_step(current: Span, steps: list[Step] | None) -> None:
    """The finished step on its ``step N`` span: its kind, action and the model's reply (or the observation)."""
    if not current.is_recording() or not steps:
        return
    step = steps[-1]
    set_attributes(current, {"ponder.step.kind": step.kind, "ponder.step.action": step.action,
                             "input.value": step.action_input})
    set_output(current, step.observation if step.observation is not None else step.raw)
    if step.kind == "parse_error":
        set_error(current, "parse_error")


def traced_run(current: Span, traj: Trajectory) -> None:
    """The run's outcome on its ``invoke_agent`` span: the answer, status, steps and token usage."""
    if not current.is_recording():
        return
    set_output(current, traj.final_answer)
    set_attributes(current, {"ponder.status": traj.status, "ponder.steps": len(traj.steps),
                             "ponder.trajectory_id": traj.id, INPUT_TOKENS: traj.usage.prompt_tokens,
                             OUTPUT_TOKENS: traj.usage.completion_tokens})
    if traj.status == "error":
        set_error(current, traj.error.split(":", 1)[0] if traj.error else "error")
