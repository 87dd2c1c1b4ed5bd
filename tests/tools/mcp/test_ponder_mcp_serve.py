"""ponder's agent using ``ponder mcp serve`` as its MCP server, over stdio and over streamable HTTP."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mcp_helpers import free_port, wait_listening

from ponder.agents.runner import run_agent
from ponder.core.settings import load_settings
from ponder.models.scripted import ScriptedModel

PONDER = Path(sys.executable).parent / "ponder"
SCRIPT = ["Thought: compute\nAction: p_calculator\nAction Input: 6 * 7",
          'Thought: check in code\nAction: p_python\nAction Input: {"code": "print(6 * 7)"}',
          "Thought: done\nFinal Answer: 42"]


def run_with(server: dict, tmp_path: Path, script: list[str]):
    settings = load_settings(mcp={"servers": {"p": {**server, "prefix": "p_", "startup_timeout": 60}}},
                             mcp_servers=["p"], tools=["calculator"], out_dir=tmp_path)
    return run_agent("What is 6 * 7?", settings=settings, model=ScriptedModel(script), write=False)


@pytest.mark.server  # starts ponder mcp serve (a real server process, ~2 s)
def test_the_agent_uses_ponder_mcp_serve_over_stdio(tmp_path, marker):
    server = {"command": str(PONDER), "args": ["mcp", "serve", "--tools", "calculator,python", "--namespace", marker]}
    traj = run_with(server, tmp_path, SCRIPT)
    assert traj.final_answer == "42" and traj.status == "solved"
    assert [(s.action, s.observation) for s in traj.steps[:2]] == [("p_calculator", "42"), ("p_python", "42")]


@pytest.fixture
def ponder_http_server(marker: str):
    """``ponder mcp serve --transport http`` on a free port of 127.0.0.1 (killed at the end); yields its URL."""
    port = free_port()
    proc = subprocess.Popen([str(PONDER), "mcp", "serve", "--transport", "http", "--port", str(port),
                             "--tools", "calculator", "--namespace", marker],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_listening(proc, port, "ponder mcp serve", timeout=60)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        from ponder.tools.mcp import close_mcp

        close_mcp()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_the_agent_uses_ponder_mcp_serve_over_http(ponder_http_server, tmp_path):
    traj = run_with({"url": ponder_http_server}, tmp_path, [SCRIPT[0], SCRIPT[2]])
    assert traj.final_answer == "42"
    assert (traj.steps[0].action, traj.steps[0].observation) == ("p_calculator", "42")
