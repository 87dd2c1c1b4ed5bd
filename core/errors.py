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


class BadLinesError(DataError):
    """A file the user handed in has lines ponder cannot read (see :mod:`ponder.core.datafiles`).

    Attributes:
        path: The file.
        summary: One line: the file, how many lines are bad and what to do.
        bad: Every bad line as ``(line number, reason)``, in file order.
    """

    #: Bad lines spelled out with their reason in messages; the others are listed by number.
    SHOWN = 20

    def __init__(self, path: object, summary: str, bad: list[tuple[int, str]]) -> None:
        self.path = path
        self.summary = summary
        self.bad = list(bad)
        super().__init__("\n".join([summary, *self.details()]))

    @property
    def problems(self) -> list[str]:
        """Every bad line as ``file:line: reason``."""
        return [f"{self.path}:{lineno}: {reason}" for lineno, reason in self.bad]

    def details(self) -> list[str]:
        """The bad lines for display: the first :attr:`SHOWN` as ``file:line: reason``, then the others' numbers."""
        shown = self.problems[:self.SHOWN]
        rest = [lineno for lineno, _ in self.bad[self.SHOWN:]]
        if rest:
            shown.append(f"{self.path}: {len(rest)} more bad lines: {_ranges(rest)}")
        return shown

    def __reduce__(self) -> tuple[type, tuple[object, str, list[tuple[int, str]]]]:
        return type(self), (self.path, self.summary, self.bad)


def _ranges(numbers: list[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"`` (ascending numbers)."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


class ModelError(PonderError):
    """A model backend failed (load failure, server unreachable after retries, ...)."""


class GenerationCancelled(ModelError):
    """A model call was cancelled before it finished (Ctrl-C, or a self-consistency sample no longer needed)."""


class RealModelCallError(ModelError):
    """A real model was called where only scripted models are allowed (unit tests)."""


class ToolError(PonderError):
    """A tool failed because of a bug or an environment problem on our side."""


class SandboxError(ToolError):
    """The code sandbox could not be started or driven."""
