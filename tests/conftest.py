"""Shared fixtures.

Unit tests run with ``PONDER_FORBID_REAL_MODEL=1``: any real model call fails loudly. Tests marked
``integration`` may use the real embedded model or a real server.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

sys.path.append(str(Path(__file__).resolve().parent))  # the skip policy and its allowlist live next to this file
import skip_policy  # noqa: E402
from allowed_skips import ALLOWED_SKIPS  # noqa: E402

pytest_plugins = ["pytester"]  # tests/test_skip_policy.py runs pytest on small generated suites

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / "data"  # the data shipped in the repository (package data of ponder)


def pytest_configure(config: pytest.Config) -> None:
    """Unexpected skips fail in CI and under ``make test`` (``tests/skip_policy.py``, ``tests/allowed_skips.py``)."""
    skip_policy.install(config, ALLOWED_SKIPS)


#: Fixtures whose tests are ``slow``: the real ``ponder chat`` on a pseudo-terminal, the real MiniLM embeddings.
SLOW_FIXTURES = frozenset({"terminal", "minilm"})


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Central marker rules (markers in pyproject.toml; ``make test-fast`` leaves out slow, browser and server).

    Every ``integration`` test (a real model) and ``security`` test (an attack waits out a sandbox limit) is
    ``slow``; a test using a fixture whose name ends in ``server`` starts a real server process (llama.cpp,
    Chroma, ``langgraph dev``) and is ``server``; tests using :data:`SLOW_FIXTURES` are ``slow``. Other heavy
    tests carry the marks themselves (``@pytest.mark.slow`` with the reason in a comment).
    """
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if any(item.get_closest_marker(m) for m in ("integration", "security")) or names & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)
        if any(name.endswith("server") for name in names):
            item.add_marker(pytest.mark.server)


@pytest.fixture(autouse=True)
def _model_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Forbid real model calls outside integration tests; never read the user's ponder.toml."""
    from ponder.models.base import FORBID_REAL_MODEL_ENV

    if request.node.get_closest_marker("integration") is None:
        monkeypatch.setenv(FORBID_REAL_MODEL_ENV, "1")
    else:
        monkeypatch.delenv(FORBID_REAL_MODEL_ENV, raising=False)
    monkeypatch.setenv("PONDER_CONFIG", str(tmp_path / "no-such-ponder.toml"))
    for key in [k for k in os.environ if k.startswith("PONDER_") and k not in ("PONDER_CONFIG", FORBID_REAL_MODEL_ENV)]:
        monkeypatch.delenv(key)


@pytest.fixture
def data_dir() -> Path:
    """The shipped evaluation data (``data/``). It is part of the repository: missing, it fails the test."""
    if not (DATA_DIR / "manifest.json").is_file():
        pytest.fail(f"the shipped data is missing: {DATA_DIR / 'manifest.json'} not found; data/ is part of the "
                    "repository (restore it with `git checkout -- data`)", pytrace=False)
    return DATA_DIR


def _write_script(path: Path, *items: str | dict) -> str:
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return f"scripted:{path}"


@pytest.fixture
def write_script() -> Callable[..., str]:
    """``write_script(path, *items)``: a scripted-model JSONL file; returns its model spec."""
    return _write_script


@pytest.fixture
def offline_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a ponder subprocess: everything it writes stays under tmp_path, offline, no real model."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PONDER_")}
    home = tmp_path / "home"
    home.mkdir()
    env.update({
        "HOME": str(home), "XDG_DATA_HOME": str(home / "data"), "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_CONFIG_HOME": str(home / "config"), "PONDER_CONFIG": str(tmp_path / "no-ponder.toml"),
        "PONDER_OUT_DIR": str(tmp_path / "runs"), "PONDER_MEMORY_PATH": str(tmp_path / "memory"),
        "PONDER_FORBID_REAL_MODEL": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
    })
    return env


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on into memory (project ``test``; every span exported as it ends); off again afterwards."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from ponder.core.tracing import install_exporter, shutdown_tracing

    exporter = InMemorySpanExporter()
    install_exporter(exporter, "test", batch=False)
    yield exporter
    shutdown_tracing()
