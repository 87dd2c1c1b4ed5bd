"""Shared fixtures.

Unit tests run with ``PONDER_FORBID_REAL_MODEL=1``: any real model call fails loudly. Tests marked
``integration`` may use the real embedded model or a real server.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / "data"  # the data shipped in the repository (package data of ponder)


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
