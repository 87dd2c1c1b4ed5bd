"""Helpers and fixtures of the ``ponder mcp serve`` tests: a small search corpus, a memory store, and the real
server process (``python -m ponder.cli mcp serve``) over stdio or streamable HTTP, for the official SDK's client."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from mcp.client.stdio import StdioServerParameters

from ponder.core.settings import load_settings
from ponder.memory.embeddings import HashingEmbeddingFunction
from ponder.memory.schema import Insight
from ponder.memory.store import open_store

START_TIMEOUT = 30.0  # seconds for the server to say where it listens
STOP_TIMEOUT = 10.0
PAGES = [
    {"id": "1", "title": "Colorado orogeny", "text": "The Colorado orogeny was an episode of mountain building in "
     "Colorado. The eastern sector extends into the High Plains. The eastern sector rises to 7000 ft."},
    {"id": "2", "title": "Python (language)", "text": "Python is a programming language created by Guido van "
     "Rossum. It was first released in 1991."},
]
INSIGHT = "When a word problem mixes units, convert everything to the same unit before adding."


@dataclass
class McpEnv:
    """Where the served tools read from, and the command line that starts the server."""

    root: Path
    corpus: Path
    memory: Path
    env: dict[str, str] = field(default_factory=dict)

    def command(self, *extra: str) -> list[str]:
        """``python -m ponder.cli mcp serve`` with this environment's corpus and memory store."""
        return [sys.executable, "-m", "ponder.cli", "mcp", "serve", "--corpus", str(self.corpus),
                "--memory-path", str(self.memory), "--exec-timeout", "2", *extra]

    def stdio(self, *extra: str) -> StdioServerParameters:
        """Parameters for the SDK's stdio client."""
        cmd = self.command(*extra)
        return StdioServerParameters(command=cmd[0], args=cmd[1:], env=self.env, cwd=str(self.root))


@pytest.fixture(scope="module")
def mcp_env(tmp_path_factory: pytest.TempPathFactory) -> McpEnv:
    """A two-page corpus and a memory store holding one insight (embedded with the hashing double)."""
    root = tmp_path_factory.mktemp("mcp")
    corpus = root / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(p) + "\n" for p in PAGES), encoding="utf-8")
    memory = root / "memory"
    settings = load_settings(memory_path=memory)
    with open_store(settings, embedding_function=HashingEmbeddingFunction()) as store:
        assert store.add(Insight(text=INSIGHT, task_family="gsm8k")).status == "added"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PONDER_")}
    env |= {"PONDER_CACHE_DIR": str(root / "cache"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1"}
    return McpEnv(root=root, corpus=corpus, memory=memory, env=env)


@dataclass
class HttpServer:
    """A running ``ponder mcp serve --transport http`` process."""

    proc: subprocess.Popen[str]
    url: str
    port: int
    stderr: list[str]

    def stop(self) -> int:
        """SIGTERM, then wait (SIGKILL after :data:`STOP_TIMEOUT`); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise


def start_http(env: McpEnv, *extra: str) -> HttpServer:
    """Start the HTTP server on a free port (``--port 0``) and read its address from stderr."""
    proc = subprocess.Popen(env.command("--transport", "http", "--port", "0", *extra), env=env.env,
                            cwd=env.root, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    found = threading.Event()

    def drain() -> None:  # keeps reading so that the server never blocks on a full pipe
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "listening on" in line:
                found.set()

    threading.Thread(target=drain, daemon=True).start()
    if not found.wait(START_TIMEOUT):
        proc.kill()
        proc.wait(5)
        raise AssertionError(f"the server did not start: {''.join(lines)}")
    match = re.search(r"(http://127\.0\.0\.1:(\d+)/mcp)", "".join(lines))
    assert match, lines
    return HttpServer(proc, match.group(1), int(match.group(2)), lines)


@pytest.fixture(scope="module")
def http_server(mcp_env: McpEnv) -> Iterator[HttpServer]:
    """One HTTP server for the module's tests (stopped, and killed if need be, at the end)."""
    server = start_http(mcp_env)
    try:
        yield server
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(5)


def descendants(pid: int) -> list[psutil.Process]:
    """The live processes below ``pid``."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def wait_gone(procs: list[psutil.Process], timeout: float = STOP_TIMEOUT) -> list[psutil.Process]:
    """The processes of ``procs`` still alive after ``timeout`` seconds (zombies count as gone)."""
    deadline = time.monotonic() + timeout
    alive = procs
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _alive(p)]
        time.sleep(0.05)
    return alive


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
