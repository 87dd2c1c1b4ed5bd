"""What the graphs' ``recall`` (first) and ``remember`` (last) nodes do; both are no-ops without memory.

``recall`` builds the prompt prefix for the run:

* ExpeL: the top insights (by score) are appended to the system prompt ("Insights from past tasks"), and
  the ``k`` most similar successful trajectories become few-shot turns after the built-in examples;
* Reflexion: the ``k`` most similar reflections become a "Lessons from earlier attempts" block put in front
  of the question (as in Reflexion, right after the examples).

``remember`` judges the episode (status, and the label when known), asks for a lesson after a failure
(Reflexion) and stores a successful trajectory as an experience (ExpeL). What was retrieved and written is
returned as the memory sub-state's ``log`` and ends up in ``Trajectory.metadata["memory"]``.

The agents keep these in one nested sub-state, :class:`MemoryState`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

from ponder.memory.context import MemoryContext
from ponder.memory.experience import compact_trajectory, experience_turns, make_experience, retrieve_experiences
from ponder.memory.insights import insights_section, ranked_insights
from ponder.memory.reflection import failure_reason, lessons_section, make_reflection, reflect, retrieve_reflections
from ponder.memory.schema import MemoryRecord, WriteResult
from ponder.models.base import GenerationParams, Message, ModelBackend


class MemoryState(TypedDict, total=False):
    """The memory sub-state of an agent run.

    Attributes:
        prefix: The prompt prefix: the system prompt (with insights, under ExpeL) and the few-shot turns (with
            retrieved experiences).
        lessons: Reflexion's "Lessons from earlier attempts" block, put in front of the question, or ``None``.
        log: What was retrieved and written (``Trajectory.metadata["memory"]``); absent when memory is off.
        prompt: The prompt's tool names and fingerprint (set by the kernel's ``recall`` node:
            :func:`ponder.agents.kernel.prompt_facts`; ``Trajectory.metadata["tools"]`` and ``["prompt_sha256"]``).
    """

    prefix: list[Message]
    lessons: str | None
    log: dict[str, Any]
    prompt: dict[str, Any]


def recall(ctx: MemoryContext | None, task: str, agent: str, system: str,
           examples: Sequence[Message]) -> MemoryState:
    """What the ``recall`` node puts into the memory sub-state: ``prefix``, ``lessons`` and ``log`` (``{}`` when off).

    Args:
        ctx: The run's memory, or ``None`` when memory is off.
        task: The question.
        agent: ``react`` or ``pal`` (experiences are only shared within one agent).
        system: The agent's system prompt without memory.
        examples: The agent's built-in few-shot turns.
    """
    if ctx is None:
        return {}
    retrieved: list[dict[str, Any]] = []
    sections = [system]
    turns: list[Message] = []
    if ctx.expel:
        insights = ranked_insights(ctx, ctx.max_insights)
        section = insights_section(insights)
        if section:
            sections.append(section)
        retrieved += [{"id": ins.id, "kind": "insight", "score": ins.score} for ins in insights]
        usable = [h for h in retrieve_experiences(ctx, task, agent) if experience_turns([h], agent)]
        turns = experience_turns(usable, agent)
        retrieved += [{"id": h.record.id, "kind": "experience", "similarity": round(h.similarity, 4)} for h in usable]
    lessons = None
    if ctx.reflexion:
        hits = retrieve_reflections(ctx, task)
        lessons = lessons_section(hits)
        retrieved += [{"id": h.record.id, "kind": "reflection", "similarity": round(h.similarity, 4)} for h in hits]
    prefix: list[Message] = [{"role": "system", "content": "\n\n".join(sections)}, *examples, *turns]
    return {"prefix": prefix, "lessons": lessons, "log": {**ctx.describe(), "retrieved": retrieved}}


def compose(prefix: Sequence[Message], messages: Sequence[Message], lessons: str | None) -> list[Message]:
    """The conversation sent to the model: ``prefix``, then ``messages`` with ``lessons`` before the question."""
    if not lessons or not messages:
        return [*prefix, *messages]
    first, *rest = messages
    return [*prefix, {"role": first["role"], "content": f"{lessons}\n\n{first['content']}"}, *rest]


def remember(ctx: MemoryContext | None, model: ModelBackend, params: GenerationParams, state: Any,
             agent: str) -> MemoryState:
    """What the ``remember`` node puts into the memory sub-state: it writes memories and returns the ``log``.

    Args:
        ctx: The run's memory, or ``None`` when memory is off.
        model: Writes the reflection after a failure.
        params: Sampling parameters for the reflection.
        state: The graph state at the end of the run (``task``, ``steps``, ``final_answer``, ``status`` and the
            memory sub-state ``memory``).
        agent: ``react`` or ``pal``.
    """
    if ctx is None:
        return {}
    task, steps = state["task"], list(state.get("steps") or [])
    answer, status = state.get("final_answer"), state.get("status")
    log = dict((state.get("memory") or {}).get("log") or ctx.describe())
    reason = failure_reason(status, answer, ctx.label, ctx.answer_kind)
    log["outcome"] = "failure" if reason else "success"
    if ctx.label is not None:
        log["correct"] = reason is None
    written: list[dict[str, Any]] = []
    if reason is not None:
        log["failure"] = reason
        if ctx.reflexion:
            lesson = reflect(model, params, compact_trajectory(task, steps, answer), reason)
            log["reflection"] = {"text": lesson.text, "prompt_tokens": lesson.prompt_tokens,
                                 "completion_tokens": lesson.completion_tokens}
            if lesson.text:
                record = make_reflection(ctx, task, lesson.text, reason)
                written.append(_written(record, ctx.add(record)))
    elif ctx.expel:
        record = make_experience(ctx, task, agent, steps, answer)
        written.append(_written(record, ctx.add(record)))
    log["written"] = written
    return {"log": log}


def _written(record: MemoryRecord, result: WriteResult) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": result.id, "kind": record.kind, "status": result.status}
    if result.reason:
        entry["reason"] = result.reason
    if result.duplicate_of:
        entry["duplicate_of"] = result.duplicate_of
    return entry
