"""training.figures: the numbers of a before/after comparison come from the eval's own records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.core.errors import DataError
from ponder.envs.metrics import wilson_interval
from ponder.training.figures import eval_figures


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_figures_count_calculator_calls_parse_errors_and_tokens(tmp_path: Path) -> None:
    calc = {"kind": "action", "action": "calculator"}
    _write(tmp_path / "trajectories.jsonl", [
        {"id": "t1", "steps": [calc, calc, {"kind": "final"}]},
        {"id": "t2", "steps": [{"kind": "parse_error"}, calc, {"kind": "final"}]},
        {"id": "t3", "steps": [{"kind": "parse_error"}, {"kind": "parse_error"}]},
        {"id": "t4", "steps": [{"kind": "action", "action": "python"}, {"kind": "final"}]},
    ])
    usage = {"prompt_tokens": 100, "completion_tokens": 20}
    _write(tmp_path / "results.jsonl", [
        {"suite": "svamp", "success": True, "status": "solved", "usage": usage, "trajectory_ids": ["t1"]},
        {"suite": "svamp", "success": False, "status": "solved", "usage": usage, "trajectory_ids": ["t2"]},
        {"suite": "svamp", "success": False, "status": "parse_error", "usage": usage, "trajectory_ids": ["t3"]},
        {"suite": "svamp", "success": True, "status": "solved", "usage": usage, "trajectory_ids": ["t4"]},
    ])
    (tmp_path / "results.jsonl").open("a").write('{"suite": "svamp", "succ')  # a torn last line is skipped
    (tmp_path / "run.json").write_text(json.dumps({"model": "llamacpp:m.gguf"}))
    figures = eval_figures(tmp_path)
    assert (figures.episodes, figures.solved, figures.model) == (4, 2, "llamacpp:m.gguf")
    assert figures.ci95 == wilson_interval(2, 4)
    assert figures.calculator_per_episode == 3 / 4
    assert figures.parse_error_rate == 1 / 4 and figures.any_parse_error_rate == 2 / 4
    assert figures.tokens_per_episode == 120
    assert figures.line().startswith("svamp  2/4 = 50.0 %")


def test_a_folder_without_results_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        eval_figures(tmp_path)
    (tmp_path / "results.jsonl").write_text("")
    with pytest.raises(DataError, match="no results"):
        eval_figures(tmp_path)
