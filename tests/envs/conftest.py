"""Fixtures shared by the env tests: the TextWorld ``small`` suite, generated once per session; a two-node Ray
cluster (``ray_cluster.py``)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helpers beside the tests (Ray nodes get PYTHONPATH)
from ray_cluster import RayCluster, start_cluster  # noqa: E402


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


@pytest.fixture(scope="module")
def ray_two_nodes() -> Iterator[RayCluster]:
    """A real two-node Ray cluster (head + worker, separate process groups on 127.0.0.1) shared by a test module;
    a test that kills a node restarts it (:meth:`RayCluster.add_worker`)."""
    pytest.importorskip("ray")
    cluster = start_cluster(workers=1)
    try:
        yield cluster
    finally:
        cluster.stop()
