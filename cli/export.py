"""``ponder export sft``: trajectories (runs, evals, votes, searches) as training data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

if TYPE_CHECKING:
    from ponder.training.export_filters import AnswerKey

export_app = typer.Typer(help="Export records as training data.", no_args_is_help=True)

Format = Literal["chat", "openai", "atif"]
Dedup = Literal["task", "none"]
Agent = Literal["react", "pal"]


@export_app.command("sft")
def export_sft(
    runs: Annotated[list[Path], typer.Argument(help="Run records: trajectories.jsonl, eval run folders, "
                                               "self_consistency.jsonl, search.jsonl, or folders holding them.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output JSONL file (counts go to FILE.stats.json).")],
    fmt: Annotated[Format, typer.Option("--format", help="chat (TRL conversational + metadata), openai "
                                        "(messages only) or atif (ATIF v1.4 documents).")] = "chat",
    solved_only: Annotated[bool, typer.Option("--solved-only", help="Eval: successful episodes; other runs: "
                                              "status solved (and, with --answers, a right answer).")] = False,
    answers: Annotated[Path | None, typer.Option(help="JSONL answer key: id/answer or question/answer rows.")]
    = None,
    min_score: Annotated[float | None, typer.Option(help="Drop records whose verifier score is below X.")] = None,
    voted_only: Annotated[bool, typer.Option("--voted-only", help="Self-consistency: only samples with the "
                                             "voted answer.")] = False,
    dedup: Annotated[Dedup, typer.Option(help="task: one example per task (right answer, best score, fewest "
                                         "steps); none: all.")] = "task",
    agent: Annotated[Agent | None, typer.Option(help="Only this agent's runs.")] = None,
    exclude_hints: Annotated[bool, typer.Option("--exclude-hints", help="Drop rationales written with the "
                                                "answer as a hint.")] = False,
    keep_parse_errors: Annotated[bool, typer.Option("--keep-parse-errors", help="Keep trajectories with "
                                                    "malformed replies.")] = False,
    allow_prompt_drift: Annotated[bool, typer.Option("--allow-prompt-drift", help="Keep runs whose recorded "
                                                     "prompt differs from today's (prompt files, memory).")]
    = False,
    held_out: Annotated[list[Path] | None, typer.Option("--held-out", help="Evaluation JSONL whose tasks must "
                                                        "not be exported (refuses; repeatable).")] = None,
    drop_held_out: Annotated[bool, typer.Option("--drop-held-out", help="Drop held-out tasks instead of "
                                                "refusing.")] = False,
    shipped_held_out: Annotated[bool, typer.Option("--shipped-held-out/--no-shipped-held-out", help="Drop "
                                                   "tasks of the shipped eval files (gsm8k dev, svamp, hotpotqa, "
                                                   "musique).")] = True,
) -> None:
    """Turn trajectories into training data, with filters and a held-out guard; prints kept/dropped counts."""
    from ponder.core.settings import load_settings
    from ponder.training.export import NothingExportedError, stats_path_for
    from ponder.training.export import export_sft as run_export
    from ponder.training.export_filters import ExportFilters
    from ponder.training.held_out import build_held_out

    settings = load_settings()
    guard = build_held_out(held_out or [], settings, drop=drop_held_out, shipped=shipped_held_out)
    filters = ExportFilters(solved_only=solved_only, min_score=min_score, voted_only=voted_only, dedup=dedup,
                            agent=agent, exclude_hints=exclude_hints, keep_parse_errors=keep_parse_errors,
                            allow_prompt_drift=allow_prompt_drift, held_out=guard,
                            answers=load_answers(answers) if answers is not None else None)
    try:
        report = run_export(runs, out, filters, fmt, settings)
    except NothingExportedError:
        stats = stats_path_for(out)
        if stats.is_file():
            print_summary(json.loads(stats.read_text()))
        raise
    print_summary(report.stats())


def load_answers(path: Path) -> AnswerKey:
    """The ``--answers`` file as an answer key (rows with ``answer`` and ``id`` and/or ``question``).

    Raises:
        DataError: for a missing file or a row without an answer.
    """
    from ponder.core.errors import DataError
    from ponder.training.export_filters import AnswerKey
    from ponder.training.held_out import question_key, read_rows

    key = AnswerKey()
    for lineno, row in read_rows(path, "answers"):
        if row.get("answer") is None or (row.get("id") is None and not isinstance(row.get("question"), str)):
            raise DataError(f"{path}:{lineno}: an answer row needs 'answer' and 'id' or 'question'")
        if row.get("id") is not None:
            key.by_id[str(row["id"])] = str(row["answer"])
        if isinstance(row.get("question"), str):
            key.by_question[question_key(row["question"])] = str(row["answer"])
    return key


def print_summary(stats: dict) -> None:
    """The kept / dropped counts as a Rich table (the same numbers as FILE.stats.json)."""
    from rich.table import Table

    from ponder.core.console import console

    table = Table(title="export sft: kept and dropped", title_justify="left", min_width=30)
    table.add_column("trajectories")
    table.add_column("count", justify="right")
    table.add_row("read", str(stats["read"]))
    for reason, count in stats["dropped"].items():
        table.add_row(f"dropped: {reason}", str(count))
    table.add_row("[bold]kept[/bold]", f"[bold]{stats['kept']}[/bold]")
    for source, count in stats["kept_by_source"].items():
        table.add_row(f"  from {source}", str(count))
    if stats["notes"].get("prompt_unverified"):
        table.add_row("kept, prompt unverified (run predates prompt fingerprints)",
                      str(stats["notes"]["prompt_unverified"]))
    if stats["torn_lines"]:
        table.add_row("unreadable lines skipped", str(stats["torn_lines"]))
    if stats["missing_trajectories"]:
        table.add_row("results without their trajectory", str(stats["missing_trajectories"]))
    console.print(table)
    if stats["kept"]:
        console.print(f"wrote {stats['kept']} {stats['format']} line(s) to {stats['out']} (counts: "
                      f"{stats['out']}.stats.json)", highlight=False, soft_wrap=True)
