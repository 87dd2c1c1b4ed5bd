"""``ponder eval`` and ``ponder report`` from the command line (scripted model; one integration test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.cli import main
from ponder.core.viewlinks import run_url
from ponder.envs.base import EpisodeResult


def script(tmp_path: Path, *texts: str) -> str:
    path = tmp_path / "script.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in texts))
    return f"scripted:{path}"


def results(out: Path) -> list[EpisodeResult]:
    return [EpisodeResult.model_validate_json(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_eval_gsm8k_scripted(tmp_path, capsys, data_dir):
    spec = script(tmp_path, "Thought: I now know the final answer\nFinal Answer: 18", "Final Answer: 4")
    out = tmp_path / "run"
    rc = main(["eval", "gsm8k", "--limit", "2", "--model", spec, "--out", str(out), "--seed", "3"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "success rate (Wilson 95% CI)   50.0% [9.5, 90.5]" in captured.out
    assert "2 episodes played now" in captured.out
    last = captured.out.rstrip("\n").splitlines()[-1]  # one last line: where everything is, and how to browse it
    assert last.startswith("2 episodes played now") and f"report {out / 'report.html'}" in last
    assert last.endswith(f"; view: ponder view {out} → {run_url(out)}")
    assert "[2/2] gsm8k gsm8k-test-0001 FAIL wrong_answer" in captured.err  # plain progress lines off a TTY
    recs = results(out)
    assert [r.success for r in recs] == [True, False] and recs[0].policy_kind == "agent"
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["settings"]["seed"] == 3 and manifest["model"] == spec
    assert (out / "report.html").is_file()

    assert main(["eval", "gsm8k", "--limit", "2", "--model", spec, "--out", str(out), "--resume"]) == 0
    assert "0 episodes played now, 2 in the run" in capsys.readouterr().out
    assert len(results(out)) == 2


def test_eval_policy_and_data_flags(tmp_path, capsys):
    data = tmp_path / "mine.jsonl"
    data.write_text('{"id": "a", "question": "1+1?", "answer": "2"}\n{"id": "b", "question": "2+2?", "answer": "4"}\n')
    out = tmp_path / "gold"
    assert main(["eval", "svamp", "--data", str(data), "--policy", "gold", "--out", str(out), "-q"]) == 0
    captured = capsys.readouterr()
    assert "harness check — not an agent result" in captured.out and captured.err == ""
    assert [r.episode_id for r in results(out)] == ["a", "b"]



@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")  # the run's name, drawn in the report's plots
def test_the_summary_line_is_terminal_safe(tmp_path, capsys):
    data = tmp_path / "mine.jsonl"
    data.write_text('{"id": "a", "question": "1+1?", "answer": "2"}\n')
    out = tmp_path / "evil\x1b]0;pwned\x07run"
    assert main(["eval", "svamp", "--data", str(data), "--policy", "gold", "--out", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "\x1b" not in printed and "\x07" not in printed
    last = printed.rstrip("\n").splitlines()[-1]
    assert "; view: ponder view " in last and last.endswith(f" → {run_url(out)}") and "]0;pwnedrun" in last


def test_report_command(tmp_path, capsys, data_dir):
    for name in ("a", "b"):
        assert main(["eval", "gsm8k", "--limit", "3", "--policy", "gold", "--out", str(tmp_path / name), "-q"]) == 0
    capsys.readouterr()
    assert main(["report", str(tmp_path / "a")]) == 0
    assert "## Summary" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp")]) == 0
    assert "# Comparison of evaluation runs" in capsys.readouterr().out
    assert (tmp_path / "cmp" / "comparison.html").is_file()


def test_eval_passes_the_whole_run_spec_to_the_suite(tmp_path, capsys, data_dir):
    """--wave (an option the suites once never saw) reaches the vote: a first wave of 3 samples, of which 2 agreeing
    ones settle it (a 2-2 tie would go to the answer voted first); the third is discarded if it was still running."""
    spec = script(tmp_path, *["Final Answer: 18"] * 3)
    out = tmp_path / "run"
    argv = ["eval", "gsm8k", "--limit", "1", "--model", spec, "--out", str(out), "--samples", "4", "--early-stop",
            "--wave", "3", "-q"]
    assert main(argv) == 0, capsys.readouterr().err
    (result,) = results(out)
    assert result.success and result.metadata["stop_reason"] == "settled"
    assert result.samples + result.metadata["samples_discarded"] == 3  # the wave of 3 (default: 2) was launched
    options = json.loads((out / "run.json").read_text())["options"]
    assert (options["samples"], options["wave"], options["early_stop"]) == (4, 3, True)


@pytest.mark.parametrize(("argv", "message"), [
    (["eval", "nosuch"], "unknown suite 'nosuch'"),
    (["eval", "gsm8k", "--agent", "cot"], "'--agent' / '-a': 'cot' is not one of 'react', 'pal'"),
    (["eval", "gsm8k", "--policy", "walkthrough"], "not offered by suite 'gsm8k'"),
    (["eval", "gsm8k", "--resume"], "--resume needs --out"),
    (["eval", "gsm8k", "--data", "/no/such.jsonl"], "data file not found: /no/such.jsonl"),
    (["eval", "gsm8k", "--samples", "0"], "Invalid value for '--samples'"),
    (["eval", "gsm8k", "--workers", "lots"], "Invalid value for '--workers'"),
    (["eval", "gsm8k", "--memory", "lots"], "Invalid value for '--memory': 'lots' is not one of"),
    (["eval", "gsm8k", "--budget", "9t"], "add --samples"),
    (["eval", "gsm8k", "--samples", "3", "--budget", "lots"], "invalid budget"),
    (["eval", "gsm8k", "--samples", "3", "--early-stop", "--stop-rule", "vibes"],
     "Invalid value for '--stop-rule': 'vibes' is not one of 'certain', 'beta', 'esc'"),
    (["eval", "humaneval", "--trials", "2"], "humaneval measures pass@1"),
    (["eval", "gsm8k", "--model", "gpt5"], "bad model spec"),
    (["eval"], "Missing argument"),
    (["report", "/no/such/run"], "is not an evaluation run"),
])
def test_bad_arguments_one_line_exit_2(tmp_path, capsys, argv, message):
    needs_out = argv[0] == "eval" and len(argv) > 1 and "--resume" not in argv
    assert main([*argv, *(["--out", str(tmp_path / "o")] if needs_out else [])]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o" / "results.jsonl").exists()


def test_malformed_data_row_exit_2_with_line(tmp_path, capsys):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"id": "a", "question": "q", "answer": "1"}\n{"id": "b", "answer": "1"}\n')
    assert main(["eval", "gsm8k", "--data", str(data), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{data}:2: bad row: question: Field required" in err


def test_existing_run_without_resume_exit_2(tmp_path, capsys, data_dir):
    out = tmp_path / "o"
    assert main(["eval", "gsm8k", "--limit", "1", "--policy", "gold", "--out", str(out), "-q"]) == 0
    assert main(["eval", "gsm8k", "--limit", "1", "--policy", "gold", "--out", str(out), "-q"]) == 2
    assert "pass --resume" in capsys.readouterr().err


@pytest.mark.integration
def test_eval_gsm8k_on_the_embedded_model(tmp_path, capsys, data_dir):
    """Record validity and a floor, not accuracy. Measured (greedy ReAct, 3 steps; llama.cpp and transformers
    alike): both questions end ``solved`` with a well-formed (wrong) Final Answer after one malformed reply.
    Floor: at least one of the two reaches a Final Answer that is scored; no run ends in ``error``."""
    from ponder.core.io import read_jsonl
    from ponder.core.records import Trajectory

    out = tmp_path / "real"
    assert main(["eval", "gsm8k", "--limit", "2", "--out", str(out), "--max-steps", "3", "-q"]) == 0
    recs = results(out)
    assert [r.episode_id for r in recs] == ["gsm8k-test-0000", "gsm8k-test-0001"]
    for r in recs:
        assert r.policy_kind == "agent" and r.usage.model_calls >= 1 and r.usage.total_tokens > 0
        assert r.success == (r.failure == "") and len(r.trajectory_ids) == 1
    trajs = {t.id: t for t in read_jsonl(out / "trajectories.jsonl", Trajectory)}
    assert all(trajs[r.trajectory_ids[0]].status in ("solved", "max_steps", "parse_error") for r in recs)
    scored = [r for r in recs if r.failure in ("", "wrong_answer") and r.prediction]
    assert scored, [[(s.kind, s.raw) for s in trajs[r.trajectory_ids[0]].steps] for r in recs]
    assert all(trajs[r.trajectory_ids[0]].steps[-1].kind == "final" for r in scored)
    assert json.loads((out / "run.json").read_text())["model"] == "embedded"
