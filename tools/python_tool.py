"""The ReAct ``python`` tool: runs the model's code in a sandbox session that lives for one agent run."""

from __future__ import annotations

import threading
from collections.abc import Callable

from pydantic import BaseModel, Field

from ponder.tools.executor import CodeExecutor


class PythonArgs(BaseModel):
    """Arguments of the python tool."""

    code: str = Field(description="Python code; print() what you need or end with an expression.")


class PythonTool:
    """Run Python in an isolated, stateful sandbox (opened on first use, closed with :meth:`close`).

    Args:
        open_session: Opens a fresh sandbox session, e.g. ``lambda: open_sandbox(settings)``.
    """

    name = "python"
    description = ("Run Python code in a sandbox (no network, no files outside it). Variables persist "
                   "between calls. Print results or end with an expression.")
    args_schema = PythonArgs

    def __init__(self, open_session: Callable[[], CodeExecutor]) -> None:
        self._open = open_session
        self._session: CodeExecutor | None = None
        self._lock = threading.Lock()

    def run(self, args: BaseModel) -> str:
        """Run the code; errors, timeouts and crashes come back as the observation text."""
        assert isinstance(args, PythonArgs)
        with self._lock:
            if self._session is None:
                self._session = self._open()
            session = self._session
        return session.run(args.code).summary()

    def close(self) -> None:
        """End the sandbox session (if one was opened)."""
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()
