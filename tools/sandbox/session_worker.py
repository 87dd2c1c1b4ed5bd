"""The host's side of one sandbox session process: start it, talk to it, read its output, end it.

:class:`SessionWorker` starts ``python -I -S -B -X utf8 -c KERNEL_SOURCE KEY=VALUE...`` (the session
worker, ``tools/sandbox/_kernel_worker.py``, after the worker set-up and the execution helpers:
:mod:`ponder.tools.sandbox.launch`) in the chosen isolation mode and, where the machine allows, in its
own cgroup, with stdout and stderr on
host files; it writes requests to the protocol process's pipe and reads its length-prefixed JSON frames,
keeping only the one that answers the request's nonce. :class:`~ponder.tools.sandbox.local.LocalSandbox`
decides what to run and how to report it.
"""

from __future__ import annotations

import json
import logging
import os
import select
import shutil
import subprocess
import tempfile
import time
import weakref
from typing import Any

from ponder.core.errors import SandboxError
from ponder.tools.sandbox.cgroups import SessionCgroup
from ponder.tools.sandbox.isolation import (
    cgroup_text,
    describe_limits,
    drop_uid_for,
    kill_group,
    open_cgroup,
    spawn,
    wait_exit,
)
from ponder.tools.sandbox.launch import KERNEL_SOURCE, start_worker

log = logging.getLogger(__name__)


