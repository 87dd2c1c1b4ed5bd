"""``langgraph dev`` serves langgraph.json's graphs; the real langgraph-sdk client calls them.

The scripted-model test checks the wiring exactly. The ``integration`` tests run the default model
(``embedded``: SmolLM2-135M on llama.cpp, or transformers without llama-cpp-python) in one real server with
langgraph dev's blocking-call detector on (no ``--allow-blocking``), and hold the 135M model to behaviour
floors measured on both backends (figures next to each test).
"""

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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
LANGGRAPH = Path(sys.executable).parent / "langgraph"

#: Keeps ``langgraph dev`` off the network: no analytics, no PyPI version check, no LangSmith tracing.
OFFLINE_ENV = {"LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGGRAPH_NO_VERSION_CHECK": "true", "LANGSMITH_TRACING": "false"}
#: Statuses a served agent run may end with (``error`` is a crash, never a model's answer).
AGENT_STATUSES = ("solved", "max_steps", "parse_error")
#: The ``make demo`` question: the 135M model answers it with a well-formed Final Answer on both backends.
PENCILS = "A shop sells 3 boxes of 12 pencils and 7 loose pencils. How many pencils is that?"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _langgraph_dev(env: dict[str, str], cwd: Path, log_path: Path) -> Iterator[str]:
    """``langgraph dev`` on a free port (blocking calls rejected, no browser, no reload); yields its URL."""
    if not LANGGRAPH.exists():
        pytest.skip("langgraph-cli[inmem] is not installed (pip install 'ponder[serve]')")
    port = _free_port()
    log = log_path.open("w")
    proc = subprocess.Popen(
        [str(LANGGRAPH), "dev", "--config", str(REPO / "langgraph.json"), "--host", "127.0.0.1", "--port", str(port),
         "--no-browser", "--no-reload"],
        cwd=cwd, env={**env, **OFFLINE_ENV}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
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
                pytest.fail(f"langgraph dev did not start:\n{log_path.read_text()[-3000:]}")
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


def test_langgraph_json_names_the_served_factories() -> None:
    config = json.loads((REPO / "langgraph.json").read_text())
    assert set(config["graphs"]) == {"react", "pal", "self_consistency", "search"}
    from ponder.serving import graphs as served

    for target in config["graphs"].values():
        module, _, name = target.partition(":")
        assert module == "ponder.serving.graphs" and callable(getattr(served, name))


class FixedExecutor:
    """Answers every program with the value 18 (the served PAL graph's wiring, not the sandbox, is tested)."""

    def __init__(self) -> None:
        self.programs: list[str] = []

    def run(self, code: str) -> Any:
        from ponder.tools.executor import ExecResult

        self.programs.append(code)
        return ExecResult(value="18")

    def close(self) -> None:
        pass


@pytest.mark.parametrize(("agent", "reply", "steps"), [
    ("react", "Final Answer: 42", ["final"]),
    ("pal", "```python\ndef solution():\n    return 18\n```", ["program"]),
])
def test_served_graph_runs_the_compiled_agent_graph_with_the_request_context(agent: str, reply: str,
                                                                             steps: list[str]) -> None:
    from ponder.agents.runner import make_context
    from ponder.core.settings import load_settings
    from ponder.models.scripted import ScriptedModel
    from ponder.serving.graphs import wrap_agent_graph

    model, executor = ScriptedModel([reply, reply]), FixedExecutor()
    context = make_context(load_settings(), model, tools=[], executor=executor, agent=agent)
    served = wrap_agent_graph(agent, context)
    nodes = [node for (namespace, update) in served.stream({"task": "How many?"}, stream_mode="updates",
                                                            subgraphs=True) for node in update]
    output = served.invoke({"task": "again"})
    assert set(output) == {"task", "final_answer", "status", "steps"} and output["status"] == "solved"
    assert output["final_answer"] == ("42" if agent == "react" else "18")
    assert [s.kind for s in output["steps"]] == steps
    assert nodes == ["prepare", "recall", "step", "remember", agent]  # the agent graph streams as a subgraph
    assert len(model.calls) == 2 and model.calls[0][-1]["content"] == "Question: How many?"


@pytest.fixture
def server(tmp_path: Path, offline_env: dict[str, str], write_script):
    spec = write_script(tmp_path / "served.jsonl",
                        "Thought: I add.\nAction: calculator\nAction Input: 20+22", "Final Answer: 42",
                        "Thought: again.\nAction: calculator\nAction Input: 6*7", "Final Answer: 42",
                        "Final Answer: 42", "Final Answer: 42.0", "Final Answer: 41")
    with _langgraph_dev({**offline_env, "PONDER_MODEL": spec}, tmp_path, tmp_path / "server.log") as url:
        yield url


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
    assert graphs == ["pal", "react", "search", "self_consistency"]
    assert result["final_answer"] == "42" and result["status"] == "solved"
    assert result["steps"][0]["action"] == "calculator" and result["steps"][0]["observation"] == "42"
    # streaming with subgraphs shows the agent graph's own nodes as they run
    assert nodes[0] == "prepare" and {"recall", "step", "remember"} <= set(nodes)
    # self-consistency: three samples (42, 42.0, 41 in some order) voted into 42
    assert voted["final_answer"] in ("42", "42.0") and voted["samples_run"] == 3
    assert voted["agreement"] == pytest.approx(2 / 3, abs=1e-4) and [v["votes"] for v in voted["votes"]] == [2, 1]
    assert not (REPO / ".langgraph_api").exists()


# ------------------------------------------------------------------ the default model in a real langgraph dev


@dataclass
class Served:
    """A running ``langgraph dev`` on the default model: its URL, its log and ponder's output folder."""

    url: str
    log: Path
    out_dir: Path

    def call(self, graph: str, payload: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """``runs.wait`` on a new thread; returns the output and the statuses of the thread's runs."""
        from langgraph_sdk import get_client

        async def run() -> tuple[dict[str, Any], list[str]]:
            client = get_client(url=self.url, timeout=900)
            thread = await client.threads.create()
            output = await client.runs.wait(thread["thread_id"], graph, input=payload)
            runs = await client.runs.list(thread["thread_id"])
            return output, [r["status"] for r in runs]

        return asyncio.run(run())

    def assert_clean_log(self) -> None:
        """No blocking call was caught and nothing crashed in the server."""
        text = self.log.read_text()
        assert "BlockingError" not in text and "Traceback" not in text, text[-4000:]


@pytest.fixture(scope="module")
def embedded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server for the module on the default model, as the README starts it (no ``--allow-blocking``).

    The model and its thread count are the defaults (``llamacpp_threads`` unset: the server samples the busy
    cores, the ``time.sleep`` that once tripped the blocking-call detector). Runs, memory and config stay in a
    temporary folder; the model cache is the environment's (``make test``: the test cache).
    """
    tmp = tmp_path_factory.mktemp("served-embedded")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PONDER_")}
    env.update({"PONDER_CONFIG": str(tmp / "no-ponder.toml"), "PONDER_OUT_DIR": str(tmp / "runs"),
                "PONDER_MEMORY_PATH": str(tmp / "memory"), "PONDER_MAX_STEPS": "3", "PONDER_MAX_TOKENS": "128",
                "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    with _langgraph_dev(env, tmp, tmp / "server.log") as url:
        yield Served(url, tmp / "server.log", tmp / "runs")


def _well_formed(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The steps whose reply parsed: a Final Answer, a tool call or a PAL program."""
    return [s for s in steps if s["kind"] in ("final", "action", "program")]


@pytest.mark.integration
def test_served_react_on_the_default_model(embedded_server: Served) -> None:
    """Measured (greedy, 3 steps, 128 tokens): step 0 is a well-formed Final Answer ("21") on llama.cpp and on
    transformers, so the run is ``solved``. Floor: at least one well-formed step, and ``solved`` with an answer."""
    output, runs = embedded_server.call("react", {"task": PENCILS})
    assert runs == ["success"]
    assert output["task"] == PENCILS and output["status"] in AGENT_STATUSES
    steps = output["steps"]
    assert 1 <= len(steps) <= 3 and all(s["raw"] is not None for s in steps)
    assert _well_formed(steps), [s["raw"] for s in steps]
    assert output["status"] == "solved" and output["final_answer"], output
    embedded_server.assert_clean_log()


@pytest.mark.integration
def test_served_pal_on_the_default_model(embedded_server: Served, data_dir: Path) -> None:
    """GSM8K's first question and the pencils question. Measured (greedy, 3 steps, 128 tokens): which of them gets
    a program depends on the CPU's llama.cpp kernels -- with AVX-512, GSM8K's (second reply; the first has no code
    block), on an AVX2-only EPYC only the pencils one (second reply; GSM8K's three replies have no code block).
    Floor: every step is a program or a malformed reply answered with the format reminder, and on at least one of
    the two questions a program ran and returned the final answer."""
    question = json.loads((data_dir / "gsm8k" / "test_dev.jsonl").open().readline())["question"]
    ran = []
    for task in (question, PENCILS):
        output, runs = embedded_server.call("pal", {"task": task})
        assert runs == ["success"] and output["status"] in AGENT_STATUSES
        steps = output["steps"]
        assert 1 <= len(steps) <= 3
        assert all(s["kind"] in ("program", "parse_error") and s["observation"] for s in steps), steps
        ran += [s for s in steps if s["kind"] == "program" and s["observation"] == output["final_answer"]
                and output["status"] == "solved"]
    assert ran, "no program ran on either question"
    assert "def solution" in ran[0]["action_input"]
    embedded_server.assert_clean_log()


@pytest.mark.integration
def test_served_self_consistency_on_the_default_model(embedded_server: Served) -> None:
    """Four react samples at temperature 0.3 (seeds 0-3). Measured: 2-3 of 4 samples reach a well-formed Final
    Answer on llama.cpp (3 runs; 14 of 20 samples over other seeds), 2-3 of 4 on transformers. Floor: all four
    samples ran without error and at least one reached a Final Answer (so the vote has an answer)."""
    output, runs = embedded_server.call("self_consistency", {"task": PENCILS, "samples": 4, "temperature": 0.3})
    assert runs == ["success"] and output["samples_run"] == 4
    from ponder.core.io import read_jsonl
    from ponder.graphs.self_consistency.records import SelfConsistencyResult

    [record] = [r for r in read_jsonl(embedded_server.out_dir / "self_consistency.jsonl", SelfConsistencyResult)
                if r.id == output["record_id"]]
    samples = [s.trajectory for s in record.samples]
    assert len(samples) == 4 and {s.temperature for s in record.samples} == {0.3}
    assert all(t.status in AGENT_STATUSES and t.steps for t in samples), [(t.status, t.error) for t in samples]
    answered = [t for t in samples if t.status == "solved" and t.final_answer]
    assert answered and output["votes"] and output["final_answer"], [[s.raw for s in t.steps] for t in samples]
    assert 1 <= sum(v["votes"] for v in output["votes"]) <= len(answered)
    embedded_server.assert_clean_log()
