"""Fixtures of the search tests; ``searchkit`` (this folder's helpers) is importable from the test modules."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ponder.core.settings import Settings, load_settings

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings writing under ``tmp_path``."""
    return load_settings(out_dir=tmp_path / "runs", memory_path=tmp_path / "memory", tools=["calculator"])
