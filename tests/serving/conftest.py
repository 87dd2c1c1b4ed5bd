"""Fixtures of the serving tests: those of ``ponder mcp serve`` live in ``mcp_harness.py`` beside this file."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent))
from mcp_harness import http_server, mcp_env  # noqa: E402, F401 - fixtures
