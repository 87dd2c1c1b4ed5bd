"""Suite-level adaptive allocation end to end (``ponder eval --strategy adaptive --budget-total``) on the synthetic
mixed-difficulty suite with a scripted model: within the total budget, the budget goes to the hard episodes,
the allocation is recorded and reported, resume replays nothing, and it beats uniform allocation."""

from __future__ import annotations

import json

import pytest

from ponder.core.errors import ConfigError
from ponder.core.io import read_jsonl
from ponder.core.records import Trajectory
from ponder.core.settings import load_settings
from ponder.envs.adaptive import ALLOCATION_FILE, FIRST_PASS_DIR, run_adaptive_eval, suite_budget
from ponder.envs.adaptive_synthetic import OracleVerifier, questions, scripted_reply, simulate_uniform, synthetic_rows
from ponder.envs.context import EvalOptions
from ponder.envs.registry import get_suite
from ponder.graphs.verifiers.base import VerifyContext
from ponder.models.scripted import ScriptedModel

QS = questions(5)  # 20 questions, 5 per level


@pytest.fixture
def setup(tmp_path, monkeypatch):
    import ponder.graphs.verifiers.registry as registry

    monkeypatch.setattr(registry, "build_verifier", lambda *a, **k: OracleVerifier(QS, tokens=5))
    monkeypatch.setattr(registry, "verify_context",
                        lambda ctx: VerifyContext(model=ctx.model, settings=ctx.settings))
    data = tmp_path / "synthetic.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows(QS)))
    settings = load_settings(out_dir=tmp_path / "runs", cache_dir=tmp_path / "cache", seed=0)
    return settings, data


def evaluate(setup, out, budget: str, **kw):
    settings, data = setup
    options = EvalOptions(suite="gsm8k", data=data, out_dir=out, strategy="adaptive", budget_total=budget, **kw)
    return run_adaptive_eval(get_suite("gsm8k"), options, settings, model=ScriptedModel(scripted_reply(QS)),
                             quiet=True)


def test_adaptive_suite_within_budget_beats_uniform(setup, tmp_path):
    probe = evaluate(setup, tmp_path / "probe", "1t")  # budget below the first pass: no extra samples at all
    assert all(r.samples == 2 for r in probe.results)
    per_sample = max(r.usage.total_tokens for r in probe.results) // 2
    budget = 4 * per_sample * len(QS)
    run = evaluate(setup, tmp_path / "run", f"{budget}t")
    alloc = json.loads((run.out_dir / ALLOCATION_FILE).read_text())
    spent = sum(r.usage.total_tokens for r in run.results)
    assert spent == alloc["spent_tokens"] <= budget and alloc["within_budget"]
    assert alloc["first_pass_tokens"] == sum(r.usage.total_tokens for r in probe.results)
    rows = {row["episode_id"]: row for row in alloc["episodes"]}
    level = {f"syn{q.number:03d}": q.level for q in QS}
    easy = [row for row in rows.values() if row["difficulty"] == "easy"]
    assert easy and all(row["samples"] == 2 and row["planned_extra"] == 0 for row in easy)
    mean = {lv: sum(row["samples"] for e, row in rows.items() if level[e] == lv) / 5 for lv in ("easy", "hard")}
    assert mean["hard"] > mean["easy"]
    accuracy = sum(r.success for r in run.results) / len(QS)
    uniform, _ = simulate_uniform(QS, 4)  # the same seeds and verifier, 4 samples each: the same tokens
    assert accuracy >= uniform
    assert (run.out_dir / FIRST_PASS_DIR / "results.jsonl").is_file()
    saved = {t.id: t for t in read_jsonl(run.out_dir / "trajectories.jsonl", Trajectory)}
    for r in run.results:  # the chosen run (a first-pass one for easy episodes) is in the final run's records
        assert r.trajectory_ids and r.prediction in {saved[t].final_answer for t in r.trajectory_ids}
    report = (run.out_dir / "report.html").read_text()
    assert "Adaptive allocation" in report and "hard" in report


def test_resume_replays_nothing_and_keeps_the_plan(setup, tmp_path):
    run = evaluate(setup, tmp_path / "run", "3000t")
    plan = (run.out_dir / "adaptive_plan.json").read_text()
    again = evaluate(setup, tmp_path / "run", "3000t", resume=True)
    assert again.new == 0 and (run.out_dir / "adaptive_plan.json").read_text() == plan
    with pytest.raises(ConfigError, match="already exists"):
        evaluate(setup, tmp_path / "run", "3000t")


def test_budget_total_errors():
    with pytest.raises(ConfigError, match="applies to --strategy adaptive"):
        EvalOptions(suite="gsm8k", strategy="sc", samples=3, budget_total="1000t")
    with pytest.raises(ConfigError, match="needs --budget-total"):
        suite_budget(EvalOptions(suite="gsm8k", strategy="adaptive"))
    with pytest.raises(ConfigError, match="applies to --strategy adaptive"):
        suite_budget(EvalOptions(suite="gsm8k"))


def test_budget_in_samples(setup, tmp_path):
    run = evaluate(setup, tmp_path / "run", "60s")  # 20 questions: 40 first-pass samples, 20 to allocate
    alloc = json.loads((run.out_dir / ALLOCATION_FILE).read_text())
    assert sum(r.samples for r in run.results) == alloc["spent_samples"] == 60 and alloc["within_budget"]
    assert alloc["planned_extra_samples"] == 20 and alloc["budget"] == "60s"


def test_cli_eval_adaptive_and_report_frontier(tmp_path, capsys, data_dir):
    from ponder.cli import main

    script = tmp_path / "script.jsonl"
    script.write_text("".join(json.dumps("Final Answer: 18") + "\n" for _ in range(40)))
    common = ["eval", "gsm8k", "--limit", "2", "--model", f"scripted:{script}", "--quiet"]
    out = tmp_path / "adaptive"
    assert main([*common, "--strategy", "adaptive", "--verifier", "agreement", "--budget-total", "2000t",
                 "--out", str(out)]) == 0
    alloc = json.loads((out / ALLOCATION_FILE).read_text())
    assert alloc["within_budget"] and alloc["spent_tokens"] <= 2000 and len(alloc["episodes"]) == 2
    assert main([*common, "--out", str(tmp_path / "single")]) == 0
    capsys.readouterr()
    assert main(["report", str(out), str(tmp_path / "single"), "--out", str(tmp_path / "cmp")]) == 0
    printed = capsys.readouterr().out
    assert "## Accuracy vs tokens" in printed and "| adaptive (2000t) | adaptive | 2 |" in printed
    assert "| single | single | 2 | 50.0% [9.5, 90.5] |" in printed
