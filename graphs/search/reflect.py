"""Reflexion inside the tree: a lesson about each failed terminal run, read by the search's later expansions.

:func:`reflect_on` asks the model once (``prompts/lats_reflect.txt``) why the run that ends at a failed terminal
node went wrong; the lesson is stored on the node (``TreeNode.reflection``) and its tokens are charged to the
search. :func:`lessons_block` puts the latest lessons (``prompts/lats_lessons.txt``) in front of the first turn of
every later expansion's prompt, where Reflexion memory puts its lessons.
"""

from __future__ import annotations

from ponder.core.prompts import render
from ponder.core.records import Usage
from ponder.graphs.search.run import SearchRun
from ponder.graphs.search.stepper import Partial, repeating
from ponder.memory.experience import compact_trajectory, one_line
from ponder.memory.reflection import clean_lesson, failure_reason
from ponder.models.base import GenerationParams, Message

#: Lessons shown to an expansion (the latest ones).
KEEP_LESSONS = 3
#: Longest observation kept in an env transcript line.
OBSERVATION_CHARS = 300


def why_failed(run: SearchRun, node_id: int) -> str:
    """Why the run ending at ``node_id`` failed, as the end of "The attempt failed because ..."."""
    partial, node = run.partials[node_id], run.tree.nodes[node_id]
    if run.stepper.agent == "env" and partial.state.get("done") and not partial.won:
        return "the episode ended without reaching the goal (it was lost)."
    if not partial.terminal and repeating(partial):
        return "it repeated the same reply over and over and made no progress."
    reason = failure_reason(partial.status, partial.state.get("final_answer"))
    if reason is not None:
        return reason
    return f"a checker rated its answer {node.score or 0.0:.2f} out of 1 (not good enough)."


def transcript(run: SearchRun, partial: Partial) -> str:
    """The compact text of a run: env episodes as the first observation and ``> action`` / observation lines."""
    if run.stepper.agent != "env":
        return compact_trajectory(run.tree.task, partial.steps, partial.state.get("final_answer"))
    first = partial.state["messages"][0]["content"] if partial.state.get("messages") else run.tree.task
    lines = [f"Task and start: {one_line(first, 2 * OBSERVATION_CHARS)}"]
    for step in partial.steps:
        if step.action == "think":
            lines.append(f"think: {one_line(step.thought)}")
        elif step.kind == "action":
            lines.append(f"> {step.action}")
            lines.append(one_line(step.observation or "", OBSERVATION_CHARS))
        else:
            lines.append(f"(invalid reply: {one_line(step.raw, 80)})")
    return "\n".join(lines)


def reflect_on(run: SearchRun, node_id: int) -> str:
    """Ask for a lesson about the failed run that ends at ``node_id``; stored on the node, its cost charged."""
    settings = run.ctx.settings
    prompt: list[Message] = [{"role": "user", "content": render(
        "lats_reflect", failure=why_failed(run, node_id), trajectory=transcript(run, run.partials[node_id]))}]
    params = GenerationParams(temperature=settings.temperature, top_p=settings.top_p,
                              max_tokens=settings.max_tokens, seed=settings.seed)
    completion = run.ctx.model.generate(prompt, params)[0]
    run.charge(Usage(prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
                     model_calls=1))
    lesson = clean_lesson(completion.text)
    node = run.tree.nodes[node_id]
    node.reflection = lesson
    node.prompt_tokens += completion.prompt_tokens
    node.completion_tokens += completion.completion_tokens
    return lesson


def lessons_block(lessons: list[str], keep: int = KEEP_LESSONS) -> str | None:
    """The block of the latest ``keep`` lessons put in front of an expansion's first turn (``None``: none)."""
    latest = [text for text in lessons if text][-keep:]
    if not latest:
        return None
    return render("lats_lessons", lessons="\n".join(f"- {text}" for text in latest))
