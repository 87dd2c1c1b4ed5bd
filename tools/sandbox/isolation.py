"""Isolation helpers shared by the one-shot executor and the local sandbox session.

* :func:`select_isolation` picks ``bwrap``, ``unshare`` or ``none`` once per process (probing each mode
  with a caller-supplied probe; the answer is cached for every executor) and logs a fallback once.
* :func:`bwrap_prefix` builds the bubblewrap command line: no network, new pid/ipc/uts namespaces, only
  the system dirs and the interpreter's prefix visible (read-only), a private tmpfs ``/tmp``.
* :func:`sandbox_env` is the scrubbed environment; :func:`drop_uid_for` picks a fresh unprivileged uid
  when running as root (root is exempt from ``RLIMIT_NPROC``).
* :func:`spawn` starts a process from one long-lived thread: bwrap's ``--die-with-parent`` (and
  ``PR_SET_PDEATHSIG``) fire when the *thread* that forked the process exits, which must not end a
  session that outlives the caller's thread.
* :func:`wait_exit` and :func:`kill_group` wait for and kill a process group.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Literal, Self

from ponder.errors import SandboxError

log = logging.getLogger(__name__)

Isolation = Literal["auto", "bwrap", "unshare", "none"]
OUTPUT_FILE_BYTES = 1 << 20  # RLIMIT_FSIZE floor: caps stdout/stderr files and every file the code writes
SANDBOX_TMP_BYTES = 64 << 20  # size of the private tmpfs /tmp under bwrap
MAX_PROCESSES = 64  # RLIMIT_NPROC (threads count too) where the kernel enforces it
# the only host dirs visible under bwrap (read-only), besides the interpreter's own prefix
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
_probe_lock = threading.Lock()
_probed: dict[str, bool] = {}  # isolation mode -> whether it works here (probed once per process)
_warned: set[str] = set()


@functools.cache
def interpreter() -> Path:
    """Return the base interpreter (not the venv's): with ``-I -S`` only its stdlib is needed."""
    base = Path(sys.base_prefix)
    for name in (f"python{sys.version_info.major}.{sys.version_info.minor}", "python3"):
        if (base / "bin" / name).is_file():
            return base / "bin" / name
    return Path(os.path.realpath(sys.executable))


def world_readable(path: Path) -> bool:
    """Whether an unprivileged uid can use ``path`` (every ancestor ``o+x``, ``path`` itself ``o+rx``)."""
    try:
        return all(os.stat(p).st_mode & 0o001 for p in path.parents) and os.stat(path).st_mode & 0o005 == 5
    except OSError:
        return False


@functools.cache
def mount_args() -> tuple[str, ...]:
    """Return bwrap's mount arguments: system dirs and the interpreter read-only, nothing else of the host."""
    args: list[str] = []
    for path in map(Path, _SYSTEM_DIRS):
        if path.is_symlink():  # merged /usr: /bin -> usr/bin
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    keep = [Path(sys.base_prefix).resolve()]
    if not interpreter().is_relative_to(keep[0]):
        keep.append(interpreter().parent)
    for path in keep:
        if not any(path.is_relative_to(d) for d in _SYSTEM_DIRS):
            for parent in reversed(path.parents[:-1]):  # bwrap would create these 0700
                args += ["--perms", "0755", "--dir", str(parent)]
            args += ["--ro-bind", str(path), str(path)]
    args += ["--dev", "/dev", "--proc", "/proc", "--size", str(SANDBOX_TMP_BYTES), "--perms", "1777",
             "--tmpfs", "/tmp"]
    return tuple(args)


def bwrap_prefix(workdir: str) -> list[str]:
    """Return the bwrap command line that runs a command in ``workdir`` (a private tmpfs in the sandbox)."""
    if os.geteuid() == 0:  # no user namespace: the worker drops to an unused uid (see drop_uid_for)
        spaces = ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    else:
        spaces = ["--unshare-all", "--unshare-user", "--disable-userns"]
    if Path(workdir).is_relative_to("/tmp"):
        work = ["--perms", "1777", "--dir", workdir]
    else:
        work = ["--size", str(SANDBOX_TMP_BYTES), "--perms", "1777", "--tmpfs", workdir]
    return ["bwrap", *spaces, "--die-with-parent", "--new-session", *mount_args(), *work,
            "--chdir", workdir]


def sandbox_env(workdir: str) -> dict[str, str]:
    """The whole environment of sandboxed code: no secrets, ``HOME``/``TMPDIR`` in its temp dir."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir}


def drop_uid_for(mode: str, workdir: str) -> int | None:
    """A fresh unused uid for the worker when we are root (so ``RLIMIT_NPROC`` applies), else ``None``.

    Outside bwrap the uid must be able to use the interpreter's prefix; ``workdir`` is then chowned to it.
    """
    if os.geteuid() != 0 or not (mode == "bwrap" or world_readable(Path(sys.base_prefix))):
        return None
    uid = 2_000_000_000 + int.from_bytes(os.urandom(3), "little")
    if mode != "bwrap":
        os.chown(workdir, uid, uid)
    return uid


def select_isolation(requested: str, probe: Callable[[str], bool]) -> str:
    """Return the isolation mode to use for ``requested`` (``auto`` tries ``bwrap`` then ``unshare``).

    Each mode is probed once per process with ``probe(mode)`` (True when it works and isolates).

    Raises:
        SandboxError: when an explicitly requested mode does not work here.
    """
    with _probe_lock:
        chosen = None
        for mode in {"auto": ("bwrap", "unshare"), "none": ()}.get(requested, (requested,)):
            if mode not in _probed:
                usable = mode != "bwrap" or shutil.which("bwrap") is not None
                _probed[mode] = usable and probe(mode)
            if _probed[mode]:
                chosen = mode
                break
        if chosen is None and requested not in ("none", "auto"):
            raise SandboxError(f"isolation {requested!r} is not available on this machine")
        if chosen == "unshare" and requested == "auto" and "unshare" not in _warned:
            _warned.add("unshare")
            log.warning("running code without bwrap: network isolated with unshare, filesystem not "
                        "isolated (install bubblewrap for full isolation)")
        if chosen is None and "none" not in _warned:
            _warned.add("none")
            log.error("NETWORK ISOLATION UNAVAILABLE: model-written code runs without bwrap or a network "
                      "namespace; it can reach the network and read your files")
        return chosen or "none"


class _Spawner:
    """One daemon thread that starts every long-lived sandbox process (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future]] | None = None
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._queue = None

    def _loop(self, jobs: queue.SimpleQueue) -> None:
        while True:
            call, future = jobs.get()
            try:
                future.set_result(call())
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
                future.set_exception(exc)

    def submit(self, call: Callable[[], Any]) -> Any:
        with self._lock:
            if self._queue is None:
                self._queue = queue.SimpleQueue()
                threading.Thread(target=self._loop, args=(self._queue,), name="ponder-sandbox-spawner",
                                 daemon=True).start()
            jobs = self._queue
        future: Future = Future()
        jobs.put((call, future))
        return future.result()


