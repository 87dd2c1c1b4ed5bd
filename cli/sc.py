"""``ponder run --samples N``: self-consistency from the command line (progress, vote table, JSON)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ponder.cli.output import ChosenOutput, print_output
from ponder.core.console import safe
from ponder.core.settings import Settings
from ponder.graphs.self_consistency.graph import SCConfig
from ponder.graphs.self_consistency.records import SC_FILE, SampleRecord, SelfConsistencyResult
from ponder.models.base import ModelBackend


def vote_table(result: SelfConsistencyResult) -> Table:
    """The vote table as a Rich table (winner first)."""
    table = Table(title=f"{result.vote} vote over {result.samples_run} samples", title_justify="left")
    for column in ("#", "answer", "votes", "weight", "samples"):
        table.add_column(column, justify="right" if column in ("#", "votes", "weight") else "left")
    for n, row in enumerate(result.votes, 1):
        style = "bold green" if row.key == result.winner_key else ""
        table.add_row(str(n), safe(row.answer[:80]), str(row.votes), f"{row.weight:.3f}",
                      ",".join(map(str, row.samples)), style=style)
    if result.abstained:
        table.add_row("-", "(no usable answer)", str(len(result.abstained)), "",
                      ",".join(map(str, result.abstained)), style="dim")
    return table


def sample_line(sample: SampleRecord) -> str:
    """One progress line for a finished sample (Rich markup; the answer made safe)."""
    t = sample.trajectory
    answer = t.final_answer if t.final_answer is not None else f"({t.status})"
    return (f"[dim]sample {sample.index} (wave {sample.wave}, seed {sample.seed}):[/] {safe(answer[:80])} "
            f"[dim]· {len(t.steps)} steps · {t.usage.total_tokens} tokens · {t.usage.wall_seconds:.1f}s[/]")


def run_samples(question: str, *, settings: Settings, backend: ModelBackend, config: SCConfig, console: Console,
                as_json: bool, label: str | None, verbose: bool,
                output: ChosenOutput | None = None) -> SelfConsistencyResult:
    """Run self-consistency for ``question`` and print progress and the result.

    With ``output`` (``--output-schema``), the voted answer is structured too and printed after it.
    """
    from ponder.graphs.self_consistency.run import run_self_consistency

    lock = threading.Lock()

    def on_sample(sample: SampleRecord) -> None:
        if not as_json:
            with lock:
                console.print(sample_line(sample))

    if not as_json:
        console.print(f"[dim]self-consistency: {config.samples} samples of {settings.agent}, {config.vote} vote"
                      + (f", early stop ({config.stop_rule})" if config.early_stop else "")
                      + (f", budget {config.budget}" if config.budget else "") + "[/]")
    result = run_self_consistency(question, config=config, agent=settings.agent, settings=settings, model=backend,
                                  on_sample=on_sample)
    path = Path(settings.out_dir) / SC_FILE
    fields, spent = output(result.final_answer) if output is not None else ({}, None)
    if as_json:
        out = {**vote_json(result, label, path), **fields}
        if spent is not None:
            out["usage"] = (result.usage + spent).model_dump()
        print(json.dumps(out))
    else:
        print_vote(result, console, label=label, verbose=verbose, path=path)
        if fields:
            print_output(fields["output"], fields["output_check"], console)
    return result


def vote_json(result: SelfConsistencyResult, label: str | None, path: Path) -> dict[str, Any]:
    """The ``--json`` object of a self-consistency run."""
    from ponder.core.answers import is_correct

    out = {"strategy": "sc", "id": result.id, "answer": result.final_answer, "agreement": result.agreement,
           "votes": [r.model_dump() for r in result.votes], "abstained": result.abstained,
           "samples_planned": result.samples_planned, "samples_run": result.samples_run,
           "samples_discarded": result.samples_discarded, "stop_reason": result.stop_reason,
           "samples_saved": result.samples_saved,
           "tokens_saved_estimate": result.tokens_saved_estimate, "usage": result.usage.model_dump(),
           "chosen_sample": result.chosen_sample, "record_path": str(path), "model": result.model,
           "backend": result.backend, "batch_sizes": result.batch_sizes}
    if result.judge is not None:
        out["judge"] = result.judge.model_dump()
    if label is not None:
        out["correct"] = is_correct(result.final_answer, label)
    return out


def print_vote(result: SelfConsistencyResult, console: Console, *, label: str | None, verbose: bool,
               path: Path) -> None:
    """The vote table, the final answer with its agreement, the cost line and where the record went."""
    from ponder.core.answers import is_correct

    console.print(vote_table(result))
    if result.judge is not None:
        verdict = "fell back to the vote" if result.judge.fallback else f"picked candidate {result.judge.choice}"
        console.print(f"judge {verdict}")
    answer = result.final_answer if result.final_answer is not None else "(no answer)"
    console.print(f"[bold]Final Answer:[/] {safe(answer)} [dim](agreement {result.agreement:.0%})[/]")
    u = result.usage
    line = (f"{result.samples_run}/{result.samples_planned} samples · stop: {result.stop_reason} · "
            f"{u.prompt_tokens}+{u.completion_tokens} tokens · {u.tool_calls} tool calls · {u.wall_seconds:.1f}s")
    if result.samples_saved:
        line += f" · saved {result.samples_saved} samples (~{result.tokens_saved_estimate} tokens)"
    if result.samples_discarded:
        line += f" · {result.samples_discarded} cancelled in flight"
    console.print(line)
    if label is not None:
        console.print("correct" if is_correct(result.final_answer, label) else f"[red]wrong[/] (label {safe(label)})")
    if verbose and result.batch_sizes:
        console.print(f"[dim]batched model calls: {result.batch_sizes}[/]")
    console.print(f"[dim]record {result.id} → {path}[/]")
