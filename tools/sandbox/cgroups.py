"""A memory and pid cgroup per sandbox session, where the machine lets us create one.

``RLIMIT_AS`` does not count memfd or tmpfs (shmem) pages and ``RLIMIT_NPROC`` is per uid; a memory cgroup
charges every page a process allocates (anonymous, page cache, shmem: memfd and tmpfs files included) and a
pids cgroup counts every task, so together they cap what one sandbox can take from the host.

* :func:`cgroup_support` (:mod:`ponder.tools.sandbox.cgroup_probe`, re-exported here) finds, once per
  process, where session cgroups can go: v2 or v1, or why none can be made (the sandbox then runs
  without one).
* :meth:`SessionCgroup.create` makes ``ponder-<pid>-<random>`` with the limits written; :meth:`~SessionCgroup.wrap`
  prefixes a command so the started process joins the cgroup before it execs (no race, no ``preexec_fn``);
  :meth:`~SessionCgroup.close` kills what is left and removes the directories (also at interpreter exit,
  and stale directories of dead hosts are removed by the next :meth:`~SessionCgroup.create`).

The host process itself is never moved. Everything here is file writes under ``/sys/fs/cgroup``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import signal
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from ponder.tools.sandbox.cgroup_probe import CgroupSupport, cgroup_support

__all__ = ["EXIT_CANNOT_JOIN", "CgroupSupport", "SessionCgroup", "cgroup_support", "remove_stale"]

log = logging.getLogger(__name__)

EXIT_CANNOT_JOIN = 125  # exit status of :meth:`SessionCgroup.wrap`'s prefix when it cannot enter the cgroup
_NAME = re.compile(r"ponder-(\d+)-[0-9a-f]+")
_KILL_WAIT_S = 5.0
_MIB = 1 << 20


def _procs(dirs: Sequence[Path]) -> set[int]:
    pids: set[int] = set()
    for directory in dirs:
        try:
            pids.update(int(p) for p in (directory / "cgroup.procs").read_text().split())
        except (OSError, ValueError):  # gone (removed) or going (ENODEV): nothing to kill there
            pass
    return pids


def _signal_member(pid: int, name: str) -> None:
    """SIGKILL ``pid`` if it is still in cgroup ``name`` (through a pidfd, so a reused pid is never hit)."""
    try:
        fd = os.pidfd_open(pid)
    except OSError as exc:
        if exc.errno == errno.ENOSYS:  # before Linux 5.3: a plain kill (the pid was just listed)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        return
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        if any(name in line.rpartition(":")[2].split("/") for line in lines):
            signal.pidfd_send_signal(fd, signal.SIGKILL)
    except OSError:
        pass
    finally:
        os.close(fd)


def _kill(dirs: Sequence[Path], version: str | None, wait_s: float = _KILL_WAIT_S) -> bool:
    """Kill every process in ``dirs`` and wait until they are gone; False if some survived ``wait_s``."""
    if version == "v2" and (dirs[0] / "cgroup.kill").exists():
        with contextlib.suppress(OSError):
            (dirs[0] / "cgroup.kill").write_text("1")
    deadline = time.monotonic() + wait_s
    while pids := _procs(dirs):
        for pid in pids:
            _signal_member(pid, dirs[0].name)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def _destroy(version: str | None, dirs: tuple[Path, ...], owner: int) -> None:
    """Kill what is in ``dirs`` and remove them; never raises (also the finalizer at exit).

    Kill and rmdir alternate until every directory is gone: a process that joins after a kill (a
    :meth:`SessionCgroup.wrap` prefix still starting) makes rmdir fail with EBUSY and is killed on the next
    round; one that tries to join after the rmdir cannot, and exits without running its command.
    """
    if os.getpid() != owner:  # a forked child of the host: the cgroup is not its to remove
        return
    deadline = time.monotonic() + _KILL_WAIT_S
    left = list(dirs)
    while left:
        _kill(dirs, version, max(0.0, deadline - time.monotonic()))
        for directory in list(left):
            try:
                directory.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:
                if exc.errno == errno.EBUSY and time.monotonic() < deadline:
                    continue
                log.warning("cannot remove cgroup %s: %s", directory, exc)
            left.remove(directory)
        if left:
            time.sleep(0.002)


def remove_stale(parents: Sequence[Path]) -> list[Path]:
    """Remove ``ponder-<pid>-*`` cgroups under ``parents`` whose host pid is dead; return the ones removed."""
    removed = []
    for parent in dict.fromkeys(parents):
        try:
            entries = list(parent.iterdir())
        except OSError:
            continue
        for entry in entries:
            match = _NAME.fullmatch(entry.name)
            if not match or not entry.is_dir() or _alive(int(match[1])):
                continue
            _destroy(None, (entry,), os.getpid())
            if not entry.exists():
                removed.append(entry)
    if removed:
        log.info("removed %d stale sandbox cgroup(s) of dead hosts", len(removed))
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_int(path: Path, key: str) -> int:
    """The value of ``key`` in a flat-keyed cgroup file (0 when absent)."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


