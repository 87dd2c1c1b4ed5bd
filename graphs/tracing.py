"""Spans of strategy nodes: a strategy run, its samples, a vote, a search expansion or evaluation (CHAIN spans).

:func:`traced` wraps a function (a strategy's ``run``, a graph node) in a span; what the span records about the
result comes from a ``describe`` function, called only while tracing records (see :mod:`ponder.core.tracing`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from ponder.core.spans import chain_span, set_attributes
from ponder.core.tracing import AttributeValue, clip

F = TypeVar("F", bound=Callable[..., Any])
Describe = Callable[[Any], Mapping[str, AttributeValue | None]]


def traced(name: str, describe: Describe | None = None, *, task_arg: int | None = None) -> Callable[[F], F]:
    """Decorate a function to run inside a CHAIN span ``name`` (``ponder.strategy`` = ``name``).

    Args:
        name: The span's name.
        describe: The attributes recorded from the function's result (``output.value`` included).
        task_arg: The position of the task text among the positional arguments (``input.value``).
    """

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            task = args[task_arg] if task_arg is not None and len(args) > task_arg else None
            with chain_span(name, {"ponder.strategy": name}, input_value=task if isinstance(task, str) else None) \
                    as current:
                result = fn(*args, **kwargs)
                if describe is not None and current.is_recording():
                    set_attributes(current, dict(describe(result)))
                return result

        return run  # type: ignore[return-value]

    return wrap


def outcome_attributes(outcome: Any) -> dict[str, AttributeValue | None]:
    """A strategy :class:`~ponder.graphs.strategies.base.Outcome`: answer, status, runs, candidates, metadata."""
    attrs: dict[str, AttributeValue | None] = {
        "output.value": clip(outcome.answer) if outcome.answer is not None else None,
        "ponder.status": outcome.status, "ponder.trajectories": len(outcome.trajectories),
        "ponder.candidates.answers": [c.answer or "" for c in outcome.candidates],
        "ponder.candidates.scores": [float(c.score) for c in outcome.candidates],
    }
    for key, value in outcome.metadata.items():
        if isinstance(value, str | bool | int | float):
            attrs[f"ponder.{key}"] = value
        elif _numbers(value):
            attrs[f"ponder.{key}"] = [float(v) for v in value]
    return attrs


def vote_attributes(rows: Sequence[Any], answer: str | None) -> dict[str, AttributeValue | None]:
    """A vote: each row's answer and votes (best first), the counts as JSON in ``output.value``."""
    return {
        "ponder.vote.answers": [r.answer for r in rows], "ponder.vote.counts": [r.votes for r in rows],
        "ponder.vote.weights": [float(r.weight) for r in rows], "ponder.answer": answer,
        "output.value": json.dumps({r.answer: r.votes for r in rows}),
    }


def sc_attributes(result: Any) -> dict[str, AttributeValue | None]:
    """A :class:`~ponder.graphs.self_consistency.records.SelfConsistencyResult`: samples, votes, stop reason."""
    return {**vote_attributes(result.votes, result.final_answer),
            "output.value": clip(result.final_answer) if result.final_answer is not None else None,
            "ponder.samples_planned": result.samples_planned, "ponder.samples_run": result.samples_run,
            "ponder.samples_discarded": result.samples_discarded, "ponder.stop_reason": result.stop_reason,
            "ponder.agreement": result.agreement, "ponder.chosen_sample": result.chosen_sample}


def decided_attributes(update: Mapping[str, Any]) -> dict[str, AttributeValue | None]:
    """The self-consistency graph's ``decide`` update: the vote table and the answer it picked."""
    table = update.get("table")
    return vote_attributes(table.rows if table is not None else [], update.get("final_answer"))


def _numbers(value: object) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value))


def evaluated_attributes(update: Mapping[str, Any]) -> dict[str, AttributeValue | None]:
    """A search ``evaluate`` node's update: the node and the verifier's score."""
    node, score = update["scores"][-1]
    return {"ponder.node": node, "ponder.score": float(score.value), "output.value": f"{score.value:.4f}"}


def expanded_attributes(update: Mapping[str, Any]) -> dict[str, AttributeValue | None]:
    """A search expansion's update (``moves``: ``(parent, Moved)`` pairs or ``Moved``): steps, seed, error."""
    move = update["moves"][-1]
    if isinstance(move, tuple):
        move = move[1]
    last = move.steps[-1] if move.steps else None
    return {"ponder.seed": move.seed, "ponder.steps": len(move.steps), "error.type": move.error and "move_error",
            "output.value": clip(last.raw) if last is not None else move.error}
