"""``ponder export gold``: GSM8K training solutions as validated ReAct or PAL training conversations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer


def export_gold(
    source: Annotated[Path | None, typer.Argument(help="GSM8K-style JSONL with 'solution' fields (default: the "
                                                       "shipped data/gsm8k/train.jsonl).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output chat-format JSONL.")] = Path("gold.jsonl"),
    agent: Annotated[Literal["react", "pal"], typer.Option("--agent", "-a", help="react: calculator steps; pal: "
                                                           "a solution() program.")] = "react",
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N rows.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Convert annotated solutions (<<48/2=24>>) into training data, replayed through ponder's tools.

    A conversion whose replay does not reproduce every stated result and the gold answer is dropped and counted;
    the counts are printed and written to OUT.stats.json.
    """
    from rich.progress import Progress

    from ponder.core.console import console
    from ponder.core.io import write_atomic
    from ponder.core.settings import load_settings
    from ponder.training.examples import write_examples
    from ponder.training.gold import gold_examples

    settings = load_settings()
    path = source or Path(settings.data_dir) / "gsm8k" / "train.jsonl"
    with Progress(console=console, disable=quiet, transient=True) as bar:
        task = bar.add_task(f"converting {path.name} ({agent})", total=limit)
        examples, stats = gold_examples(path, agent, limit=limit, settings=settings,
                                        progress=lambda s: bar.update(task, completed=s.read))
    if not examples:
        console.print(f"nothing converted from {path} (dropped: {stats.dropped})", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    write_examples(out, examples)
    write_atomic(Path(f"{out}.stats.json"), json.dumps(stats.model_dump(), indent=2) + "\n")
    dropped = ", ".join(f"{k} {v}" for k, v in sorted(stats.dropped.items())) or "none"
    console.print(f"{stats.kept} of {stats.read} solutions converted ({agent}, {stats.tool_calls} tool calls "
                  f"replayed) -> {out}; dropped: {dropped}", highlight=False, soft_wrap=True)
