import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ponder.cli import main

DOCS = Path(__file__).resolve().parents[2] / "docs" / "graphs"


def script(tmp_path, *texts):
    path = tmp_path / "script.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in texts))
    return f"scripted:{path}"


def test_run_json(tmp_path, capsys):
    spec = script(tmp_path, "Thought: add\nAction: calculator\nAction Input: 2+3", "Final Answer: 5")
    rc = main(["run", "What is 2+3?", "--model", spec, "--out", str(tmp_path / "out"), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["answer"] == "5" and out["status"] == "solved" and out["steps"] == 2
    assert out["usage"]["tool_calls"] == 1 and out["usage"]["model_calls"] == 2
    assert Path(out["trajectory_path"]).is_file()
    record = json.loads(Path(out["trajectory_path"]).read_text())
    assert record["steps"][0]["observation"] == "5"


def test_run_pretty_prints_steps_and_answer(tmp_path, capsys):
    spec = script(tmp_path, "Thought: add\nAction: calculator\nAction Input: 2+3", "Final Answer: 5")
    assert main(["run", "What is 2+3?", "--model", spec, "--out", str(tmp_path), "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "Thought: add" in out and "Action: calculator" in out and "Observation: 5" in out
    assert "Final Answer" in out and "status solved" in out


def test_run_max_steps_flag(tmp_path, capsys):
    spec = script(tmp_path, *["Action: calculator\nAction Input: 1+1"] * 3)
    assert main(["run", "q", "--model", spec, "--max-steps", "2", "--json", "--out", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "max_steps" and out["steps"] == 2 and out["answer"] is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "q", "--model", "gpt5"], "bad model spec"),
        (["run", "q", "--agent", "cot"], "Invalid value for '--agent' / '-a': 'cot' is not one of 'react', 'pal'"),
        (["run", "q", "--max-steps", "lots"], "Invalid value for '--max-steps'"),
        (["run", "q", "--temperature", "9"], "temperature"),
        (["run", "q", "--bogus"], "No such option: --bogus"),
        (["run"], "Missing argument"),
        (["graph", "tot"], "'tot' is not one of 'react', 'pal', 'self_consistency'"),
        (["run", "q", "--constrained", "maybe"], "'maybe' is not one of 'auto', 'on', 'off'"),
        (["eval", "gsm8k", "--constrained", "yes"], "'yes' is not one of 'auto', 'on', 'off'"),
        (["chat", "--constrained", "1"], "'1' is not one of 'auto', 'on', 'off'"),
        (["nosuchcommand"], "No such command"),
        (["run", "q", "--model", "scripted:/no/such/file.jsonl"], "scripted model file not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ponder: error:") and message in err
    assert len(err.splitlines()) == 1


def test_constrained_on_with_a_backend_without_grammars_says_so_and_runs_free(tmp_path, capsys, caplog):
    spec = script(tmp_path, "Thought: done\nFinal Answer: 2")
    assert main(["run", "q", "--model", spec, "--constrained", "on", "--json", "--out", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["answer"] == "2"
    assert [r.levelname for r in caplog.records if "does not support grammars" in r.getMessage()] == ["WARNING"]
    record = json.loads((tmp_path / "trajectories.jsonl").read_text())
    assert "grammar" not in record["metadata"]


def test_console_script_bad_flag_no_traceback(tmp_path):
    exe = Path(sys.executable).parent / "ponder"
    out = subprocess.run([str(exe), "run", "q", "--model", "nope"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PONDER_CONFIG": str(tmp_path / "none.toml")})
    assert out.returncode == 2
    assert out.stderr.startswith("ponder: error: bad model spec") and "Traceback" not in out.stderr


def test_runtime_failure_exit_1(tmp_path, capsys):
    spec = script(tmp_path, "Thought: thinking")  # exhausted after one reply
    rc = main(["run", "q", "--model", spec, "--out", str(tmp_path), "--max-steps", "3"])
    assert rc == 2  # a script that runs out is bad input (DataError)
    assert "scripted model exhausted" in capsys.readouterr().err
    record = json.loads((tmp_path / "trajectories.jsonl").read_text())
    assert record["status"] == "error"


@pytest.mark.parametrize("agent", ["react", "pal", "self_consistency"])
def test_graph_diagram_matches_docs_snapshot(agent, capsys):
    assert main(["graph", agent]) == 0
    printed = capsys.readouterr().out
    assert "graph TD" in printed and "__start__" in printed
    hint = f"graph changed: run `ponder graph {agent} > docs/graphs/{agent}.mmd`"
    assert (DOCS / f"{agent}.mmd").read_text() == printed, hint


def test_tools_none_means_no_built_in_tools() -> None:
    from ponder.cli.run import tool_list

    assert tool_list("none") == [] and tool_list(" None ") == []
    assert tool_list("calculator, python") == ["calculator", "python"] and tool_list(None) is None
