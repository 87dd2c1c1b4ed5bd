"""Isolation helpers of the local sandbox session (:class:`~ponder.tools.sandbox.local.LocalSandbox`).

* :func:`select_isolation` fails closed: ``auto`` is ``bwrap`` (probed once per process) or a
  :class:`SandboxError` that says how to install bubblewrap; ``unshare`` and ``none`` only when asked for
  by name, warned every time, and as root only with an interpreter a fresh uid can run
  (:func:`weak_interpreter`): model code never runs as uid 0.
* :func:`bwrap_prefix` builds the bubblewrap command line, its options on a pipe (``--args``: the
  sandbox's ``/proc/1/cmdline`` shows bwrap and the worker's command, not the host paths it mounts): no
  network, new pid/ipc/uts namespaces (and a user namespace without further ones when not root; as root
  the seccomp filter refuses them), only the system dirs and the interpreter's prefix visible
  (read-only), the kernel's sensitive ``/proc`` files masked, private size-capped ``/tmp`` and ``/dev/shm``.
* :func:`open_cgroup` and :func:`describe_limits`: one cgroup per session (memory and pids, from
  :mod:`ponder.tools.sandbox.cgroups`) and the log line that says which limits are in force.
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
from typing import Any

from ponder.core.errors import SandboxError
from ponder.tools.sandbox.cgroups import SessionCgroup, cgroup_support
from ponder.tools.sandbox.data_pipe import data_pipe
from ponder.tools.sandbox.seccomp import filter_bpf

log = logging.getLogger(__name__)

OUTPUT_FILE_BYTES = 1 << 20  # RLIMIT_FSIZE floor: caps stdout/stderr files and every file the code writes
SANDBOX_TMP_BYTES = 64 << 20  # size of the private tmpfs /tmp under bwrap
SANDBOX_SHM_BYTES = 16 << 20  # size of the private tmpfs /dev/shm under bwrap
MAX_PROCESSES = 64  # RLIMIT_NPROC (threads count too) where the kernel enforces it
MAX_FILES = 256  # RLIMIT_NOFILE
BWRAP_INSTALL = "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap)"
BWRAP_HINT = (f'{BWRAP_INSTALL}, or set sandbox_isolation = "unshare" or "none" to run model code with weaker '
              "isolation on purpose")
# host /proc files that tell the sandbox about the kernel, its keys and other users: masked with /dev/null
_MASKED_PROC = ("cmdline", "config.gz", "key-users", "keys", "kallsyms", "modules", "sched_debug",
                "timer_list", "timer_stats", "kcore", "kmsg", "iomem", "ioports", "vmallocinfo", "slabinfo",
                "pagetypeinfo", "kpageflags", "kpagecount", "kpagecgroup", "latency_stats", "sysrq-trigger",
                "mtrr", "bootconfig", "lockdep", "lockdep_stats", "buddyinfo", "zoneinfo")
_MASKED_PROC_DIRS = ("acpi", "asound", "scsi", "sys/kernel/keys", "fs/nfsd")  # read-only empty tmpfs
# the only host dirs visible under bwrap (read-only), besides the interpreter's own prefix
_BWRAP_NAMESPACES = ("net", "pid", "mnt", "ipc", "uts")  # new under bwrap, root or not
# host folders bwrap never shows (the sandbox's /, /tmp, /root, /dev/shm are its own): a check of the worker
_HOST_DIRS = ("/", "/tmp", "/var/tmp", "/home", "/root", "/run", "/dev/shm", "/srv", "/opt", "/mnt", "/media")
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
_probe_lock = threading.Lock()
_probed: dict[str, str | None] = {}  # isolation mode -> None when it works here, else why not (once a process)


@functools.cache
def interpreter() -> Path:
    """Return the base interpreter (not the venv's): with ``-I -S`` only its stdlib is needed."""
    base = Path(sys.base_prefix)
    for name in (f"python{sys.version_info.major}.{sys.version_info.minor}", "python3"):
        if (base / "bin" / name).is_file():
            return base / "bin" / name
    return Path(os.path.realpath(sys.executable))


@functools.cache
def weak_interpreter() -> Path | None:
    """An interpreter of our version that a fresh uid can run outside bwrap (``unshare``/``none`` as root).

    The base interpreter when its prefix is world-readable, else the system's ``pythonX.Y`` (e.g. a
    pyenv build under a ``0700`` ``/root``); ``None`` when there is none, then weak modes refuse to start.
    """
    if world_readable(Path(sys.base_prefix)):
        return interpreter()
    name = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for folder in ("/usr/bin", "/usr/local/bin"):
        real = Path(os.path.realpath(Path(folder) / name))
        if real.is_file() and os.access(real, os.X_OK) and world_readable(real.parent.parent / "lib" / name):
            return real
    return None


def interpreter_for(mode: str) -> Path:
    """The interpreter that runs the worker in ``mode`` (see :func:`weak_interpreter` for root outside bwrap)."""
    if mode == "bwrap" or os.geteuid() != 0:
        return interpreter()
    return weak_interpreter() or interpreter()


def bwrap_executable() -> str | None:
    """The absolute path of bubblewrap (found on our ``PATH``, not the sandbox's); ``None`` when not installed."""
    return shutil.which("bwrap")


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
    args += ["--dev", "/dev", "--size", str(SANDBOX_SHM_BYTES), "--perms", "1777", "--tmpfs", "/dev/shm",
             "--proc", "/proc"]
    for name in _MASKED_PROC:
        if os.path.lexists(f"/proc/{name}"):
            args += ["--ro-bind", "/dev/null", f"/proc/{name}"]  # nodev: opening it fails with EACCES
    for name in _MASKED_PROC_DIRS:
        if os.path.isdir(f"/proc/{name}"):
            args += ["--size", "4096", "--tmpfs", f"/proc/{name}", "--remount-ro", f"/proc/{name}"]
    args += ["--size", str(SANDBOX_TMP_BYTES), "--perms", "1777", "--tmpfs", "/tmp"]
    return tuple(args)


def bwrap_options(workdir: str) -> list[str]:
    """Return bwrap's options (without the command) that run a command in ``workdir`` (a private tmpfs).

    As root bwrap makes no user namespace (the worker drops to a fresh uid instead, see
    :func:`drop_uid_for`), so ``--disable-userns`` is not available: there the seccomp filter's rule
    against ``CLONE_NEWUSER``/``unshare`` is what stops nested user namespaces.
    """
    if os.geteuid() == 0:
        spaces = ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    else:
        spaces = ["--unshare-all", "--unshare-user", "--disable-userns"]
    if Path(workdir).is_relative_to("/tmp"):
        work = ["--perms", "1777", "--dir", workdir]
    else:
        work = ["--size", str(SANDBOX_TMP_BYTES), "--perms", "1777", "--tmpfs", workdir]
    return [*spaces, "--die-with-parent", "--new-session", *mount_args(), *work, "--chdir", workdir]


def bwrap_prefix(workdir: str) -> tuple[list[str], int]:
    """``(["bwrap", "--args", FD], FD)``: bwrap reads its options from the pipe ``FD``, not from its argv.

    The sandbox can read bwrap's command line (``/proc/1/cmdline``); with ``--args`` it shows nothing of
    the host's paths. The caller passes ``FD`` to bwrap (``pass_fds``) and closes it after the start.
    """
    read_end = data_pipe(b"".join(arg.encode() + b"\0" for arg in bwrap_options(workdir)))  # a few KiB
    return [bwrap_executable() or "bwrap", "--args", str(read_end)], read_end


def bwrap_checks() -> dict[str, str]:
    """The worker's keys that let it check that bwrap isolated it (numbers and generic paths only).

    ``host_ns``: the host's namespaces (``name:inode``), all of which bwrap replaces. ``host_dirs``: the
    host's ``/``, ``/tmp`` and other shared folders (``path:device:inode``), none of which bwrap shows: in
    the sandbox such a path must be missing or another folder.
    """
    host_ns = ",".join(f"{name}:{os.stat(f'/proc/self/ns/{name}').st_ino}" for name in _BWRAP_NAMESPACES)
    dirs = []
    for path in _HOST_DIRS:
        try:
            info = os.stat(path)
        except OSError:
            continue
        dirs.append(f"{path}:{info.st_dev}:{info.st_ino}")
    return {"host_ns": host_ns, "host_dirs": ",".join(dirs)}


def sandbox_env(workdir: str) -> dict[str, str]:
    """The whole environment of sandboxed code: no secrets, ``HOME``/``TMPDIR`` in its temp dir."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir}


def drop_uid_for(mode: str, workdir: str) -> int | None:
    """A fresh unused uid for the worker when we are root (model code never runs as uid 0), else ``None``.

    Outside bwrap the uid must be able to use the interpreter's prefix; ``workdir`` is then chowned to it.

    Raises:
        SandboxError: as root outside bwrap when the interpreter's prefix is not world-readable.
    """
    if os.geteuid() != 0:
        return None
    if mode != "bwrap":
        check_weak_mode(mode)
    uid = 2_000_000_000 + int.from_bytes(os.urandom(3), "little")
    if mode != "bwrap":
        os.chown(workdir, uid, uid)
    return uid


def check_weak_mode(mode: str) -> None:
    """Refuse ``unshare``/``none`` as root where code could not run as an unprivileged uid.

    Raises:
        SandboxError: when we are root and no interpreter of our version is usable by other users.
    """
    if os.geteuid() == 0 and weak_interpreter() is None:
        raise SandboxError(f'sandbox_isolation = "{mode}" as root needs a Python {sys.version_info.major}.'
                           f"{sys.version_info.minor} that other users can run (the interpreter prefix "
                           f"{sys.base_prefix} is not readable by them), so that code runs as an unprivileged "
                           f"uid; use bubblewrap instead: {BWRAP_INSTALL}")


def select_isolation(requested: str, probe: Callable[[str], str | None]) -> str:
    """Return the isolation mode for ``requested``: ``auto`` means ``bwrap``, nothing weaker.

    ``bwrap`` and ``unshare`` are probed once per process with ``probe(mode)`` (``None`` when the mode works
    and isolates here, else the reason). ``unshare`` and ``none`` are used only when asked for by name, and
    every call that opens one logs a warning (once per session or executor, not once per process).

    Raises:
        SandboxError: when bubblewrap is missing or cannot start (``auto``, ``bwrap``; one line that says
            how to install it), or when a weaker mode that was asked for cannot be used safely here.
    """
    mode = "bwrap" if requested == "auto" else requested
    if mode in ("unshare", "none"):
        check_weak_mode(mode)
    filter_bpf()  # every mode needs the seccomp filter: a missing libseccomp is its own clear error
    with _probe_lock:
        if mode != "none" and mode not in _probed:
            if mode == "bwrap" and bwrap_executable() is None:
                _probed[mode] = "bubblewrap (bwrap) is not installed"
            else:
                reason = probe(mode)
                _probed[mode] = None if reason is None else " ".join(reason.split())[:300] or "failed"
        failure = _probed.get(mode)
    if failure is not None:
        if mode == "bwrap":
            raise SandboxError(f"cannot sandbox model code: {failure}; {BWRAP_HINT}")
        raise SandboxError(f"isolation {mode!r} is not available on this machine: {failure}")
    if mode == "unshare":
        log.warning('sandbox_isolation = "unshare": model code runs without bwrap; network and pids isolated, '
                    "the filesystem is NOT (it can read your files); seccomp and rlimits still apply")
    elif mode == "none":
        log.warning('sandbox_isolation = "none": model code runs WITHOUT filesystem or network isolation (it '
                    "can read your files and reach the network); only seccomp, rlimits and a fresh uid apply")
    return mode


def open_cgroup(memory_bytes: int) -> SessionCgroup | None:
    """A fresh memory + pids cgroup for one session or run (``None`` where the machine allows none)."""
    return SessionCgroup.create(memory_bytes, MAX_PROCESSES)


def cgroup_text(cgroup: SessionCgroup | None, memory_bytes: int = 0) -> str:
    """The cgroup part of :func:`describe_limits`: ``cgroup`` itself, or what a run will get, or why none."""
    if cgroup is not None:
        return cgroup.describe()
    support = cgroup_support()
    if support.version and memory_bytes:
        return f"a cgroup {support.version} per run: memory {memory_bytes >> 20} MiB, pids {MAX_PROCESSES}"
    return f"no cgroup ({support.reason or 'could not create one'}): total memory not bounded"


def describe_limits(mode: str, cgroup: str, config: dict[str, Any], nproc: bool) -> str:
    """One log line: which limits are in force for a session or run (isolation, seccomp, cgroup, rlimits).

    Args:
        mode: The isolation mode.
        cgroup: The cgroup part (:func:`cgroup_text`).
        config: The worker's keys (``as``, ``cpu``, ``fsize``, ``nofile``, ``nproc``).
        nproc: Whether the kernel enforces ``RLIMIT_NPROC`` for it (a fresh uid or a user namespace).
    """
    rlimits = (f"as {int(config['as']) >> 20} MiB per process, cpu {config['cpu']} s, fsize {config['fsize']} B, "
               f"nofile {config.get('nofile', MAX_FILES)}, nproc {config['nproc'] if nproc else 'not enforced'}")
    return f"sandbox limits: isolation {mode}, seccomp filter, fresh session keyring, {cgroup}; rlimits: {rlimits}"


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
