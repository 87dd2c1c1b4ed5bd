"""Fixtures shared by the env tests: the TextWorld ``small`` suite, generated once per session."""

from __future__ import annotations

import time
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small suite generated once per session into a temporary cache (``<cache>/textworld/games``)."""
    pytest.importorskip("textworld")
    from ponder.envs.textworld.cache import ensure_games
    from ponder.envs.textworld.spec import load_suite_spec

    cache = tmp_path_factory.mktemp("ponder-cache")
    start = time.perf_counter()
    ensure_games(load_suite_spec("small").games(), cache / "textworld" / "games", workers=2)
    print(f"generated the small suite in {time.perf_counter() - start:.1f} s")
    return cache
