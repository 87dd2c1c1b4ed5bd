"""``ponder run`` and ``ponder chat`` with ``--mcp``: real ponder processes using real MCP servers, and no server
process left behind when ponder exits, is interrupted (SIGINT) or terminated (SIGTERM)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mcp_helpers import processes_with, wait_gone

PONDER = Path(sys.executable).parent / "ponder"


def toml_table(name: str, config: dict) -> str:
    lines = [f"[mcp.servers.{name}]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in config.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def cli_env(offline_env, tmp_path):
    """``cli_env(**servers)``: the environment of a ponder process whose ponder.toml configures ``servers``."""

    def make(**servers: dict) -> dict[str, str]:
        config = tmp_path / "ponder.toml"
        config.write_text("".join(toml_table(name, table) for name, table in servers.items()))
        return {**offline_env, "PONDER_CONFIG": str(config)}

    return make


SUM_SCRIPT = ('Thought: add them\nAction: get-sum\nAction Input: {"a": 19, "b": 23}', "Thought: done\nFinal Answer: 42")


def test_ponder_run_uses_the_everything_servers_tool(everything_server, cli_env, write_script, tmp_path, marker):
    spec = write_script(tmp_path / "script.jsonl", *SUM_SCRIPT)
    out = subprocess.run([str(PONDER), "run", "What is 19 + 23?", "--mcp", "everything", "-m", spec, "--json"],
                         env=cli_env(everything=everything_server), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["answer"] == "42" and result["usage"]["tool_calls"] == 1
    record = json.loads(Path(result["trajectory_path"]).read_text().splitlines()[-1])
    step = record["steps"][0]
    assert (step["action"], step["observation"]) == ("get-sum", "The sum of 19 and 23 is 42.")  # the server's answer
    assert not wait_gone(marker, 5)


def test_ponder_chat_uses_the_everything_servers_tool(everything_server, cli_env, write_script, tmp_path, marker):
    spec = write_script(tmp_path / "script.jsonl", *SUM_SCRIPT,
                        'Action: echo\nAction Input: {"message": "second turn"}', "Final Answer: echoed")
    out = subprocess.run([str(PONDER), "chat", "--mcp", "everything", "-m", spec, "--verbose"],
                         input="What is 19 + 23?\nEcho something\n", env=cli_env(everything=everything_server),
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Observation: The sum of 19 and 23 is 42." in out.stdout
    assert "Observation: Echo: second turn" in out.stdout  # the second turn reuses the connection
    assert out.stderr.count("MCP server 'everything'") <= 1 and not wait_gone(marker, 5)


def test_ponder_eval_gives_the_agent_the_servers_tools(everything_server, cli_env, write_script, tmp_path, monkeypatch,
                                                       capsys):
    from ponder.cli.entry import main

    spec = write_script(tmp_path / "script.jsonl", *SUM_SCRIPT)
    monkeypatch.setenv("PONDER_CONFIG", cli_env(everything=everything_server)["PONDER_CONFIG"])
    out = tmp_path / "eval"
    assert main(["eval", "gsm8k", "--limit", "1", "--mcp", "everything", "-m", spec, "--out", str(out)]) == 0
    record = json.loads((out / "trajectories.jsonl").read_text().splitlines()[0])
    assert record["steps"][0]["observation"] == "The sum of 19 and 23 is 42."


def test_a_server_that_fails_to_start_is_one_line_and_exit_2(script_server, cli_env, write_script, tmp_path,
                                                            monkeypatch, capsys):
    from ponder.cli.entry import main

    spec = write_script(tmp_path / "script.jsonl", "Final Answer: x")
    monkeypatch.setenv("PONDER_CONFIG", cli_env(bad=script_server("exit"))["PONDER_CONFIG"])
    assert main(["run", "q", "--mcp", "bad", "-m", spec, "--json", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ponder: error: MCP server 'bad'")
    assert "refusing to start" in lines[0] and "Traceback" not in err


def _default_sigint() -> None:
    """In the child, before exec: Ctrl-C kills as usual even where this test runs with SIGINT ignored (a shell's
    background job or ``nohup`` passes SIG_IGN down, and Python then installs no KeyboardInterrupt handler)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, -signal.SIGTERM)])
def test_an_interrupted_run_leaves_no_server_running(sig, code, script_server, cli_env, write_script, tmp_path,
                                                      marker):
    spec = write_script(tmp_path / "script.jsonl", "Action: sleep\nAction Input: 60", "Final Answer: x")
    config = script_server(call_timeout=120, tools=["sleep", "echo"])
    config["args"] += ["--flag-dir", str(tmp_path)]
    proc = subprocess.Popen([str(PONDER), "run", "q", "--mcp", "t", "-m", spec, "--json"], env=cli_env(t=config),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)  # noqa: PLW1509 - a test's child, no threads to race
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "sleeping").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert (tmp_path / "sleeping").exists(), f"the tool call never started: {proc.communicate()[1][-2000:]}"
        assert processes_with(marker)
        start = time.monotonic()
        proc.send_signal(sig)
        assert proc.wait(30) == code
        assert time.monotonic() - start < 15
        assert not wait_gone(marker, 5)  # the server, in a session of its own, did not outlive ponder
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
