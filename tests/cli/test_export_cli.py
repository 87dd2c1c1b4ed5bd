"""``ponder export sft`` at the CLI: the summary table and stats file, one-line errors, exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.agents.runner import run_agent
from ponder.cli import main
from ponder.core.settings import load_settings
from ponder.models.scripted import ScriptedModel
from ponder.training.examples import iter_examples


@pytest.fixture
def runs(tmp_path: Path, data_dir: Path) -> Path:
    """Two solved runs (2 + 1, 2 + 2) and one that ran out of well-formed replies."""
    settings = load_settings(data_dir=data_dir, out_dir=tmp_path / "runs", cache_dir=tmp_path / "cache")
    for n in (1, 2):
        run_agent(f"What is 2 + {n}?", agent="react", settings=settings,
                  model=ScriptedModel([f"Final Answer: {2 + n}"]), out_dir=tmp_path / "runs")
    run_agent("What is 9 + 9?", agent="react", settings=settings, model=ScriptedModel(["no idea"], repeat_last=True),
              out_dir=tmp_path / "runs")
    return tmp_path / "runs"


def test_export_prints_counts_and_writes_stats(tmp_path: Path, runs: Path, capsys) -> None:
    out = tmp_path / "sft.jsonl"
    assert main(["export", "sft", str(runs), "--out", str(out), "--solved-only"]) == 0
    printed = capsys.readouterr().out
    assert "dropped: parse_errors" in printed and "kept" in printed
    stats = json.loads(Path(f"{out}.stats.json").read_text())
    assert stats["read"] == 3 and stats["kept"] == 2 == len(list(iter_examples(out)))
    assert stats["dropped"] == {"parse_errors": 1}


def test_held_out_refusal_is_one_line_exit_2(tmp_path: Path, runs: Path, capsys) -> None:
    held = tmp_path / "held.jsonl"
    held.write_text(json.dumps({"id": "q1", "question": "What is 2 + 1?"}) + "\n")
    out = tmp_path / "sft.jsonl"
    assert main(["export", "sft", str(runs), "--out", str(out), "--held-out", str(held)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refusing to export: 1 kept episode(s)" in err and "'q1'" in err
    assert not out.exists()
    assert main(["export", "sft", str(runs), "--out", str(out), "--held-out", str(held), "--drop-held-out"]) == 0
    assert "dropped: held_out" in capsys.readouterr().out and len(list(iter_examples(out))) == 1


def test_nothing_kept_exits_1_with_the_counts(tmp_path: Path, runs: Path, capsys) -> None:
    out = tmp_path / "sft.jsonl"
    assert main(["export", "sft", str(runs), "--out", str(out), "--agent", "pal"]) == 1
    captured = capsys.readouterr()
    assert "nothing exported: all 3 trajectories were dropped (agent_filter: 3)" in captured.err
    assert captured.err.count("\n") == 1 and "dropped: agent_filter" in captured.out and not out.exists()


def test_bad_arguments_exit_2(tmp_path: Path, runs: Path, capsys) -> None:
    out = str(tmp_path / "sft.jsonl")
    assert main(["export", "sft", str(tmp_path / "missing"), "--out", out]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["export", "sft", str(runs), "--out", out, "--format", "yaml"]) == 2
    assert main(["export", "sft", str(runs), "--out", out, "--held-out", str(tmp_path / "none.jsonl")]) == 2
    assert "held-out file not found" in capsys.readouterr().err
    bad = tmp_path / "answers.jsonl"
    bad.write_text('{"question": "q"}\n')
    assert main(["export", "sft", str(runs), "--out", out, "--answers", str(bad)]) == 2
    assert "answers.jsonl:1: an answer row needs" in capsys.readouterr().err
    assert main(["export", "sft", "--out", out]) == 2  # no RUNS


def test_torn_lines_are_counted_not_fatal(tmp_path: Path, runs: Path, capsys) -> None:
    with (runs / "trajectories.jsonl").open("a") as fh:
        fh.write("{broken\n")
    out = tmp_path / "sft.jsonl"
    assert main(["export", "sft", str(runs / "trajectories.jsonl"), "--out", str(out), "--format", "atif"]) == 0
    assert "unreadable lines skipped" in capsys.readouterr().out
    assert json.loads(Path(f"{out}.stats.json").read_text())["torn_lines"] == 1
