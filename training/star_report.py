"""``report.md`` of a STaR run: per round, the data kept, the training run and the held-out evaluations.

Every number comes from the stage records in ``star.json`` (the evaluations' figures from their own run folders:
:func:`ponder.training.figures.eval_figures`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ponder.core.io import write_atomic

_DATA_HEAD = ("| round | questions | samples/q | correct samples | questions solved | rationalized | seed | "
              "examples | train steps | train tokens | train s |")
_EVAL_HEAD = ("| round | suite | accuracy | 95 % CI (Wilson) | solved | calculator/episode | parse_error | "
              "any malformed step | tokens/episode |")


def _rounds(summary: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    return sorted((int(k), v) for k, v in summary.get("rounds", {}).items())


def data_rows(summary: dict[str, Any]) -> list[str]:
    """One table row per trained round (a stage not run yet shows ``-``)."""
    rows = []
    for round_no, stages in _rounds(summary):
        if round_no == 0:
            continue
        data, train, sample = stages.get("data", {}), stages.get("train", {}), stages.get("sample", {})
        cells = [round_no, data.get("questions", "-"), sample.get("samples", "-"), data.get("correct_samples", "-"),
                 data.get("questions_solved", "-"), data.get("rationalized", "-"), data.get("seed_examples", "-"),
                 data.get("examples", "-"), train.get("steps", "-"), _int(train.get("train_tokens")),
                 _int(train.get("seconds"))]
        rows.append("| " + " | ".join(str(c) for c in cells) + " |")
    return rows


def eval_rows(summary: dict[str, Any]) -> list[str]:
    """One table row per round and held-out suite."""
    rows = []
    for round_no, stages in _rounds(summary):
        for name, fig in sorted((k.removeprefix("eval-"), v) for k, v in stages.items() if k.startswith("eval-")):
            low, high = fig["ci95"]
            cells = [round_no, name, f"{100 * fig['accuracy']:.1f} %", f"[{100 * low:.1f}, {100 * high:.1f}]",
                     f"{fig['solved']}/{fig['episodes']}", f"{fig['calculator_per_episode']:.2f}",
                     f"{100 * fig['parse_error_rate']:.1f} %", f"{100 * fig['any_parse_error_rate']:.1f} %",
                     f"{fig['tokens_per_episode']:,.0f}"]
            rows.append("| " + " | ".join(str(c) for c in cells) + " |")
    return rows


def _int(value: Any) -> str:
    return f"{int(value):,}" if isinstance(value, int | float) else "-"


def render_report(summary: dict[str, Any]) -> str:
    """The Markdown report of ``summary`` (``star.json``)."""
    config = summary.get("config", {})
    lines = [f"# STaR on {config.get('suite')}", "",
             f"Base `{config.get('base')}`, {config.get('rounds')} round(s), {config.get('samples')} sample(s) per "
             f"training question at temperature {config.get('temperature')}, rationalization "
             f"{'on' if config.get('rationalize') else 'off'}; every round fine-tunes the base on that round's data. "
             f"Round 0 is the base model. Updated {summary.get('updated', '')}.", "",
             "## Data and training", "", _DATA_HEAD, "|" + " --- |" * (_DATA_HEAD.count("|") - 1), *data_rows(summary),
             "", "## Held-out evaluation (greedy)", "", _EVAL_HEAD, "|" + " --- |" * (_EVAL_HEAD.count("|") - 1),
             *eval_rows(summary), ""]
    return "\n".join(lines)


def write_report(out: Path, summary: dict[str, Any]) -> Path:
    """Write ``<out>/report.md``; returns its path."""
    path = out / "report.md"
    write_atomic(path, render_report(summary))
    return path
