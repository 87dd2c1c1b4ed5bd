"""``ponder eval SUITE --strategy ... --budget-total ...``: the options reach the run, the run records its strategy."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from ponder.cli import main
from ponder.graphs.strategies.base import Candidate, Outcome, StrategyContext
from ponder.graphs.strategies.single import Single


def script(tmp_path: Path, *texts: str) -> str:
    path = tmp_path / "script.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in texts))
    return f"scripted:{path}"


@pytest.fixture
def lats(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """``LATS`` replaced by a fake that runs the agent once; returns the specs it was built with."""
    specs: list[Any] = []

    class FakeLATS:
        def __init__(self, spec: Any) -> None:
            specs.append(spec)

        def run(self, task: str, ctx: StrategyContext, label: str | None = None) -> Outcome:
            one = Single().run(task, ctx, label)
            return Outcome.of("lats", task, [one], one, candidates=[Candidate(answer=one.answer, score=1.0)])

    monkeypatch.setitem(sys.modules, "ponder.graphs.search.lats", types.SimpleNamespace(LATS=FakeLATS))
    return specs


def test_eval_runs_the_strategy_and_records_it(lats, tmp_path, capsys, data_dir):
    model = script(tmp_path, "Final Answer: 18", "Final Answer: 4")
    out = tmp_path / "run"
    argv = ["eval", "gsm8k", "--limit", "2", "--model", model, "--out", str(out), "--strategy", "lats",
            "--budget", "20000t", "--verifier", "self,env", "-q"]
    assert main(argv) == 0
    assert re.search(r"^strategy +lats$", capsys.readouterr().out, re.M)  # the summary names it
    assert [(s.strategy_name, s.budget, s.verifier) for s in lats] == [("lats", "20000t", "self,env")] * 2
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["strategy"] == "lats" and manifest["options"]["verifier"] == "self,env"
    assert "| strategy | lats |" in (out / "report.md").read_text()


def test_plain_eval_records_single(tmp_path, capsys, data_dir):
    model = script(tmp_path, "Final Answer: 18")
    assert main(["eval", "gsm8k", "--limit", "1", "--model", model, "--out", str(tmp_path / "r"), "-q"]) == 0
    assert json.loads((tmp_path / "r" / "run.json").read_text())["strategy"] == "single"


@pytest.mark.parametrize(("argv", "message"), [
    (["--strategy", "sc", "--budget-total", "200000t"],
     "--budget-total applies to --strategy adaptive (got --strategy sc)"),
    (["--budget-total", "200000t"], "--budget-total applies to --strategy adaptive (got --strategy single)"),
    (["--strategy", "adaptive", "--budget-total", "lots"], "--budget-total: invalid budget 'lots'"),
    (["--strategy", "bogus"], "'bogus' is not one of"),
    (["--strategy", "beam", "--rounds", "2"], "--rounds applies to --strategy refine"),
    (["--policy", "gold", "--strategy", "lats"],
     "--strategy, --samples, --trials and --memory apply to --policy agent"),
])
def test_bad_eval_options_are_one_line_and_exit_2(argv, message, tmp_path, capsys, data_dir):
    assert main(["eval", "gsm8k", "--limit", "1", "--model", "scripted:/dev/null", "--out", str(tmp_path / "r"),
                 *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ponder: error:") and message in err and len(err.splitlines()) == 1
