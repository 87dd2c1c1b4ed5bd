"""``ponder run --trace`` against a real Arize Phoenix (``make phoenix`` installs it into ``.venv-phoenix``).

A session fixture starts ``phoenix serve`` on free 127.0.0.1 ports with a temporary working directory (SQLite),
telemetry and external resources off; the tests run the real CLI in a subprocess, pointed at it with the standard
``OTEL_EXPORTER_OTLP_ENDPOINT``, and read the spans back from Phoenix's REST API.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PHOENIX = ROOT / ".venv-phoenix" / "bin" / "phoenix"
START_TIMEOUT_S = 120.0
SPANS_TIMEOUT_S = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - a local test server
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="session")
def phoenix_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running Phoenix: its base URL (HTTP API and OTLP/HTTP collector)."""
    if not PHOENIX.exists():
        pytest.skip("Phoenix is not installed: run `make phoenix` (make test does)")
    work = tmp_path_factory.mktemp("phoenix")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PHOENIX_"))}
    env.update(PHOENIX_HOST="127.0.0.1", PHOENIX_PORT=str(port), PHOENIX_GRPC_PORT=str(_free_port()),
               PHOENIX_WORKING_DIR=str(work), PHOENIX_TELEMETRY_ENABLED="false",
               PHOENIX_ALLOW_EXTERNAL_RESOURCES="false")
    log = (work / "phoenix.log").open("wb")
    proc = subprocess.Popen([str(PHOENIX), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if _get(f"{url}/healthz", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (work / "phoenix.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"phoenix serve did not come up (exit {proc.poll()}):\n{tail}")
            time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)
        log.close()


def _ponder_run(url: str, project: str, script: Path, out: Path, *extra: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_EXPORTER_OTLP_ENDPOINT=url, PONDER_TRACE_PROJECT=project)
    proc = subprocess.run([sys.executable, "-m", "ponder.cli", "run", "What is 17 times 3?", "--trace",
                           "-m", f"scripted:{script}", "--tools", "calculator", "--json", "-o", str(out), *extra],
                          capture_output=True, text=True, timeout=120, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "could not export" not in proc.stderr
    return json.loads(proc.stdout)


def _spans(url: str, project: str, count: int) -> list[dict[str, Any]]:
    """The project's spans once at least ``count`` arrived (bounded wait)."""
    deadline = time.monotonic() + SPANS_TIMEOUT_S
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        status, body = _get(f"{url}/v1/projects/{project}/spans?limit=200")
        spans = json.loads(body)["data"] if status == 200 else []
        if len(spans) >= count:
            return spans
        time.sleep(0.5)
    pytest.fail(f"Phoenix received {len(spans)} spans of project {project}, expected {count}")


def _children(spans: list[dict[str, Any]], parent: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted((s for s in spans if s["parent_id"] == parent["context"]["span_id"]), key=lambda s: s["start_time"])


def _script(path: Path, replies: list[str]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in replies))
    return path


def test_a_runs_span_tree_arrives_in_phoenix(phoenix_server: str, tmp_path: Path) -> None:
    script = _script(tmp_path / "calc.jsonl", ["Thought: multiply\nAction: calculator\nAction Input: 17 * 3",
                                               "Thought: I now know the final answer\nFinal Answer: 51"])
    result = _ponder_run(phoenix_server, "single", script, tmp_path / "runs")
    assert result["answer"] == "51"
    spans = _spans(phoenix_server, "single", 6)  # agent, 2 steps, 2 model calls, 1 tool call
    (root,) = [s for s in spans if s["parent_id"] is None]
    assert root["name"] == "invoke_agent react" and root["span_kind"] == "AGENT"
    assert root["context"]["trace_id"] == result["trace_id"]
    saved = json.loads((tmp_path / "runs" / "trajectories.jsonl").read_text().splitlines()[-1])
    assert saved["metadata"]["trace_id"] == result["trace_id"]
    assert {s["context"]["trace_id"] for s in spans} == {result["trace_id"]}
    steps = _children(spans, root)
    assert [s["name"] for s in steps] == ["step 1", "step 2"]
    first = {s["name"]: s for s in _children(spans, steps[0])}
    llm, tool = first[f"chat scripted:{script}"], first["execute_tool calculator"]
    assert llm["span_kind"] == "LLM"
    assert llm["attributes"]["llm.token_count.prompt"] > 0 and llm["attributes"]["llm.token_count.completion"] > 0
    assert llm["attributes"]["llm.model_name"] == f"scripted:{script}"
    assert tool["span_kind"] == "TOOL" and tool["attributes"]["tool.name"] == "calculator"
    assert tool["attributes"]["input.value"] == "17 * 3" and tool["attributes"]["output.value"] == "51"
    assert [s["span_kind"] for s in _children(spans, steps[1])] == ["LLM"]


def test_self_consistency_samples_arrive_under_the_strategy_span(phoenix_server: str, tmp_path: Path) -> None:
    script = _script(tmp_path / "sc.jsonl", ["Thought: I now know the final answer\nFinal Answer: 51"] * 3)
    result = _ponder_run(phoenix_server, "sc", script, tmp_path / "runs", "--strategy", "sc", "--samples", "3")
    assert result["answer"] == "51" and result["samples_run"] == 3
    spans = _spans(phoenix_server, "sc", 11)  # the strategy, 3 x (sample, agent, step, model call), the vote
    (root,) = [s for s in spans if s["parent_id"] is None]
    assert root["name"] == "self_consistency" and root["span_kind"] == "CHAIN"
    kids = _children(spans, root)
    assert sorted(k["name"] for k in kids) == ["sample 0", "sample 1", "sample 2", "vote"]
    for sample in (k for k in kids if k["name"].startswith("sample")):
        assert [a["name"] for a in _children(spans, sample)] == ["invoke_agent react"]
    (vote,) = [k for k in kids if k["name"] == "vote"]
    assert vote["attributes"]["ponder.vote.counts"] == [3]
