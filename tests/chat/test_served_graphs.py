"""``langgraph dev`` serves langgraph.json's graphs; the real langgraph-sdk client calls them (scripted model)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LANGGRAPH = Path(sys.executable).parent / "langgraph"

#: Keeps ``langgraph dev`` off the network: no analytics, no PyPI version check, no LangSmith tracing.
OFFLINE_ENV = {"LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGGRAPH_NO_VERSION_CHECK": "true", "LANGSMITH_TRACING": "false"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_langgraph_json_names_the_served_factories() -> None:
    config = json.loads((REPO / "langgraph.json").read_text())
    assert set(config["graphs"]) == {"react", "pal", "self_consistency"}
    from ponder.graphs import served

    for target in config["graphs"].values():
        module, _, name = target.partition(":")
        assert module == "ponder.graphs.served" and callable(getattr(served, name))


@pytest.fixture
def server(tmp_path: Path, chat_env: dict[str, str], write_script):
    if not LANGGRAPH.exists():
        pytest.skip("langgraph-cli[inmem] is not installed (pip install 'ponder[serve]')")
    spec = write_script(tmp_path / "served.jsonl",
                        "Thought: I add.\nAction: calculator\nAction Input: 20+22", "Final Answer: 42",
                        "Thought: again.\nAction: calculator\nAction Input: 6*7", "Final Answer: 42",
                        "Final Answer: 42", "Final Answer: 42.0", "Final Answer: 41")
    port = _free_port()
    env = {**chat_env, **OFFLINE_ENV, "PONDER_MODEL": spec}
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [str(LANGGRAPH), "dev", "--config", str(REPO / "langgraph.json"), "--host", "127.0.0.1", "--port", str(port),
         "--no-browser", "--no-reload"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/ok", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"langgraph dev did not start:\n{(tmp_path / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def test_served_react_graph_answers_through_the_sdk(server: str, tmp_path: Path) -> None:
    from langgraph_sdk import get_client

    async def call() -> tuple[list[str], dict, list[str], dict]:
        client = get_client(url=server)
        graphs = sorted(a["graph_id"] for a in await client.assistants.search())
        thread = await client.threads.create()
        result = await client.runs.wait(thread["thread_id"], "react", input={"task": "What is 20+22?"})
        nodes = []
        thread2 = await client.threads.create()
        async for part in client.runs.stream(thread2["thread_id"], "react", input={"task": "again"},
                                             stream_mode="updates", stream_subgraphs=True):
            if part.event.startswith("updates"):
                nodes.extend(part.data)
        thread3 = await client.threads.create()
        voted = await client.runs.wait(thread3["thread_id"], "self_consistency", input={"task": "Q?", "samples": 3})
        return graphs, result, nodes, voted

    graphs, result, nodes, voted = asyncio.run(call())
    assert graphs == ["pal", "react", "self_consistency"]
    assert result["final_answer"] == "42" and result["status"] == "solved"
    assert result["steps"][0]["action"] == "calculator" and result["steps"][0]["observation"] == "42"
    # streaming with subgraphs shows the agent graph's own nodes as they run
    assert nodes[0] == "prepare" and {"recall", "agent", "tools", "remember"} <= set(nodes)
    # self-consistency: three samples (42, 42.0, 41 in some order) voted into 42
    assert voted["final_answer"] in ("42", "42.0") and voted["samples_run"] == 3
    assert voted["agreement"] == pytest.approx(2 / 3, abs=1e-4) and [v["votes"] for v in voted["votes"]] == [2, 1]
    assert not (REPO / ".langgraph_api").exists()
