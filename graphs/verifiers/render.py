"""Compact text of a trace for the LLM verifiers (``self``, ``prm``): clipped thoughts, actions, observations.

Long texts are clipped (an observation of a web page or a long program output would crowd out the task and
the question the verifier asks); a long trace keeps its last steps.
"""

from __future__ import annotations

from ponder.core.records import Step
from ponder.graphs.verifiers.base import Trace

#: Characters kept of an observation (the middle of a longer one is cut).
OBSERVATION_CHARS = 300
#: Characters kept of a thought, an action input or a program.
TEXT_CHARS = 600
#: Characters kept of the task.
TASK_CHARS = 2000


def clip(text: str, limit: int) -> str:
    """``text`` with its middle cut when it is longer than ``limit`` characters (the cut is marked)."""
    text = text.strip()
    if len(text) <= limit:
        return text
    head = max(limit * 2 // 3, 1)
    tail = max(limit - head, 0)
    cut = len(text) - head - tail
    return f"{text[:head]} …[{cut} chars cut]… {text[len(text) - tail:] if tail else ''}".rstrip()


def step_parts(step: Step, *, observation_chars: int = OBSERVATION_CHARS) -> list[tuple[str, str]]:
    """The labelled parts of one step: ``[("Thought", ...), ("Action", ...), ("Observation", ...)]``."""
    parts: list[tuple[str, str]] = []
    if step.kind == "program":
        parts.append(("Program", clip(step.action_input or step.raw, TEXT_CHARS)))
    elif step.kind == "parse_error":
        parts.append(("Malformed step", clip(step.raw, TEXT_CHARS // 2)))
    else:
        if step.thought.strip():
            parts.append(("Thought", clip(step.thought, TEXT_CHARS)))
        if step.kind == "action" and step.action and step.action != "think":
            argument = step.action_input
            action = step.action if argument is None else f"{step.action}[{clip(argument, TEXT_CHARS)}]"
            parts.append(("Action", action))
    if step.observation is not None:
        parts.append(("Observation", clip(step.observation, observation_chars)))
    return parts


def render_step(step: Step, *, one_line: bool = False) -> str:
    """One step as labelled lines (``Thought: ...``), or as one line (``Thought: ... | Action: ...``)."""
    parts = step_parts(step)
    if one_line:
        return " | ".join(f"{label}: {' '.join(text.split())}" for label, text in parts)
    return "\n".join(f"{label}: {text}" for label, text in parts)


def render_trace(trace: Trace, *, max_steps: int = 12) -> str:
    """The trace's steps (the last ``max_steps``), its final answer and, for environments, its reward."""
    steps = trace.steps[-max_steps:]
    lines: list[str] = []
    if len(trace.steps) > len(steps):
        lines.append(f"({len(trace.steps) - len(steps)} earlier steps omitted)")
    for step in steps:
        lines.append(f"Step {step.index + 1}:\n{render_step(step)}")
    if not trace.steps:
        lines.append("(no steps yet)")
    if trace.final_answer is not None:
        lines.append(f"Final answer: {clip(trace.final_answer, TEXT_CHARS)}")
    if trace.agent == "env":
        total = f"{trace.reward:g}" + (f" of {trace.max_reward:g}" if trace.max_reward else "")
        lines.append(f"Reward so far: {total}")
    return "\n\n".join(lines)


def trace_state(trace: Trace) -> str:
    """``in progress`` for a partial trace, else how it ended."""
    return "in progress" if trace.partial else f"finished: {trace.status}"
