"""Error taxonomy.

The model's mistakes are never exceptions: they become observations the agent can recover from.
Exceptions are for *our* side: bad configuration or input (exit code 2 in the CLI) and runtime
failures of a backend, tool or sandbox (exit code 1).
"""

from __future__ import annotations


class PonderError(Exception):
    """Base class of every error ponder raises on purpose."""

    exit_code = 1


class ConfigError(PonderError):
    """Bad settings, a bad CLI argument or a bad model spec: the user's input is wrong."""

    exit_code = 2


class MissingExtraError(ConfigError):
    """An optional dependency is missing; the message says which extra to install."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs the '{package}' package, which is not installed. "
            f"Install it with: pip install 'ponder[{extra}]'"
        )
        self.package = package
        self.extra = extra


class DataError(PonderError):
    """A data file is missing or malformed."""

    exit_code = 2


class ModelError(PonderError):
    """A model backend failed (load failure, server unreachable after retries, ...)."""


class RealModelCallError(ModelError):
    """A real model was called where only scripted models are allowed (unit tests)."""


class ToolError(PonderError):
    """A tool failed because of a bug or an environment problem on our side."""


class SandboxError(ToolError):
    """The code sandbox could not be started or driven."""
