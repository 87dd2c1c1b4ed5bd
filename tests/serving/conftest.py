"""Fixtures of the served-graph tests: a scripted-model script file and an isolated, offline environment."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest


def _write_script(path: Path, *items: str | dict) -> str:
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return f"scripted:{path}"


@pytest.fixture
def write_script() -> Callable[..., str]:
    """``write_script(path, *items)``: a scripted-model JSONL file; returns its model spec."""
    return _write_script


@pytest.fixture
def chat_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a ``langgraph dev`` subprocess: everything it writes stays under tmp_path, offline."""
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