_spawner = _Spawner()


def spawn(argv: list[str], **kwargs: Any) -> subprocess.Popen:
    """``subprocess.Popen(argv, **kwargs)`` from the long-lived spawner thread."""
    return _spawner.submit(lambda: subprocess.Popen(argv, **kwargs))


def wait_exit(pid: int, deadline: float) -> bool:
    """Wait (without reaping) until ``pid`` exits or ``deadline`` passes; True when it exited."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (old kernel): poll
        while not os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        while not poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
            if time.monotonic() >= deadline:
                return False
        return True
    finally:
        os.close(pidfd)


def kill_group(pgid: int) -> None:
    """SIGKILL the process group ``pgid``; a group that is already gone is fine."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class SettingsExecutor:
    """Mixin for local executors: ``from_settings`` and the context-manager protocol (``close()`` on exit)."""

    def close(self) -> None:  # pragma: no cover - every executor defines its own
        """Release the executor's processes."""
        raise NotImplementedError

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> Self:
        """Build from settings (``exec_timeout``, ``exec_memory_mb``, ``exec_output_chars``).

        Args:
            settings: The settings.
            **overrides: Constructor arguments that win over the settings (e.g. ``isolation``).
        """
        kwargs: dict[str, Any] = {"timeout": settings.exec_timeout, "memory_mb": settings.exec_memory_mb,
                                  "output_chars": settings.exec_output_chars}
        return cls(**{**kwargs, **overrides})

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