class SessionWorker:
    """One running session process (``KERNEL_SOURCE``), its pipes to the protocol process and its output files.

    Starting it waits (until ``deadline``) for the worker's ``ready`` frame and logs the limits in force.

    Raises:
        SandboxError: when the session process cannot be started or does not report ready.
    """

    def __init__(self, mode: str, config: dict[str, Any], deadline: float) -> None:
        self.mode = mode
        self.workdir = tempfile.mkdtemp(prefix="ponder-session-")
        self._iodir = tempfile.mkdtemp(prefix="ponder-session-io-")
        self._buf = bytearray()
        self._fds: list[int] = []
        self.proc: subprocess.Popen | None = None
        self._procs: list[subprocess.Popen] = []
        self.cgroup: SessionCgroup | None = None
        self._cgroups: list[SessionCgroup] = []
        self._finalizer = weakref.finalize(self, SessionWorker._cleanup, self._fds, [self.workdir, self._iodir],
                                           self._procs, self._cgroups)
        try:
            self._start(config, deadline)
        except BaseException:
            self.dispose()
            raise

    def _start(self, config: dict[str, Any], deadline: float) -> None:
        drop_uid = drop_uid_for(self.mode, self.workdir)
        self.out, self.err = (os.open(os.path.join(self._iodir, name), os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
                              for name in ("out", "err"))
        req_r, self._req = os.pipe()
        self._resp, resp_w = os.pipe()
        self._fds += [self.out, self.err, self._req, self._resp]
        passed = [req_r, resp_w]  # the child's ends: closed here once it started
        try:
            self.cgroup = open_cgroup(int(config["as"]))
            if self.cgroup is not None:
                self._cgroups.append(self.cgroup)
            pipes = {"req_fd": req_r, "resp_fd": resp_w}
            self.proc = start_worker(KERNEL_SOURCE, self.mode, self.workdir, {**config, **pipes}, drop_uid=drop_uid,
                                     cgroup=self.cgroup, pass_fds=passed, popen=spawn,
                                     stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err)
        except OSError as exc:
            raise SandboxError(f"could not start the sandbox session: {exc}") from exc
        finally:
            for fd in passed:
                os.close(fd)
        self._procs.append(self.proc)
        os.set_blocking(self._req, False)
        try:
            self._pidfd: int | None = os.pidfd_open(self.proc.pid)
            self._fds.append(self._pidfd)
        except (AttributeError, OSError):
            self._pidfd = None
        ready = self.read_frame("ready", deadline)
        if not isinstance(ready, dict):
            tail = os.pread(self.err, 2000, 0).decode("utf-8", "replace")
            raise SandboxError(f"the sandbox session did not start ({ready}): {tail.strip()[-500:]}")
        self.isolation, self.dropped_uid = ready.get("isolation"), ready.get("dropped_uid")
        nproc = bool(self.dropped_uid) or self.isolation in ("bwrap", "userns+net")
        log.info("%s", describe_limits(self.mode, cgroup_text(self.cgroup), config, nproc))

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer hit the session's cgroup (its memory limit)."""
        return self.cgroup is not None and self.cgroup.oom_killed()

    @staticmethod
    def _cleanup(fds: list[int], dirs: list[str], procs: list[subprocess.Popen], cgroups: list[SessionCgroup]) -> None:
        for proc in procs:
            if proc.returncode is None:
                kill_group(proc.pid)
                proc.wait()
        for cgroup in cgroups:
            cgroup.close()  # kills what escaped the process group, removes the cgroup
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        fds.clear()
        for path in dirs:
            shutil.rmtree(path, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the session's process group (from any thread; a reaped process is left alone)."""
        if self.proc is not None and self.proc.returncode is None:
            kill_group(self.proc.pid)

    def dispose(self) -> None:
        """Kill and reap the session, close its pipes, remove its dirs (idempotent)."""
        self._finalizer()

    def alive(self) -> bool:  # noqa: D102
        return self.proc is not None and self.proc.poll() is None

    def _wait(self, fd: int, event: int, deadline: float) -> str:
        """Wait for ``event`` on ``fd``: ``ready``, ``timeout`` or ``dead`` (the session process exited)."""
        poller = select.poll()
        poller.register(fd, event)
        if self._pidfd is not None:
            poller.register(self._pidfd, select.POLLIN)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            events = dict(poller.poll(min(left, 0.05 if self._pidfd is None else left) * 1000))
            if events.get(fd):
                return "ready"
            if events or (self._pidfd is None and self.proc.poll() is not None):
                return "dead"

    def send(self, data: bytes, deadline: float) -> str:
        """Write a request: ``ready`` when written, else ``timeout`` or ``dead``."""
        view = memoryview(data)
        while view:
            state = self._wait(self._req, select.POLLOUT, deadline)
            if state != "ready":
                return state
            try:
                view = view[os.write(self._req, view) :]
            except BlockingIOError:
                continue
            except OSError:
                return "dead"
        return "ready"

    def read_frame(self, nonce: str, deadline: float, max_bytes: int = 1 << 20) -> dict | str:
        """Read frames until the one answering ``nonce``: that dict, or ``timeout``, ``dead`` or ``garbled``."""
        while True:
            newline = self._buf.find(b"\n", 0, 24)
            if newline >= 0:
                head = bytes(self._buf[:newline])
                if not head.isdigit() or int(head) > max_bytes:
                    return "garbled"
                end = newline + 1 + int(head)
                if len(self._buf) >= end:
                    payload = bytes(self._buf[newline + 1 : end])
                    del self._buf[:end]
                    try:
                        frame = json.loads(payload)
                    except ValueError:
                        return "garbled"
                    if isinstance(frame, dict) and frame.get("nonce") == nonce:
                        return frame
                    continue  # forged or stale: only the answer to this request counts
            elif len(self._buf) >= 24:
                return "garbled"
            state = self._wait(self._resp, select.POLLIN, deadline)
            if state != "ready":
                return state
            data = os.read(self._resp, 1 << 16)
            if not data:
                return "dead"
            self._buf += data

    def read_output(self, fd: int, chars: int) -> tuple[str, bool, int]:
        """``(text cut to chars, whether it was cut, bytes written)`` of the run's stdout or stderr file."""
        size = os.fstat(fd).st_size
        data = os.pread(fd, 4 * chars + 4, 0)
        text = data.decode("utf-8", errors="replace")
        cut = len(text) > chars or size > len(data)
        return (text[:chars] + "\n...[output truncated]" if cut else text), cut, size

    def exit_status(self, grace: float = 0.0) -> int:
        """Kill the session (after ``grace`` s to die by itself) and return its status (``128 + signal`` mostly)."""
        if grace:
            wait_exit(self.proc.pid, time.monotonic() + grace)
        self.kill()
        return self.proc.wait()
