"""``ponder run --samples N --trials K`` (or ``--memory``): a composed strategy from the command line.

The strategy is :func:`~ponder.graphs.strategies.build.build_strategy` of the run spec: trials of a vote
(``--compose trials_of_samples``, the default) or a vote over trials runs (``samples_of_trials``), memory
around the whole. Progress shows each sample and each trial as it ends; the result is the outcome tree
(every trial, every vote with its agreement; a vote's samples run their trials unseen, in parallel) and the
final answer, or one JSON object with ``--json``.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

from ponder.cli.sc import sample_line
from ponder.core.console import safe

if TYPE_CHECKING:
    from rich.console import Console

    from ponder.core.settings import Settings
    from ponder.graphs.self_consistency.records import SampleRecord
    from ponder.graphs.strategies.base import Outcome
    from ponder.graphs.strategies.spec import RunSpec
    from ponder.models.base import ModelBackend

#: Facts of an outcome's metadata shown in the tree and the JSON object.
FACTS = ("agreement", "samples_run", "stop_reason", "self_consistency_id", "insights")


def run_composed(question: str, spec: RunSpec, settings: Settings, backend: ModelBackend, console: Console, *,
                 as_json: bool, label: str | None) -> Outcome:
    """Run the spec's composed strategy on ``question`` and print progress and the outcome."""
    from ponder.graphs.strategies.base import StrategyContext
    from ponder.graphs.strategies.build import run_spec

    lock = threading.Lock()

    def say(text: str) -> None:
        if not as_json:
            with lock:
                console.print(text)

    def on_attempt(trial: int, outcome: Outcome) -> None:
        say(f"[dim]trial {trial}:[/] {_answer(outcome)} [dim]({outcome.status}{_verdict(outcome, label)})[/]")

    def on_sample(sample: SampleRecord) -> None:
        say(sample_line(sample))

    say(f"[dim]{describe(spec, settings)}[/]")
    ctx = StrategyContext(settings=settings, model=backend, agent=settings.agent, on_attempt=on_attempt,
                          on_sample=on_sample)
    outcome = run_spec(question, spec, ctx, label)
    if as_json:
        print(json.dumps(outcome_json(outcome, label)))
        return outcome
    for line in tree(outcome):
        console.print(line)
    console.print(f"[bold]Final Answer:[/] {_answer(outcome)}")
    u = outcome.usage
    console.print(f"{len(outcome.trajectories)} trajectories · {u.prompt_tokens}+{u.completion_tokens} tokens · "
                  f"{u.tool_calls} tool calls · {u.wall_seconds:.1f}s")
    if label is not None:
        console.print("correct" if _verdict(outcome, label) == ", correct" else f"[red]wrong[/] (label {safe(label)})")
    return outcome


def describe(spec: RunSpec, settings: Settings) -> str:
    """One line naming the composition: ``3 trials of a 5-sample majority vote of react, memory reflexion``."""
    memory = spec.memory or settings.memory
    vote = f"a {spec.samples}-sample {spec.vote} vote"
    trials = f"{spec.trials} trials" if spec.trials > 1 else "one trial"
    what = f"{trials} of {vote}" if spec.compose == "trials_of_samples" else f"{vote} over {trials} each"
    return f"{what} of {settings.agent}, memory {memory}"


def tree(outcome: Outcome, depth: int = 0) -> list[str]:
    """The outcome as indented lines: each trial and vote with its answer, status and agreement."""
    facts = outcome.metadata
    agreement = f", agreement {facts['agreement']:.0%}" if "agreement" in facts else ""
    lines = [f"{'  ' * depth}{outcome.kind}: {_answer(outcome)} [dim]({outcome.status}{agreement})[/]"]
    for inner in outcome.attempts:
        if inner.kind != "single":  # a vote's samples and a trial's single runs were shown as they ended
            lines += tree(inner, depth + 1)
    return lines


def outcome_json(outcome: Outcome, label: str | None = None) -> dict[str, Any]:
    """The ``--json`` object of a composed run: answer, status, usage, and the tree of inner outcomes."""
    from ponder.core.answers import is_correct

    out = _node(outcome)
    chosen = outcome.trajectory
    out.update(usage=outcome.usage.model_dump(), trajectories=[t.id for t in outcome.trajectories],
               chosen_trajectory=chosen.id if chosen is not None else None)
    if label is not None:
        out["correct"] = is_correct(outcome.answer, label)
    return out


def _node(outcome: Outcome) -> dict[str, Any]:
    node: dict[str, Any] = {"kind": outcome.kind, "answer": outcome.answer, "status": outcome.status}
    node.update({k: outcome.metadata[k] for k in FACTS if k in outcome.metadata})
    if outcome.kind != "single":
        node["attempts"] = [_node(inner) for inner in outcome.attempts]
    return node


def _verdict(outcome: Outcome, label: str | None) -> str:
    """``, correct`` or ``, wrong`` against the label; empty without one."""
    from ponder.core.answers import is_correct

    if label is None:
        return ""
    return ", correct" if is_correct(outcome.answer, label) else ", wrong"


def _answer(outcome: Outcome) -> str:
    return safe(outcome.answer) if outcome.answer is not None else "(no answer)"
