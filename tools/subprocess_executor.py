"""A minimal isolated runner for model-written Python: one fresh, limited process per :meth:`run`.

Each run gets a fresh worker (``tools/_worker_setup.py`` followed by ``tools/_exec_worker.py``) started
with ``python -I -S -B`` (stdlib only, no site-packages, no ``PYTHON*`` variables), a scrubbed environment
(``PATH``, ``LANG``, ``HOME``/``TMPDIR`` = the run's temp dir) and stdout/stderr redirected to
size-limited files.

What is bounded (by the kernel, set by the worker before any model code runs):

* wall time: the whole process group is SIGKILLed after ``timeout`` (and under bwrap the pid namespace
  dies with it, so children that called ``setsid`` die too);
* CPU time per process (``RLIMIT_CPU``), address space per process (``RLIMIT_AS``), size of every file
  written, stdout/stderr included (``RLIMIT_FSIZE``), no core dumps;
* process/thread count (``RLIMIT_NPROC``) only where the kernel enforces it: as root the worker drops
  to a fresh unused uid (root itself is exempt from ``RLIMIT_NPROC``), under bwrap as a normal user it
  counts the sandbox's user namespace, in ``unshare`` mode only inside a new user namespace;
* open files (``RLIMIT_NOFILE``);
* where the machine allows a cgroup (one per run; the log line at construction says which limits are in
  force): memory of all the run's processes together, memfd and tmpfs pages included (hitting it kills
  the run with reason ``memory``), and their count.

Isolation modes: ``bwrap`` (the default, ``auto``: no network; new pid/ipc/uts namespaces; only
``/usr``, ``/etc``, ``/lib*`` and the interpreter's prefix visible, read-only, so homes and the project
are hidden; a small private tmpfs ``/tmp`` is the only writable place; sensitive ``/proc`` files masked);
where bwrap is missing or cannot start the executor raises :class:`~ponder.core.errors.SandboxError` and runs
nothing. ``unshare`` (new network and pid namespaces, the filesystem is *not* isolated) and ``none`` (no
namespaces) run only when set (``sandbox_isolation``) and are warned by every executor. In every mode the
worker joins a fresh session keyring, never runs model code as uid 0 and installs a seccomp filter
(:mod:`ponder.tools.sandbox.seccomp`: keyrings, io_uring, bpf, perf, namespaces, mounts, raw/packet/vsock
sockets and more are denied).

The limits are set by the worker itself rather than in a ``preexec_fn``: ``preexec_fn`` is unsafe in a
threaded parent and forces a full ``fork()`` of it (slow for a process holding a model).

Not bounded: without a cgroup, total memory of many processes (each has its own ``RLIMIT_AS``) and, as
a normal user without bwrap, their count (only the timeout, the per-process CPU limit and the pid
namespace stop a fork bomb); disk writes in ``unshare``/``none`` modes (per file only); processes that
leave the process group in ``none`` mode without a cgroup; the kernel interfaces the seccomp filter
allows.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ponder.core.errors import ConfigError, SandboxError
from ponder.tools.executor import ExecResult
from ponder.tools.sandbox.cgroups import SessionCgroup
from ponder.tools.sandbox.isolation import (
    MAX_FILES,
    MAX_PROCESSES,
    OUTPUT_FILE_BYTES,
    Isolation,
    SettingsExecutor,
    cgroup_text,
    describe_limits,
    drop_uid_for,
    kill_group,
    open_cgroup,
    select_isolation,
    wait_exit,
)
from ponder.tools.sandbox.launch import WORKER_SOURCE, start_worker

log = logging.getLogger(__name__)



class SubprocessExecutor(SettingsExecutor):
    """Runs each program in a fresh isolated Python process with CPU, memory, time and output limits.

    Args:
        timeout: Wall-clock seconds per run.
        memory_mb: Address-space limit of the process (``RLIMIT_AS``) in MiB.
        output_chars: Characters of stdout/stderr (and of a value's ``repr``) kept.
        cpu_seconds: CPU-time limit per process (default: ``ceil(timeout) + 1``).
        isolation: ``bwrap``, ``unshare``, ``none``, or ``auto`` (the best one that works here).

    Attributes:
        isolation_in_use: The mode actually used: ``bwrap``, ``unshare`` or ``none``.

    Raises:
        ConfigError: for an unknown isolation mode.
        SandboxError: when the requested isolation mode does not work on this machine.
    """

    def __init__(self, timeout: float = 5.0, memory_mb: int = 512, output_chars: int = 4000,
                 cpu_seconds: int | None = None, isolation: Isolation = "auto") -> None:
        if isolation not in ("auto", "bwrap", "unshare", "none"):
            raise ConfigError(f"unknown isolation mode {isolation!r} (auto, bwrap, unshare or none)")
        self.timeout = float(timeout)
        self.memory_mb = int(memory_mb)
        self.output_chars = int(output_chars)
        self.cpu_seconds = int(cpu_seconds) if cpu_seconds is not None else math.ceil(self.timeout) + 1
        self.file_bytes = max(OUTPUT_FILE_BYTES, 32 * self.output_chars)
        self._closed = False
        self._active: set[int] = set()
        self._lock = threading.Lock()
        self.isolation_in_use: str = self._select(isolation)
        nproc = os.geteuid() == 0 or self.isolation_in_use != "none"
        group = cgroup_text(None, self.memory_mb << 20)
        log.info("%s", describe_limits(self.isolation_in_use, group, self._config(), nproc))

    def close(self) -> None:
        """Kill any run still in progress; later runs raise :class:`SandboxError`."""
        self._closed = True
        with self._lock:
            for pid in list(self._active):
                kill_group(pid)

    # -- isolation ------------------------------------------------------------------------------

    def _select(self, requested: str) -> str:
        return select_isolation(requested, self._probe)

    def _probe(self, mode: str) -> str | None:
        """Run a trivial program in ``mode``: ``None`` when it worked and was isolated, else why not."""
        try:
            result, isolation = self._launch("1 + 1", mode, timeout=max(self.timeout, 15.0))
        except (OSError, SandboxError) as exc:
            return f"{mode} could not start: {exc}"
        if result.value == "2" and isolation in ({"bwrap"} if mode == "bwrap" else {"net", "userns+net"}):
            return None
        return f"{mode} does not work here: {result.summary(300)} {result.stderr[-300:]}"

    def _config(self) -> dict[str, Any]:
        """The worker's limit keys (without the per-run ones)."""
        return {"chars": self.output_chars, "cpu": self.cpu_seconds, "as": self.memory_mb << 20,
                "fsize": self.file_bytes, "core": 0, "nproc": MAX_PROCESSES, "nofile": MAX_FILES}

    # -- running --------------------------------------------------------------------------------

    def run(self, code: str) -> ExecResult:
        """Run ``code`` in a fresh process and report what happened.

        Never raises for anything the code does (errors, timeouts, floods, crashes are in the result).

        Raises:
            SandboxError: when the executor is closed or the process cannot be started.
        """
        if self._closed:
            raise SandboxError("the executor is closed")
        return self._launch(code, self.isolation_in_use, self.timeout)[0]

    def _launch(self, code: str, mode: str, timeout: float) -> tuple[ExecResult, str | None]:
        workdir = tempfile.mkdtemp(prefix="ponder-exec-")
        try:
            return self._launch_in(code, mode, workdir, timeout)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _launch_in(self, code: str, mode: str, workdir: str, timeout: float) -> tuple[ExecResult, str | None]:
        drop_uid = drop_uid_for(mode, workdir)  # root: a fresh uid with its own NPROC count
        # the sandbox's view of workdir is a private tmpfs under bwrap; these files stay outside it
        files = tempfile.mkdtemp(prefix="ponder-exec-io-")
        cgroup = None
        try:
            cgroup = open_cgroup(self.memory_mb << 20)
            paths = {name: os.path.join(files, name) for name in ("code", "out", "err", "result")}
            Path(paths["code"]).write_text(code, encoding="utf-8", errors="surrogatepass")
            with (open(paths["code"], "rb") as stdin, open(paths["out"], "wb") as out,
                  open(paths["err"], "wb") as err, open(paths["result"], "wb") as res):
                config = {**self._config(), "result_fd": res.fileno()}
                proc, started = self._spawn(config, mode, workdir, drop_uid, cgroup, stdin=stdin, stdout=out,
                                            stderr=err)
                status, usage, timed_out = self._wait(proc, started + timeout)
            duration = time.monotonic() - started
            oom = None if cgroup is None else cgroup.oom_killed()
            return self._report(paths, status, usage, timed_out, duration, mode, oom)
        finally:
            if cgroup is not None:
                cgroup.close()
            shutil.rmtree(files, ignore_errors=True)

    @staticmethod
    def _spawn(config: dict[str, Any], mode: str, workdir: str, drop_uid: int | None, cgroup: SessionCgroup | None,
               **streams: Any) -> tuple[subprocess.Popen, float]:
        """Start the worker (:func:`~ponder.tools.sandbox.launch.start_worker`): (process, start time)."""
        started = 0.0

        def popen(argv: list[str], **kwargs: Any) -> subprocess.Popen:
            nonlocal started
            started = time.monotonic()  # the run's duration counts from here, not from building the command
            return subprocess.Popen(argv, **kwargs)

        try:
            proc = start_worker(WORKER_SOURCE, mode, workdir, config, drop_uid=drop_uid, cgroup=cgroup,
                                pass_fds=(config["result_fd"],), popen=popen, **streams)
        except OSError as exc:
            raise SandboxError(f"could not start the code worker: {exc}") from exc
        return proc, started

    def _wait(self, proc: subprocess.Popen, deadline: float) -> tuple[int, Any, bool]:
        """Wait up to ``deadline``, kill the process group and reap: (exit status, rusage, timed out)."""
        with self._lock:
            self._active.add(proc.pid)
        timed_out = False
        try:
            timed_out = not wait_exit(proc.pid, deadline)
        finally:
            with self._lock:  # the pid stays ours (unreaped) while close() may still signal it
                self._active.discard(proc.pid)
                kill_group(proc.pid)  # on timeout, and leftovers of a finished run in the non-bwrap modes
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen consistent
        return proc.returncode, usage, timed_out

    def _read(self, path: str) -> tuple[str, bool, int]:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            data = fh.read(4 * self.output_chars + 4)
        text = data.decode("utf-8", errors="replace")
        cut = len(text) > self.output_chars or size > len(data)
        return (text[: self.output_chars] + "\n...[output truncated]" if cut else text), cut, size

    def _report(self, paths: dict[str, str], status: int, usage: Any, timed_out: bool, duration: float,
                mode: str, oom: bool | None = None) -> tuple[ExecResult, str | None]:
        stdout, cut_out, out_size = self._read(paths["out"])
        stderr, cut_err, err_size = self._read(paths["err"])
        try:
            with open(paths["result"], "rb") as fh:
                data = json.loads(fh.read(self.file_bytes).decode("utf-8", errors="replace"))
            data = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            data = {}
        fields = {k: data[k] for k in ("value", "error_type", "error_message", "traceback")
                  if isinstance(data.get(k), str)}
        result = ExecResult(stdout=stdout, stderr=stderr, duration=round(duration, 4),
                            truncated=cut_out or cut_err or data.get("value_truncated") is True, **fields)
        # bwrap and the unshare worker report a signal death as 128 + signal; subprocess as -signal
        sig = -status if status < 0 else (status - 128 if mode != "none" and status > 128 else 0)
        cpu = usage.ru_utime + usage.ru_stime  # under bwrap the sandbox's CPU time is not in here
        reason = None
        if timed_out:
            reason = "timeout"
        elif max(out_size, err_size) >= self.file_bytes:
            reason = "output"
        elif sig and oom:
            reason = "memory"  # the run's cgroup hit its memory limit
        elif sig == signal.SIGXCPU or (sig == signal.SIGKILL and (
                cpu >= self.cpu_seconds - 0.5 or duration * (os.cpu_count() or 1) >= self.cpu_seconds)):
            reason = "cpu"  # SIGKILL: the hard CPU limit, unless too little time passed (then the OOM killer)
        elif (sig == signal.SIGKILL and oom is None) or (not data and "MemoryError" in stderr):
            reason = "memory"  # without a cgroup an unexplained SIGKILL is most likely the OOM killer
        elif sig:
            reason = "crash"
        elif not data:
            result.error_type = result.error_type or "SystemExit"
            result.error_message = f"the program exited with status {status} before finishing"
        if reason and reason != "timeout" and self._closed:
            reason = "closed"  # close() killed the run
        if reason:
            result.killed, result.kill_reason = True, reason
        isolation = data.get("isolation")
        return result, isolation if isinstance(isolation, str) else None
