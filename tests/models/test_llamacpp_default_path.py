"""The real default path on llama.cpp: the crash guard's probe child and `ponder run` end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ponder.models.gguf_cache import find_embedded_gguf
from ponder.models.llamacpp_probe import run_probe

pytestmark = pytest.mark.integration
pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (make test installs it)")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PONDER_")}
    return {**env, "PONDER_CONFIG": str(tmp_path / "none.toml"), **extra}


def test_the_real_probe_child_decodes_once_per_machine(tmp_path: Path) -> None:
    gguf = find_embedded_gguf()
    first = run_probe(gguf, tmp_path / "cache")
    assert (first.status, first.detail, first.cached) == ("ok", "decoded", False)
    assert first.seconds > 0
    second = run_probe(gguf, tmp_path / "cache")
    assert (second.status, second.cached) == ("ok", True)


def test_ponder_run_answers_on_llamacpp_by_default(tmp_path: Path) -> None:
    ponder = Path(sys.executable).parent / "ponder"
    proc = subprocess.run([str(ponder), "run", "What is 17 * 23 - 4?", "--json", "--out", str(tmp_path / "runs")],
                          capture_output=True, text=True, env=_env(tmp_path), timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["backend"] == "llamacpp"
    assert result["error"] is None and result["status"] != "error"
    assert result["steps"] >= 1 and result["usage"]["completion_tokens"] > 0
    assert "WARNING" not in proc.stderr  # no fallback, no crash-guard warning


def test_embedded_falls_back_to_transformers_when_the_probe_crashes(tmp_path: Path) -> None:
    crash = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
    ponder = Path(sys.executable).parent / "ponder"
    proc = subprocess.run(
        [str(ponder), "run", "What is 2 + 3?", "--json", "--max-steps", "1", "--max-tokens", "16",
         "--out", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=600,
        env=_env(tmp_path, PONDER_LLAMACPP_PROBE_COMMAND=json.dumps(crash)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["backend"] == "transformers"
    warnings = [ln for ln in proc.stderr.splitlines() if "WARNING" in ln]
    assert len(warnings) == 1, proc.stderr
    assert "killed by SIGSEGV" in warnings[0] and "runs on transformers" in warnings[0]


CLOSE_AT_EXIT = """
from ponder.models import llamacpp_loader
from ponder.models.base import GenerationParams
from ponder.models.gguf_cache import find_embedded_gguf
from ponder.models.llamacpp import LlamaCppBackend

gguf = find_embedded_gguf()
a = LlamaCppBackend.load(gguf, n_ctx=512, n_threads=1)
b = LlamaCppBackend.load(gguf, n_ctx=256, n_threads=1)
chat = [{"role": "user", "content": "Hi"}]
a.generate(chat, GenerationParams(max_tokens=2))
b.generate_batch([chat, chat], GenerationParams(max_tokens=2))
models = [loaded.llama for loaded in llamacpp_loader._MODELS.values()]
assert len(models) == 2
llamacpp_loader.close_all()
assert not llamacpp_loader._MODELS
assert all(m._model.model is None for m in models), "a model was not freed"
print("freed")
"""


def test_loaded_models_are_freed_at_exit_without_noise(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", CLOSE_AT_EXIT], capture_output=True, text=True,
                          env=_env(tmp_path, XDG_CACHE_HOME=str(tmp_path / "cache")), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "freed"
    assert "Exception ignored" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
