"""Reflexion: after a failed episode the model writes a short lesson; similar later tasks see it.

A run fails when it ends without ``solved`` (step cap, malformed replies) or, when the gold ``label`` is
known, when its final answer is wrong (judged by :func:`ponder.core.answers.is_correct`). The lesson is asked for
with ``prompts/reflect.txt`` (the task's compact trajectory and the failure reason) and stored as a
:class:`~ponder.memory.schema.Reflection`; retrieval is by similarity to the new task.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ponder.core.answers import AnswerKind, is_correct
from ponder.core.prompts import render
from ponder.memory.context import MemoryContext
from ponder.memory.experience import one_line
from ponder.memory.schema import Hit, Reflection
from ponder.models.base import GenerationParams, Message, ModelBackend

#: Longest lesson kept (characters); the model is asked for two or three sentences.
LESSON_CHARS = 600
#: Longest task text kept in a reflection (characters).
TASK_CHARS = 500
_LEAD = re.compile(r"^\s*(?:\*\*)?(?:reflection|lesson|diagnosis)s?(?:\*\*)?\s*:\s*", re.IGNORECASE)

_STATUS_REASONS = {
    "max_steps": "it reached the step limit before giving a final answer.",
    "parse_error": "its replies did not follow the required format.",
    "error": "the run crashed.",
}


def failure_reason(status: str | None, final_answer: str | None, label: str | None = None,
                   kind: AnswerKind = "auto") -> str | None:
    """Why an episode failed, or ``None`` when it succeeded.

    Args:
        status: The run's status (``solved``, ``max_steps``, ``parse_error``, ``error``).
        final_answer: The run's answer.
        label: The gold answer, when known: a wrong answer is then a failure.
        kind: How to compare the answer with ``label``.
    """
    if status != "solved":
        return _STATUS_REASONS.get(status or "", f"it ended with status {status}.")
    if label is not None and not is_correct(final_answer, label, kind):
        return f"its final answer ({final_answer}) was wrong."
    return None


@dataclass
class Lesson:
    """A reflection the model wrote, with its cost."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


def clean_lesson(text: str) -> str:
    """The lesson without a ``Reflection:`` lead, on one line, at most :data:`LESSON_CHARS` characters."""
    flat = " ".join(_LEAD.sub("", text.strip()).split())
    return flat if len(flat) <= LESSON_CHARS else flat[: LESSON_CHARS - 3].rstrip() + "..."


def reflect(model: ModelBackend, params: GenerationParams, trajectory: str, failure: str) -> Lesson:
    """Ask the model for a lesson about a failed attempt (``trajectory`` is its compact text)."""
    prompt: list[Message] = [{"role": "user", "content": render("reflect", trajectory=trajectory, failure=failure)}]
    completion = model.generate(prompt, params.model_copy(update={"n": 1, "stop": []}))[0]
    return Lesson(clean_lesson(completion.text), completion.prompt_tokens, completion.completion_tokens)


def make_reflection(ctx: MemoryContext, task: str, lesson: str, failure: str) -> Reflection:
    """A :class:`Reflection` for ``task`` stamped with the context's namespace, family and run id.

    Its text is a ``Task: <task>`` line and a ``Lesson: <lesson>`` line: the store embeds the text, so
    carrying the task makes retrieval by similarity to a new task work, and the model sees which task a
    lesson came from.
    """
    text = f"Task: {one_line(task, TASK_CHARS)}\nLesson: {lesson}"
    record = Reflection(text=text, metadata={"failure": failure, "lesson": lesson})
    return ctx.stamp(record, task)  # type: ignore[return-value]


def retrieve_reflections(ctx: MemoryContext, task: str) -> list[Hit]:
    """The ``k`` reflections most similar to ``task`` in the context's namespace."""
    return ctx.search("reflection", task, k=ctx.k)


def lessons_section(hits: Sequence[Hit]) -> str | None:
    """The "Lessons from earlier attempts" block (``prompts/memory_lessons.txt``), or ``None`` without hits."""
    lessons = [h.record.text.strip() for h in hits if h.record.text.strip()]
    if not lessons:
        return None
    return render("memory_lessons", lessons="\n".join("- " + text.replace("\n", "\n  ") for text in lessons))
