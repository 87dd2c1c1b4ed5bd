"""The llama.cpp crash guard with injected probe children (real processes; no real model runs here)."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ponder.core.errors import ConfigError
from ponder.core.settings import load_settings
from ponder.models.llamacpp_probe import probe_key, run_probe

HAS_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None
needs_llama_cpp = pytest.mark.skipif(not HAS_LLAMA_CPP, reason="llama-cpp-python is not installed (make test)")


def _child(tmp_path: Path, body: str) -> list[str]:
    """A probe child that appends a line to ``spawns.log`` each time it starts, then runs ``body``."""
    script = tmp_path / "child.py"
    script.write_text(
        "import os, signal, sys\n"
        f"open({str(tmp_path / 'spawns.log')!r}, 'a').write(sys.argv[1] + '\\n')\n" + body + "\n",
        encoding="utf-8")
    return [sys.executable, str(script)]


def _spawns(tmp_path: Path) -> int:
    log = tmp_path / "spawns.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


SEGV = "os.kill(os.getpid(), signal.SIGSEGV)"


@pytest.fixture
def gguf(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 60)
    return path


def test_crashing_child_is_reported_and_remembered(tmp_path: Path, gguf: Path) -> None:
    command = _child(tmp_path, SEGV)
    first = run_probe(gguf, tmp_path / "cache", command=command)
    assert (first.status, first.detail, first.cached) == ("crashed", "killed by SIGSEGV", False)
    assert "crashes on this machine" in first.problem() and "SIGSEGV" in first.problem()
    second = run_probe(gguf, tmp_path / "cache", command=command)
    assert (second.status, second.detail, second.cached) == ("crashed", "killed by SIGSEGV", True)
    assert _spawns(tmp_path) == 1  # the second answer came from the cache
    records = list((tmp_path / "cache" / "llamacpp" / "probe").glob("*.json"))
    assert [json.loads(p.read_text())["key"] for p in records] == [probe_key(gguf, command)]


def test_good_child_is_remembered_until_the_model_file_changes(tmp_path: Path, gguf: Path) -> None:
    command = _child(tmp_path, "sys.exit(0)")
    assert run_probe(gguf, tmp_path / "cache", command=command).ok
    assert run_probe(gguf, tmp_path / "cache", command=command).cached
    assert _spawns(tmp_path) == 1
    gguf.write_bytes(gguf.read_bytes() + b"\0")  # another model file: probed again
    again = run_probe(gguf, tmp_path / "cache", command=command)
    assert again.ok and not again.cached
    assert _spawns(tmp_path) == 2


def test_failing_child_is_no_crash_and_never_remembered(tmp_path: Path, gguf: Path) -> None:
    command = _child(tmp_path, "print('llama.cpp could not load the file', file=sys.stderr); sys.exit(3)")
    first = run_probe(gguf, tmp_path / "cache", command=command)
    assert first.status == "failed" and first.ok  # a Python-level failure: the in-process load raises it cleanly
    assert first.detail == "exit code 3: llama.cpp could not load the file"
    second = run_probe(gguf, tmp_path / "cache", command=command)
    assert second.status == "failed" and not second.cached
    assert _spawns(tmp_path) == 2
    assert not list((tmp_path / "cache").rglob("*.json"))


def test_child_killed_from_outside_is_no_crash(tmp_path: Path, gguf: Path) -> None:
    command = _child(tmp_path, "os.kill(os.getpid(), signal.SIGTERM)")
    result = run_probe(gguf, tmp_path / "cache", command=command)
    assert (result.status, result.detail, result.ok) == ("failed", "killed by SIGTERM from outside", True)
    assert not list((tmp_path / "cache").rglob("*.json"))


@pytest.mark.parametrize("sig", ["SIGILL", "SIGABRT", "SIGBUS"])
def test_other_crash_signals_are_crashes(tmp_path: Path, gguf: Path, sig: str) -> None:
    result = run_probe(gguf, tmp_path / "cache", command=_child(tmp_path, f"os.kill(os.getpid(), signal.{sig})"))
    assert (result.status, result.detail, result.ok) == ("crashed", f"killed by {sig}", False)


def test_hanging_child_fails_after_the_timeout(tmp_path: Path, gguf: Path) -> None:
    result = run_probe(gguf, tmp_path / "cache", command=_child(tmp_path, "import time; time.sleep(30)"),
                       timeout=1)
    assert (result.status, result.detail) == ("failed", "no answer within 1 s")


@needs_llama_cpp
def test_embedded_falls_back_to_transformers_with_one_warning(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    from ponder.models.spec import resolve_embedded

    settings = load_settings(cache_dir=tmp_path / "cache", llamacpp_probe_command=_child(tmp_path, SEGV))
    with caplog.at_level(logging.WARNING, logger="ponder.models"):
        assert resolve_embedded(settings) == "transformers"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "SIGSEGV" in warnings[0] and "runs on transformers" in warnings[0]
    assert "make install-server" in warnings[0]


@needs_llama_cpp
def test_embedded_stays_on_llamacpp_when_the_child_only_fails(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    from ponder.models.spec import resolve_embedded

    command = _child(tmp_path, "sys.exit(1)")
    settings = load_settings(cache_dir=tmp_path / "cache", llamacpp_probe_command=command)
    with caplog.at_level(logging.INFO, logger="ponder.models"):
        assert resolve_embedded(settings) == "llamacpp"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("inconclusive (exit code 1" in r.getMessage() for r in caplog.records)


@needs_llama_cpp
def test_in_process_load_refuses_a_llamacpp_that_crashes(tmp_path: Path, gguf: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from ponder.models.llamacpp_loader import load_llama

    monkeypatch.setenv("PONDER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PONDER_LLAMACPP_PROBE_COMMAND", json.dumps(_child(tmp_path, SEGV)))
    with pytest.raises(ConfigError, match="killed by SIGSEGV"):
        load_llama(gguf, n_ctx=256, n_threads=1)
    assert _spawns(tmp_path) == 1


@needs_llama_cpp
def test_explicit_llamacpp_that_crashes_exits_2_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PONDER_")}
    env.update(PONDER_CACHE_DIR=str(tmp_path / "cache"), PONDER_CONFIG=str(tmp_path / "none.toml"),
               PONDER_LLAMACPP_PROBE_COMMAND=json.dumps(_child(tmp_path, SEGV)))
    proc = subprocess.run([sys.executable, "-m", "ponder.cli", "run", "What is 2 + 3?", "--model", "llamacpp",
                           "--out", str(tmp_path / "runs")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("ponder: error: llama.cpp crashes on this machine")
    assert "SIGSEGV" in lines[0] and "make install-server" in lines[0]
    assert _spawns(tmp_path) == 1
