"""LocalSandbox: a stateful Python session for model-written code, in a separate isolated process.

One :class:`LocalSandbox` is one session (one agent run or sample): variables, functions and imports
persist between :meth:`~LocalSandbox.run` calls; :meth:`~LocalSandbox.close` ends it. The session is a
small persistent worker (``tools/sandbox/_kernel_worker.py``, started and spoken to by
:mod:`ponder.tools.sandbox.session_worker`) speaking a length-prefixed JSON protocol
over two pipes, not a Jupyter kernel: it starts in tens of milliseconds (a kernel takes about a second)
and is easy to confine, because it is a ``python -I -S -B`` process with nothing but the stdlib. It is two
processes: the protocol process holds the pipes and the per-request nonce and never runs model code; the
session process it forks (before the first request) runs the cells, answers it on a private pipe, and is
stopped between runs. Results come only from the protocol process, which accepts one well-formed answer
per request; model code can choose its own cell's result, never answer another request or the host.

Isolation (:mod:`ponder.tools.sandbox.isolation`): by default (``auto``)
bubblewrap: no network, new pid/ipc/uts (and, not as root, user) namespaces, a read-only view of the
system dirs and the interpreter only (not the project, not homes, not other sessions), a private 64 MiB
tmpfs ``/tmp`` holding the session's working dir and a 16 MiB ``/dev/shm``, the kernel's sensitive
``/proc`` files masked, a scrubbed environment. Where bwrap is missing or cannot start the session does
not open (:class:`~ponder.core.errors.SandboxError`); ``unshare`` (network and pid namespaces, filesystem *not*
isolated) and ``none`` run only when set (``sandbox_isolation``) and are warned at every session. In
every mode the worker joins a fresh session keyring, drops root to a fresh unprivileged uid (model code
never runs as uid 0) and installs a seccomp filter (:mod:`ponder.tools.sandbox.seccomp`) before any
model code runs.

Bounded, per run: wall time (``timeout``; the whole process group is SIGKILLed, the pid namespace dies
with it), CPU time (``RLIMIT_CPU``: cumulative per process, so the worker moves the soft limit to
"CPU used so far + ``cpu_seconds``" before each run; the hard limit is a per-session budget because an
unprivileged process cannot raise it again, and code that ignores ``SIGXCPU`` is still stopped by the
wall timeout), address space per process (``RLIMIT_AS``), size of every file written (``RLIMIT_FSIZE``,
which also caps stdout/stderr: they go to host files truncated before each run; filling one kills the
run with reason ``output``), process count (``RLIMIT_NPROC``, see the isolation module), and the
lifetime of child processes (killed after every run), open files (``RLIMIT_NOFILE``). Per session,
where the machine allows a cgroup (the log line at the start says which limits are in force): memory
of all its processes together, memfd and tmpfs pages included (hitting it kills the run with reason
``memory``), and their count. A killed or crashed session is discarded; the
next run starts a fresh one and the killed run's summary tells the model that its variables are lost.
The worker sets its limits itself, before any model code runs, rather than in a ``preexec_fn``: that is
unsafe in a threaded parent and forces a full ``fork()`` of it (slow for a process holding a model).

Not bounded: the session process's own bookkeeping, which the code shares a process with (it can raise
its own CPU soft limit up to the session's hard one, or end its session, e.g. by killing the protocol
process, same uid: the run is then reported killed and the session restarts); without a cgroup, memory
of many processes together; disk use and file access outside bwrap; the kernel interfaces the seccomp
filter allows (the network stack of the sandbox's own namespace, the filesystems it sees, ordinary
syscalls).
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Any, Self

from ponder.core.errors import ConfigError, SandboxError
from ponder.core.types import IsolationMode, choices
from ponder.tools.executor import ExecResult
from ponder.tools.sandbox.isolation import MAX_FILES, MAX_PROCESSES, OUTPUT_FILE_BYTES, select_isolation
from ponder.tools.sandbox.session_worker import SessionWorker

if TYPE_CHECKING:
    from ponder.core.settings import Settings

START_TIMEOUT = 20.0  # seconds for a new session to report ready
RESTARTED = "The Python session was restarted: all variables, functions and imports from earlier runs are lost."
FRESH = "Note: the previous Python session ended unexpectedly, so this ran in a fresh one (earlier variables are lost)."


class SessionResult(ExecResult):
    """An :class:`ExecResult` of a session; ``note`` (session restarted, state lost) ends its summary."""

    note: str | None = None

    def summary(self, limit: int = 1500) -> str:
        """A short observation text for the model, with the session note."""
        text = super().summary(limit)
        return f"{text}\n{self.note}" if self.note else text


class LocalSandbox:
    """A stateful, isolated Python session (see the module docstring).

    Args:
        timeout: Wall-clock seconds per run.
        memory_mb: Address-space limit per process (``RLIMIT_AS``) in MiB.
        output_chars: Characters of stdout/stderr (and of a value's ``repr``) kept per run.
        cpu_seconds: CPU seconds per run (default: ``ceil(timeout) + 1``).
        isolation: ``bwrap``, ``unshare``, ``none``, or ``auto`` (the best one that works here).

    Attributes:
        restarts: How many times the session was replaced after a kill or a crash.
        isolation_in_use: The mode in use: ``bwrap``, ``unshare`` or ``none``.

    Raises:
        ConfigError: for an unknown isolation mode.
        SandboxError: when the session cannot be started.
    """

    def __init__(self, timeout: float = 5.0, memory_mb: int = 512, output_chars: int = 4000,
                 cpu_seconds: int | None = None, isolation: IsolationMode = "auto") -> None:
        if isolation not in choices(IsolationMode):
            raise ConfigError(f"unknown isolation mode {isolation!r} (auto, bwrap, unshare or none)")
        self.timeout = float(timeout)
        self.memory_mb = int(memory_mb)
        self.output_chars = int(output_chars)
        self.cpu_seconds = int(cpu_seconds) if cpu_seconds is not None else math.ceil(self.timeout) + 1
        self.file_bytes = max(OUTPUT_FILE_BYTES, 32 * self.output_chars)
        self.restarts = 0
        self._closed = False
        self._lock = threading.Lock()
        self._worker: SessionWorker | None = None
        self.isolation_in_use: str = select_isolation(isolation, self._probe)
        with self._lock:
            if self._worker is None:
                self._worker = self._start(self.isolation_in_use)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Self:
        """Build from settings (``exec_timeout``, ``exec_memory_mb``, ``exec_output_chars``, ``sandbox_isolation``).

        Args:
            settings: The settings.
            **overrides: Constructor arguments that win over the settings (e.g. ``isolation``).
        """
        kwargs: dict[str, Any] = {"timeout": settings.exec_timeout, "memory_mb": settings.exec_memory_mb,
                                  "output_chars": settings.exec_output_chars, "isolation": settings.sandbox_isolation}
        return cls(**{**kwargs, **overrides})

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the session (killing a run in progress); later runs raise :class:`SandboxError`."""
        self._closed = True
        worker = self._worker
        if worker is not None:
            worker.kill()
        with self._lock:
            if self._worker is not None:
                self._worker.dispose()
                self._worker = None

    def _start(self, mode: str) -> SessionWorker:
        config = {"chars": self.output_chars, "cpu": self.cpu_seconds, "cpu_hard": max(300, 30 * self.cpu_seconds),
                  "as": self.memory_mb << 20, "fsize": self.file_bytes, "core": 0, "nproc": MAX_PROCESSES,
                  "nofile": MAX_FILES}
        return SessionWorker(mode, config, time.monotonic() + max(START_TIMEOUT, self.timeout))

    def _probe(self, mode: str) -> str | None:
        """Start a session in ``mode``: ``None`` when it is isolated (kept for this sandbox), else why not."""
        try:
            worker = self._start(mode)
        except (OSError, SandboxError) as exc:
            return f"{mode} could not start a session: {exc}"
        expected = {"bwrap"} if mode == "bwrap" else {"net", "userns+net"}
        if worker.isolation not in expected:
            worker.dispose()
            return f"{mode} does not isolate here (the worker reported {worker.isolation})"
        self._worker = worker
        return None

    def run(self, code: str) -> SessionResult:
        """Run ``code`` in the session and report what happened.

        Never raises for anything the code does: errors, timeouts, floods and crashes are in the result.
        After a kill or crash the next run starts a fresh session.

        Raises:
            SandboxError: when the sandbox is closed or a session cannot be started.
        """
        with self._lock:
            if self._closed:
                raise SandboxError("the sandbox is closed")
            note = None
            if self._worker is not None and not self._worker.alive():  # died between runs
                self._replace()
                note = FRESH
            if self._worker is None:
                self._worker = self._start(self.isolation_in_use)
            result = self._execute(self._worker, code)
            if result.note:
                self._replace()
            elif note:
                result.note = note
            return result

    def _replace(self) -> None:
        if self._worker is not None:
            self._worker.dispose()
            self._worker = None
        self.restarts += 1

    def _execute(self, worker: SessionWorker, code: str) -> SessionResult:
        """Run ``code`` in ``worker`` and build its result (killed, crashed or exited early included)."""
        started = time.monotonic()
        reply = self._exchange(worker, code, started + self.timeout)
        duration = time.monotonic() - started
        status = 0 if isinstance(reply, dict) else worker.exit_status(1.0 if reply == "dead" else 0.0)  # kills it
        stdout, cut_out, out_size = worker.read_output(worker.out, self.output_chars)
        stderr, cut_err, err_size = worker.read_output(worker.err, self.output_chars)
        data = reply if isinstance(reply, dict) else {}
        fields = {k: data[k] for k in ("value", "error_type", "error_message", "traceback")
                  if isinstance(data.get(k), str)}
        result = SessionResult(stdout=stdout, stderr=stderr, duration=round(duration, 4),
                               truncated=cut_out or cut_err or data.get("value_truncated") is True, **fields)
        reason = self._kill_reason(worker, reply, status, duration, stderr, max(out_size, err_size))
        if reason:
            result.killed, result.kill_reason, result.note = True, reason, RESTARTED
        elif not data:  # the session ended by itself, without a signal
            result.error_type = "SystemExit"
            result.error_message = f"the program exited with status {status} before finishing"
            result.note = RESTARTED
        return result

    def _exchange(self, worker: SessionWorker, code: str, deadline: float) -> dict | str:
        """Send ``code`` with a fresh nonce: the answer, or ``timeout``, ``dead`` or ``garbled``."""
        nonce = os.urandom(8).hex()
        payload = code.encode("utf-8", "surrogatepass")
        for fd in (worker.out, worker.err):
            os.ftruncate(fd, 0)
        state = worker.send(b"%s %d\n" % (nonce.encode(), len(payload)) + payload, deadline)
        reply = worker.read_frame(nonce, deadline, 24 * self.output_chars + 4096) if state == "ready" else state
        if isinstance(reply, dict) and "failure" in reply:  # the session process did not answer properly
            return "garbled"
        return reply

    def _kill_reason(self, worker: SessionWorker, reply: dict | str, status: int, duration: float, stderr: str,
                     output_bytes: int) -> str | None:
        """Why the run was killed (``closed``, ``output``, ``timeout``, ``crash``, ``memory``, ``cpu``), or ``None``."""
        answered = isinstance(reply, dict)
        if self._closed and not answered:
            return "closed"  # close() ended the run
        if output_bytes >= self.file_bytes:
            worker.kill()
            return "output"
        if reply == "timeout":
            return "timeout"
        if reply == "garbled":
            return "crash"
        if answered and reply:
            return None
        if worker.oom_killed():
            return "memory"  # the session's cgroup hit its memory limit
        return self._signal_reason(worker, status, duration, stderr)

    def _signal_reason(self, worker: SessionWorker, status: int, duration: float, stderr: str) -> str | None:
        """The kill reason of a session that ended with ``status`` and no answer, ``None`` without a signal."""
        sig = -status if status < 0 else (status - 128 if worker.mode != "none" and status > 128 else 0)
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and duration * (os.cpu_count() or 1) >= self.cpu_seconds):
            return "cpu"  # SIGKILL: the hard CPU limit, unless too little time passed (the OOM killer)
        if (sig == signal.SIGKILL and worker.cgroup is None) or "MemoryError" in stderr:
            return "memory"  # without a cgroup an unexplained SIGKILL is most likely the OOM killer
        return "crash" if sig else None