class SessionCgroup:
    """One sandbox session's cgroup (one directory on v2, one per hierarchy on v1).

    Create it with :meth:`create`, start the session's first process through :meth:`wrap`, and
    :meth:`close` it when the session ends (also done at interpreter exit if forgotten).
    """

    def __init__(self, version: Literal["v2", "v1"], dirs: tuple[Path, ...], memory_bytes: int, pids: int) -> None:
        """Adopt existing cgroup ``dirs`` (use :meth:`create` to make them)."""
        self.version = version
        self.dirs = dirs
        self.memory_bytes = memory_bytes
        self.pids = pids
        self._oom_seen = False
        self._finalizer = weakref.finalize(self, _destroy, version, dirs, os.getpid())

    @property
    def name(self) -> str:
        """The cgroup's directory name, ``ponder-<host pid>-<random>``."""
        return self.dirs[0].name

    @classmethod
    def create(cls, memory_bytes: int, pids: int, *, support: CgroupSupport | None = None) -> SessionCgroup | None:
        """Create a fresh cgroup limited to ``memory_bytes`` of memory (no swap) and ``pids`` tasks.

        Stale ``ponder-<pid>-*`` cgroups of dead hosts are removed first.

        Args:
            memory_bytes: the memory limit; every page counts (anonymous, page cache, memfd and tmpfs).
            pids: the most processes and threads at once.
            support: where to create it (default: :func:`cgroup_support`).

        Returns:
            The cgroup, or ``None`` where no cgroup is available (see ``cgroup_support().reason``) or
            creating it failed (logged as a warning).

        Raises:
            ValueError: for a non-positive limit.
        """
        if not isinstance(memory_bytes, int) or not isinstance(pids, int) or memory_bytes <= 0 or pids <= 0:
            raise ValueError(f"cgroup limits must be positive integers, got memory={memory_bytes!r} pids={pids!r}")
        support = support or cgroup_support()
        if support.version is None:
            return None
        parents = tuple(dict.fromkeys(support.parents))
        remove_stale(parents)
        name = f"ponder-{os.getpid()}-{secrets.token_hex(6)}"
        made: list[Path] = []
        try:
            for parent in parents:
                (parent / name).mkdir(mode=0o755)
                made.append(parent / name)
            cgroup = cls(support.version, tuple(made), memory_bytes, pids)
            cgroup._write_limits()
        except OSError as exc:
            log.warning("cannot create a sandbox cgroup under %s: %s; running without one", parents[0], exc)
            _destroy(support.version, tuple(made), os.getpid())
            return None
        return cgroup

    def _dir(self, controller: str) -> Path:
        """The directory holding ``controller``'s files (v1: memory first, then pids, deduplicated)."""
        if self.version == "v2" or controller == "memory" or len(self.dirs) == 1:
            return self.dirs[0]
        return self.dirs[1]

    def _write_limits(self) -> None:
        mem, pid = self._dir("memory"), self._dir("pids")
        if self.version == "v2":
            (mem / "memory.max").write_text(str(self.memory_bytes))
            for optional, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
                if (mem / optional).exists():
                    (mem / optional).write_text(value)
        else:
            (mem / "memory.limit_in_bytes").write_text(str(self.memory_bytes))
            if (mem / "memory.memsw.limit_in_bytes").exists():  # memory + swap: no swap beyond the limit
                (mem / "memory.memsw.limit_in_bytes").write_text(str(self.memory_bytes))
            elif (mem / "memory.swappiness").exists():  # no swap accounting: keep the pages out of swap
                (mem / "memory.swappiness").write_text("0")
        (pid / "pids.max").write_text(str(self.pids))

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """``argv`` prefixed so the process joins this cgroup, then execs ``argv`` (same pid).

        The prefix is ``/bin/sh``: it writes its own pid to each ``cgroup.procs`` and execs, so every
        process of the sandbox is in the cgroup from its first instruction. If it cannot join, it exits
        with :data:`EXIT_CANNOT_JOIN` (125) and an error on stderr instead of running ``argv``. The shell
        would add ``PWD`` to the environment; it is removed again before the exec.
        """
        if not argv:
            raise ValueError("wrap needs a command")
        joins = " && ".join(f'echo $$ >"${i + 1}"' for i in range(len(self.dirs)))
        script = (
            f"{joins} || {{ echo 'ponder: cannot enter the sandbox cgroup' >&2; exit {EXIT_CANNOT_JOIN}; }}; "
            f'unset PWD; shift {len(self.dirs)}; exec "$@"'
        )
        return ["/bin/sh", "-c", script, "ponder-cgroup", *(str(d / "cgroup.procs") for d in self.dirs), *argv]

    def procs(self) -> set[int]:
        """The pids now in the cgroup (every hierarchy)."""
        return _procs(self.dirs)

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer has killed a process of this cgroup (for its memory limit)."""
        if self._finalizer.alive:
            mem = self._dir("memory")
            events = mem / ("memory.events" if self.version == "v2" else "memory.oom_control")
            self._oom_seen = self._oom_seen or _read_int(events, "oom_kill") > 0
        return self._oom_seen

    def kill(self) -> None:
        """SIGKILL every process in the cgroup (v2 ``cgroup.kill`` where present) and wait until none is left."""
        if self._finalizer.alive and not _kill(self.dirs, self.version):
            log.warning("cgroup %s: processes survived SIGKILL for %.0f s", self.name, _KILL_WAIT_S)

    def close(self) -> None:
        """Kill what is left and remove the cgroup; idempotent and never raises."""
        if self._finalizer.alive:
            self.oom_killed()  # remember it: the files go away
            self._finalizer()

    def describe(self) -> str:
        """One line for the log, e.g. ``cgroup v1: memory 512 MiB, pids 64``."""
        return f"cgroup {self.version}: memory {self.memory_bytes / _MIB:g} MiB, pids {self.pids}"

    def __enter__(self) -> SessionCgroup:
        """Use as a context manager that closes the cgroup."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the cgroup."""
        self.close()
