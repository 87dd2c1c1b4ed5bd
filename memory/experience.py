"""ExpeL experience: compact trajectories, stored when a run succeeds and replayed as few-shot turns.

Compact format (one line per field; observations flattened to one line, code blocks kept whole)::

    Question: A box has 3 rows of 12 eggs ...
    Thought: 3 rows of 12, minus 5.
    Action: calculator
    Action Input: 3 * 12 - 5
    Observation: 31
    Final Answer: 31

PAL trajectories use ``Program:`` followed by a fenced Python block instead of the action lines.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ponder.core.records import Step
from ponder.memory.context import MemoryContext
from ponder.memory.schema import Experience, Hit
from ponder.models.base import Message

#: Longest observation kept in a compact trajectory (characters).
OBSERVATION_CHARS = 300
_CODE_BLOCK = re.compile(r"```(?:python)?\n(?P<code>.*?)\n?```", re.DOTALL)


def one_line(text: str | None, limit: int | None = None) -> str:
    """``text`` on one line (whitespace collapsed), cut to ``limit`` characters with an ellipsis."""
    flat = " ".join((text or "").split())
    if limit is not None and len(flat) > limit:
        return flat[: limit - 3].rstrip() + "..."
    return flat


def compact_trajectory(task: str, steps: Sequence[Step], final_answer: str | None, *,
                       include_errors: bool = True) -> str:
    """The compact text of a run: question, thought / action / observation lines, final answer.

    Args:
        task: The question.
        steps: The run's steps.
        final_answer: The answer, when the run gave one.
        include_errors: Keep malformed replies (useful to diagnose a failure; left out of examples).
    """
    lines = [f"Question: {one_line(task)}"]
    for step in steps:
        if step.kind == "parse_error":
            if include_errors:
                lines.append(f"Invalid reply: {one_line(step.raw, OBSERVATION_CHARS) or '(empty)'}")
                lines.append(f"Observation: {one_line(step.observation, OBSERVATION_CHARS)}")
            continue
        if step.thought:
            lines.append(f"Thought: {one_line(step.thought)}")
        if step.kind == "program":
            lines.append(f"Program:\n```python\n{(step.action_input or '').strip()}\n```")
        elif step.kind == "action":
            lines.append(f"Action: {step.action}")
            lines.append(f"Action Input: {(step.action_input or '').strip()}")
        if step.kind != "final" and step.observation is not None:
            lines.append(f"Observation: {one_line(step.observation, OBSERVATION_CHARS)}")
    if final_answer is not None:
        lines.append(f"Final Answer: {one_line(final_answer)}")
    return "\n".join(lines)


def make_experience(ctx: MemoryContext, task: str, agent: str, steps: Sequence[Step],
                    final_answer: str | None) -> Experience:
    """An :class:`Experience` for a successful run (malformed replies left out, PAL: the solving program)."""
    kept = [s for s in steps if s.kind != "parse_error"]
    if agent == "pal":
        kept = [s for s in kept if s.kind == "program"][-1:]
    text = compact_trajectory(task, kept, final_answer, include_errors=False)
    record = Experience(text=text, metadata={"agent": agent, "answer": final_answer or ""})
    return ctx.stamp(record, task)  # type: ignore[return-value]


def experience_messages(text: str, agent: str) -> list[Message]:
    """Turn a compact experience back into conversation turns (a few-shot example).

    ReAct: the question is a user turn, each thought/action block an assistant turn, each observation a
    user turn, the final answer the last assistant turn. PAL: the question, then the program in a fenced block.
    Returns ``[]`` when the text is not a compact trajectory.
    """
    lines = text.split("\n")
    if not lines or not lines[0].startswith("Question:"):
        return []
    messages: list[Message] = [{"role": "user", "content": lines[0].strip()}]
    if agent == "pal":
        match = _CODE_BLOCK.search(text)
        if match is None:
            return []
        messages.append({"role": "assistant", "content": f"```python\n{match['code'].strip()}\n```"})
        return messages
    chunk: list[str] = []
    for line in lines[1:]:
        if line.startswith("Observation:"):
            if chunk:
                messages.append({"role": "assistant", "content": "\n".join(chunk)})
                chunk = []
            messages.append({"role": "user", "content": line})
        else:
            chunk.append(line)
    if chunk:
        messages.append({"role": "assistant", "content": "\n".join(chunk)})
    if messages[-1]["role"] != "assistant" or "Final Answer:" not in messages[-1]["content"]:
        return []
    return messages


def retrieve_experiences(ctx: MemoryContext, task: str, agent: str) -> list[Hit]:
    """The ``k`` successful runs of this agent most similar to ``task`` (in the context's namespace).

    The agent is in the record's JSON metadata, which the store cannot filter on, so ``3 k`` hits are
    fetched and filtered here.
    """
    hits = ctx.search("experience", task, k=3 * ctx.k)
    return [h for h in hits if h.record.metadata.get("agent", agent) == agent][: ctx.k]


def experience_turns(hits: Sequence[Hit], agent: str) -> list[Message]:
    """Few-shot turns for the retrieved experiences, least similar first (the most similar sits next to the task)."""
    out: list[Message] = []
    for hit in sorted(hits, key=lambda h: h.similarity):
        out.extend(experience_messages(hit.record.text, agent))
    return out
