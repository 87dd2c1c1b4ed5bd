"""ponder: agents that think before they answer.

The public API is small and lazily imported so that ``import ponder`` stays fast:

>>> from ponder import run_agent, load_settings
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "Settings", "load_settings", "load_model", "run_agent", "Trajectory"]

if TYPE_CHECKING:  # pragma: no cover
    from ponder.agents.runner import run_agent
    from ponder.core.records import Trajectory
    from ponder.core.settings import Settings, load_settings
    from ponder.models.spec import load_model

_LAZY = {
    "Settings": "ponder.core.settings",
    "load_settings": "ponder.core.settings",
    "load_model": "ponder.models.spec",
    "run_agent": "ponder.agents.runner",
    "Trajectory": "ponder.core.records",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ponder' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
