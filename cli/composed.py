"""``ponder run`` for every strategy but a plain run and a plain vote: the RunSpec's strategy from the command line.

The strategy is :func:`~ponder.graphs.strategies.build.build_strategy` of the run spec: ``best_of_n``, ``refine``,
``beam``, ``lats``, ``adaptive``; trials of a vote (``--compose trials_of_samples``, the default) or a vote over
trials runs (``samples_of_trials``), memory around the whole. Progress shows each sample and each trial as it
ends; the result is the outcome tree (every trial, every vote with its agreement; a vote's samples run their
trials unseen, in parallel), the final answer with its verifier score, the cost (verifier, value and reflection
calls included) and, for a search, the size of the tree and where it was written; or one JSON object with
``--json``.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.cli.output import ChosenOutput, print_output
from ponder.cli.sc import sample_line
from ponder.core.console import safe
from ponder.graphs.search.tree import SEARCH_FILE

if TYPE_CHECKING:
    from rich.console import Console

    from ponder.core.settings import Settings
    from ponder.graphs.search.tree import SearchTree
    from ponder.graphs.self_consistency.records import SampleRecord
    from ponder.graphs.strategies.base import Outcome
    from ponder.graphs.strategies.spec import RunSpec
    from ponder.models.base import ModelBackend

#: Facts of an outcome's metadata shown in the tree and the JSON object.
FACTS = ("agreement", "samples_run", "stop_reason", "self_consistency_id", "search_tree_id", "insights")
#: Outcomes whose attempts are shown as a tree (a search's attempts are its explored nodes: shown by size).
WRAPPERS = ("trials", "self_consistency", "memory", "best_of_n", "refine", "adaptive")


def run_composed(question: str, spec: RunSpec, settings: Settings, backend: ModelBackend, console: Console, *,
                 as_json: bool, label: str | None, output: ChosenOutput | None = None) -> Outcome:
    """Run the spec's composed strategy on ``question`` and print progress and the outcome.

    With ``output`` (``--output-schema``), the chosen answer is structured too and printed after it.
    """
    from ponder.graphs.strategies.base import StrategyContext
    from ponder.graphs.strategies.build import run_spec

    lock = threading.Lock()

    def say(text: str) -> None:
        if not as_json:
            with lock:
                console.print(text)

    attempt = "round" if spec.strategy_name == "refine" and spec.trials == 1 else "trial"  # refine's revisions

    def on_attempt(n: int, outcome: Outcome) -> None:
        say(f"[dim]{attempt} {n}:[/] {_answer(outcome)} [dim]({outcome.status}{_verdict(outcome, label)})[/]")

    def on_sample(sample: SampleRecord) -> None:
        say(sample_line(sample))

    say(f"[dim]{describe(spec, settings)}[/]")
    ctx = StrategyContext(settings=settings, model=backend, agent=settings.agent, on_attempt=on_attempt,
                          on_sample=on_sample)
    outcome = run_spec(question, spec, ctx, label)
    path = Path(settings.out_dir) / SEARCH_FILE
    fields, spent = output(outcome.answer) if output is not None else ({}, None)
    if as_json:
        out = {**outcome_json(outcome, label, strategy=spec.strategy_name, search_path=path), **fields}
        if spent is not None:
            out["usage"] = (outcome.usage + spent).model_dump()
        print(json.dumps(out))
        return outcome
    for line in tree(outcome):
        console.print(line)
    score = chosen_score(outcome)
    shown = f" [dim](score {score:.2f})[/]" if score is not None and outcome.kind != "self_consistency" else ""
    console.print(f"[bold]Final Answer:[/] {_answer(outcome)}{shown}")
    u = outcome.usage
    console.print(f"{spec.strategy_name} · {len(outcome.trajectories)} trajectories · {u.model_calls} model calls · "
                  f"{u.prompt_tokens}+{u.completion_tokens} tokens (verifier included) · {u.tool_calls} tool calls · "
                  f"{u.wall_seconds:.1f}s")
    for found in search_trees(outcome):
        console.print(f"[dim]search tree {found.id}: {len(found.nodes)} nodes, depth "
                      f"{max((n.depth for n in found.nodes), default=0)}, stop: {found.stop_reason or '-'} → {path}[/]")
    if label is not None:
        console.print("correct" if _verdict(outcome, label) == ", correct" else f"[red]wrong[/] (label {safe(label)})")
    if fields:
        print_output(fields["output"], fields["output_check"], console)
    return outcome


def describe(spec: RunSpec, settings: Settings) -> str:
    """One line naming the composition: ``3 trials of a 5-sample majority vote of react, memory reflexion``."""
    memory = spec.memory or settings.memory
    inner = _strategy(spec, settings.agent)
    if spec.voting:
        inner = f"a {spec.samples}-sample {spec.vote} vote" + ("" if spec.strategy_name == "sc" else f" over {inner}")
    if spec.trials == 1 and not spec.voting:
        return f"{inner}, memory {memory}"
    trials = f"{spec.trials} trials" if spec.trials > 1 else "one trial"
    if not spec.voting:
        return f"{trials} of {inner}, memory {memory}"
    what = f"{trials} of {inner}" if spec.compose == "trials_of_samples" else f"{inner} over {trials} each"
    agent = f" of {settings.agent}" if spec.strategy_name == "sc" else ""
    return f"{what}{agent}, memory {memory}"


def _strategy(spec: RunSpec, agent: str) -> str:
    """``lats of react (verifier self,env, budget 20000t, exploration 1.0)``: the strategy and what shapes it."""
    name = spec.strategy_name
    facts = {"best_of_n": [f"N={spec.samples}", "weighted vote" if spec.vote == "weighted" else "pick the best"],
             "refine": [f"{spec.rounds} rounds", f"accept {spec.accept}"],
             "beam": [f"width {spec.beam_width}", f"{spec.expansions} candidates per beam"],
             "lats": [f"{spec.expansions} children per expansion", f"exploration {spec.exploration}"]
             + ([f"{spec.iterations} iterations"] if spec.iterations else []),
             "adaptive": []}.get(name)
    if facts is None:
        return agent
    facts = [f"verifier {spec.verifier or 'default'}", *facts] + ([f"budget {spec.budget}"] if spec.budget else [])
    return f"{name} of {agent} ({', '.join(facts)})"


def tree(outcome: Outcome, depth: int = 0) -> list[str]:
    """The outcome as indented lines: each trial and vote with its answer, status and agreement (or score)."""
    facts = outcome.metadata
    score = chosen_score(outcome)
    shown = (f", agreement {facts['agreement']:.0%}" if "agreement" in facts
             else f", score {score:.2f}" if score is not None else "")
    lines = [f"{'  ' * depth}{outcome.kind}: {_answer(outcome)} [dim]({outcome.status}{shown})[/]"]
    if outcome.kind in WRAPPERS:  # a search's attempts are its tree, summarized by size
        for inner in outcome.attempts:
            if inner.kind != "single":  # a vote's samples and a trial's single runs were shown as they ended
                lines += tree(inner, depth + 1)
    return lines


def chosen_score(outcome: Outcome) -> float | None:
    """The score of the chosen answer (its candidate's; the best candidate's when none matches); ``None``: unscored."""
    if not outcome.candidates:
        return None
    match = next((c for c in outcome.candidates if c.answer == outcome.answer), outcome.candidates[0])
    return match.score


def search_trees(outcome: Outcome) -> list[SearchTree]:
    """The search trees among the records of the outcome and its attempts (one per search run), each once."""
    from ponder.graphs.search.tree import SearchTree

    found = {r.id: r for r in outcome.records if isinstance(r, SearchTree)}
    for inner in outcome.attempts:
        found.update((t.id, t) for t in search_trees(inner))
    return list(found.values())


def outcome_json(outcome: Outcome, label: str | None = None, *, strategy: str | None = None,
                 search_path: Path | None = None) -> dict[str, Any]:
    """The ``--json`` object of a composed run: answer, score, status, usage, the tree of inner outcomes, searches."""
    from ponder.core.answers import is_correct

    out = _node(outcome)
    chosen = outcome.trajectory
    out.update(usage=outcome.usage.model_dump(), trajectories=[t.id for t in outcome.trajectories],
               chosen_trajectory=chosen.id if chosen is not None else None, score=chosen_score(outcome))
    if strategy is not None:
        out["strategy"] = strategy
    trees = search_trees(outcome)
    if trees:
        out["search_trees"] = [{"id": t.id, "strategy": t.strategy, "nodes": len(t.nodes), "chosen": t.chosen,
                                "stop_reason": t.stop_reason} for t in trees]
        out["search_path"] = str(search_path) if search_path is not None else None
    if label is not None:
        out["correct"] = is_correct(outcome.answer, label)
    return out


def _node(outcome: Outcome) -> dict[str, Any]:
    node: dict[str, Any] = {"kind": outcome.kind, "answer": outcome.answer, "status": outcome.status}
    node.update({k: outcome.metadata[k] for k in FACTS if k in outcome.metadata})
    if outcome.kind in WRAPPERS:
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
