"""The code-executor protocol: how PAL and the ReAct ``python`` tool run model-written code.

Model-written code is hostile: an executor never runs it in our process, never lets it reach the
network, and always bounds its CPU time, memory, wall time and output.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel


class ExecResult(BaseModel):
    """What happened when a piece of code ran.

    Attributes:
        stdout: Captured standard output, truncated to the executor's output limit.
        stderr: Captured standard error, truncated likewise.
        value: ``repr`` of the last expression's value when the code ends with an expression.
        error_type: Exception class name when the code raised (e.g. ``ZeroDivisionError``).
        error_message: The exception message.
        traceback: A short traceback (the last frames) of the model's code.
        duration: Wall seconds.
        killed: Whether the executor killed the program.
        kill_reason: ``timeout``, ``memory``, ``cpu``, ``output`` or ``crash`` when killed; ``closed`` when
            the executor was closed during the run.
        truncated: Whether stdout or stderr was cut.
    """

    stdout: str = ""
    stderr: str = ""
    value: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    duration: float = 0.0
    killed: bool = False
    kill_reason: str | None = None
    truncated: bool = False

    @property
    def ok(self) -> bool:
        """True when the code finished without an exception and was not killed."""
        return not self.killed and self.error_type is None

    def summary(self, limit: int = 1500) -> str:
        """A short observation text for the model."""
        if self.killed:
            text = f"Execution stopped ({self.kill_reason})."
            if self.stdout:
                text += f" Output before that:\n{self.stdout}"
        elif self.error_type:
            text = f"{self.error_type}: {self.error_message}"
            if self.traceback:
                tb = self.traceback.rstrip()
                text = f"{tb}\n{text}" if self.error_type not in tb else tb
        else:
            parts = [p for p in (self.stdout.rstrip(), self.value) if p]
            text = "\n".join(parts) if parts else "(no output)"
        return text if len(text) <= limit else text[:limit] + " ...[truncated]"


@runtime_checkable
class CodeExecutor(Protocol):
    """Runs code out of process with resource limits.

    Attributes:
        output_chars: Characters of stdout / stderr kept per run (longer output is cut).
    """

    output_chars: int

    def run(self, code: str) -> ExecResult:
        """Run ``code`` and report what happened; never raises for anything the code does."""
        ...

    def close(self) -> None:
        """Release the process(es) behind this executor."""
        ...
