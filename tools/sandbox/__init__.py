"""Code sandboxes behind the :class:`~ponder.tools.executor.CodeExecutor` protocol.

``local`` (default): a stateful Python kernel in an isolated process (bubblewrap, rlimits, no network).
``e2b``: an E2B cloud sandbox (``pip install 'ponder[e2b]'``, ``E2B_API_KEY``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ponder.core.settings import SandboxSettings
    from ponder.core.types import SandboxKind
    from ponder.tools.executor import CodeExecutor


def open_sandbox(settings: SandboxSettings, kind: SandboxKind | None = None) -> CodeExecutor:
    """Open a fresh sandbox session of ``kind`` (default: ``settings.sandbox``); close it when done.

    Raises:
        ConfigError: for an unknown kind, a missing extra or missing E2B credentials.
        SandboxError: when the sandbox cannot start.
    """
    from ponder.core.errors import ConfigError

    kind = kind or settings.sandbox
    if kind == "local":
        from ponder.tools.sandbox.local import LocalSandbox

        return LocalSandbox.from_settings(settings)
    if kind == "e2b":
        from ponder.tools.sandbox.e2b import E2BSandbox

        return E2BSandbox.from_settings(settings)
    raise ConfigError(f"unknown sandbox {kind!r}; choose local or e2b")
