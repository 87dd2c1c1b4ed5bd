"""The E2B cloud sandbox behind the :class:`~ponder.tools.executor.CodeExecutor` protocol.

Needs ``pip install 'ponder[e2b]'``, ``E2B_API_KEY`` and the internet (``E2B_DOMAIN`` selects a
self-hosted E2B). The sandbox is created on first use with internet access switched off; a timed-out
cell kills it and the next call starts a fresh one.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ponder.core.errors import ConfigError, MissingExtraError, SandboxError
from ponder.tools.executor import ExecResult

if TYPE_CHECKING:
    from ponder.core.settings import SandboxSettings

log = logging.getLogger("ponder.sandbox")

NO_KEY = ("the e2b sandbox needs E2B_API_KEY (and E2B_DOMAIN for a self-hosted E2B); "
          "set it, or use the local sandbox (sandbox = \"local\")")
#: How long an idle E2B sandbox lives before E2B reclaims it (seconds).
SESSION_LIFETIME = 600


def _sdk() -> Any:
    try:
        import e2b_code_interpreter
    except ImportError:
        raise MissingExtraError("e2b-code-interpreter", "e2b", "the e2b sandbox") from None
    return e2b_code_interpreter


def describe_start_failure(exc: BaseException) -> str:
    """One clear line for why an E2B sandbox could not start (bad key, no network, E2B error)."""
    name = type(exc).__name__
    domain = os.environ.get("E2B_DOMAIN", "e2b.app")
    if name == "AuthenticationException":
        return f"E2B rejected the API key (E2B_API_KEY): {exc}"
    if _is_network_error(exc):
        return f"cannot reach E2B at api.{domain}: no network or a firewall ({name}: {exc})"
    return f"E2B sandbox failed to start ({name}: {exc})"


def _is_network_error(exc: BaseException) -> bool:
    names = {"ConnectError", "ConnectTimeout", "SandboxUnreachableException", "RemoteProtocolError"}
    return type(exc).__name__ in names or isinstance(exc, ConnectionError)


class E2BSandbox:
    """A stateful Python session in an E2B sandbox.

    Args:
        timeout: Wall-clock seconds per ``run``.
        output_chars: stdout / stderr are cut to this many characters.
        factory: Creates the remote sandbox (default: ``e2b_code_interpreter.Sandbox.create``); tests
            inject one here.
    """

    def __init__(self, timeout: float = 5.0, output_chars: int = 4000,
                 factory: Callable[[], Any] | None = None) -> None:
        self.timeout = timeout
        self.output_chars = output_chars
        self._factory = factory or self._default_factory
        self._sandbox: Any = None
        self.restarts = 0

    @classmethod
    def from_settings(cls, settings: SandboxSettings) -> E2BSandbox:
        """Build from settings; fails fast without ``E2B_API_KEY``.

        Raises:
            ConfigError: when the key is missing.
            MissingExtraError: when ``e2b-code-interpreter`` is not installed.
        """
        if not os.environ.get("E2B_API_KEY"):
            raise ConfigError(NO_KEY)
        _sdk()
        return cls(timeout=settings.exec_timeout, output_chars=settings.exec_output_chars)

    @staticmethod
    def _default_factory() -> Any:
        return _sdk().Sandbox.create(timeout=SESSION_LIFETIME, allow_internet_access=False, envs={})

    def _ensure(self) -> Any:
        if self._sandbox is None:
            try:
                self._sandbox = self._factory()
            except Exception as exc:  # the SDK raises many unrelated types: turn them into one message
                message = describe_start_failure(exc)
                if type(exc).__name__ == "AuthenticationException":
                    raise ConfigError(message) from None
                raise SandboxError(message) from None
        return self._sandbox

    def run(self, code: str) -> ExecResult:
        """Run ``code`` in the session; timeouts and remote errors become results, not exceptions."""
        sandbox = self._ensure()
        start = time.perf_counter()
        try:
            execution = sandbox.run_code(code, timeout=self.timeout)
        except Exception as exc:
            duration = time.perf_counter() - start
            if _is_network_error(exc):
                self._discard()
                raise SandboxError(describe_start_failure(exc)) from None
            timed_out = "Timeout" in type(exc).__name__ or "timed out" in str(exc).lower()
            log.warning("e2b run failed (%s): %s; the next run starts a fresh sandbox", type(exc).__name__, exc)
            self._discard()
            return ExecResult(duration=duration, killed=True, kill_reason="timeout" if timed_out else "crash",
                              stderr=f"{type(exc).__name__}: {exc}"[: self.output_chars])
        duration = time.perf_counter() - start
        stdout, cut_out = self._cut("".join(execution.logs.stdout))
        stderr, cut_err = self._cut("".join(execution.logs.stderr))
        result = ExecResult(stdout=stdout, stderr=stderr, value=execution.text, duration=duration,
                            truncated=cut_out or cut_err)
        if execution.error is not None:
            tb_lines = (execution.error.traceback or "").strip().splitlines()
            result.error_type = execution.error.name
            result.error_message = execution.error.value
            result.traceback = "\n".join(tb_lines[-8:]) or None
        return result

    def _cut(self, text: str) -> tuple[str, bool]:
        if len(text) <= self.output_chars:
            return text, False
        return text[: self.output_chars] + "\n...[output truncated]", True

    def _discard(self) -> None:
        sandbox, self._sandbox = self._sandbox, None
        self.restarts += 1
        if sandbox is not None:
            try:
                sandbox.kill()
            except Exception as exc:  # best effort: the sandbox may already be gone
                log.debug("e2b kill failed: %s", exc)

    def close(self) -> None:
        """Kill the remote sandbox (if one was started)."""
        if self._sandbox is not None:
            self._discard()
            self.restarts -= 1

    def __enter__(self) -> E2BSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
