"""A memory and pid cgroup per sandbox session, where the machine lets us create one.

``RLIMIT_AS`` does not count memfd or tmpfs (shmem) pages and ``RLIMIT_NPROC`` is per uid; a memory cgroup
charges every page a process allocates (anonymous, page cache, shmem: memfd and tmpfs files included) and a
pids cgroup counts every task, so together they cap what one sandbox can take from the host.

* :func:`cgroup_support` finds, once per process, where session cgroups can go: cgroup v2 when the unified
  hierarchy offers ``memory`` and ``pids`` (our own cgroup if its subtree has them enabled, as root a
  ``ponder`` cgroup under the hierarchy's root, else a delegated parent we can write); cgroup v1 when the
  ``memory`` and ``pids`` hierarchies are mounted and our cgroups there are writable (children go under
  our own cgroups). Otherwise it says why not, and the sandbox runs without one.
* :meth:`SessionCgroup.create` makes ``ponder-<pid>-<random>`` with the limits written; :meth:`~SessionCgroup.wrap`
  prefixes a command so the started process joins the cgroup before it execs (no race, no ``preexec_fn``);
  :meth:`~SessionCgroup.close` kills what is left and removes the directories (also at interpreter exit,
  and stale directories of dead hosts are removed by the next :meth:`~SessionCgroup.create`).

The host process itself is never moved. Everything here is file writes under ``/sys/fs/cgroup``.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import re
import secrets
import signal
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

NEEDED = ("memory", "pids")
EXIT_CANNOT_JOIN = 125  # exit status of :meth:`SessionCgroup.wrap`'s prefix when it cannot enter the cgroup
_NAME = re.compile(r"ponder-(\d+)-[0-9a-f]+")
_KILL_WAIT_S = 5.0
_MIB = 1 << 20


@dataclass(frozen=True)
class CgroupSupport:
    """Where this process can create session cgroups.

    Attributes:
        version: ``"v2"``, ``"v1"`` or ``None`` when no usable cgroup was found.
        parents: directories the session cgroups are created in: one for v2; for v1 the ``memory`` and the
            ``pids`` hierarchy's (in that order; the same directory twice when they are co-mounted).
        controllers: the controllers limited (``("memory", "pids")`` when available).
        reason: why no cgroup is available (empty when one is).
    """

    version: Literal["v2", "v1"] | None
    parents: tuple[Path, ...] = ()
    controllers: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class _Mount:
    root: str
    point: Path
    fstype: str
    options: frozenset[str]


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def _mounts(mountinfo: Path) -> list[_Mount]:
    """The cgroup mounts listed in ``mountinfo`` (``/proc/self/mountinfo`` format)."""
    mounts = []
    for line in mountinfo.read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 1 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        options = frozenset(tail[2].split(",")) if len(tail) > 2 else frozenset()
        mounts.append(_Mount(_unescape(fields[3]), Path(_unescape(fields[4])), tail[0], options))
    return mounts


def _memberships(proc_cgroup: Path) -> dict[str, str]:
    """Controller name (``""`` for the unified hierarchy) -> our cgroup path, from ``/proc/self/cgroup``."""
    member: dict[str, str] = {}
    for line in proc_cgroup.read_text().splitlines():
        hier, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hier == "0" and not controllers:
            member[""] = path
        for name in filter(None, controllers.split(",")):
            member.setdefault(name, path)
    return member


def _locate(mounts: Sequence[_Mount], path: str) -> tuple[_Mount, Path] | None:
    """The first mount showing cgroup ``path`` and the directory it is at there."""
    for mount in mounts:
        rel = os.path.relpath(path, mount.root)
        if rel != ".." and not rel.startswith("../"):
            return mount, (mount.point / rel if rel != "." else mount.point)
    return None


def _words(path: Path) -> set[str]:
    try:
        return set(path.read_text().split())
    except OSError:
        return set()


def _writable(directory: Path) -> bool:
    return os.access(directory, os.W_OK) and os.access(directory / "cgroup.procs", os.W_OK)


def _enable(directory: Path) -> None:
    """Enable ``memory`` and ``pids`` for ``directory``'s children (no-op when they already are)."""
    missing = [c for c in NEEDED if c not in _words(directory / "cgroup.subtree_control")]
    if missing:
        (directory / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in missing))


def _v2(mounts: list[_Mount], member: dict[str, str], euid: int, prepare: bool) -> CgroupSupport | str:
    """The cgroup v2 support, or why there is none."""
    if "" not in member:
        return "this process is in no cgroup2 hierarchy"
    found = _locate([m for m in mounts if m.fstype == "cgroup2"], member[""])
    if found is None:
        return "no cgroup2 mount shows our cgroup"
    mount, own = found
    missing = [c for c in NEEDED if c not in _words(mount.point / "cgroup.controllers")]
    if missing:
        return f"the cgroup2 hierarchy at {mount.point} lacks the {' and '.join(missing)} controller (bound to v1?)"
    tried = "not root"
    if euid == 0:  # a `ponder` cgroup under the hierarchy's root: the host process stays where it is
        parent = mount.point / "ponder"
        try:
            if prepare:
                _enable(mount.point)
                parent.mkdir(mode=0o755, exist_ok=True)
                _enable(parent)
            return CgroupSupport("v2", (parent,), NEEDED)
        except OSError as exc:
            rule = " (no-internal-processes rule: that cgroup holds processes)" if exc.errno == errno.EBUSY else ""
            tried = f"cannot enable memory and pids under {mount.point}: {exc.strerror}{rule}"
    for candidate in (own, own.parent) if own != mount.point else (own,):  # delegated to us, ready for children
        if _writable(candidate) and set(NEEDED) <= _words(candidate / "cgroup.subtree_control"):
            return CgroupSupport("v2", (candidate,), NEEDED)
    return f"{tried}, and neither our cgroup2 {own} nor its parent is delegated to us with memory and pids"


def _v1(mounts: list[_Mount], member: dict[str, str]) -> CgroupSupport | str:
    """The cgroup v1 support (children of our own memory and pids cgroups), or why there is none."""
    parents = []
    for name in NEEDED:
        if name not in member:
            return f"this process is in no v1 {name} hierarchy"
        found = _locate([m for m in mounts if m.fstype == "cgroup" and name in m.options], member[name])
        if found is None:
            return f"the v1 {name} hierarchy is not mounted where we can see our cgroup"
        if not _writable(found[1]):
            return f"{found[1]} is not writable by us (root, or a delegated cgroup, is needed)"
        parents.append(found[1])
    return CgroupSupport("v1", tuple(parents), NEEDED)


def probe(
    proc_cgroup: Path = Path("/proc/self/cgroup"),
    mountinfo: Path = Path("/proc/self/mountinfo"),
    euid: int | None = None,
    prepare: bool = True,
) -> CgroupSupport:
    """Find where session cgroups can be created (uncached; see :func:`cgroup_support`).

    Args:
        proc_cgroup: our cgroup memberships (``/proc/self/cgroup`` format).
        mountinfo: the mount table (``/proc/self/mountinfo`` format).
        euid: the effective uid to plan for (default: ours).
        prepare: as root on v2, create the ``ponder`` parent and enable ``memory``/``pids`` for it.
    """
    try:
        mounts, member = _mounts(mountinfo), _memberships(proc_cgroup)
    except OSError as exc:
        return CgroupSupport(None, reason=f"cannot read the cgroup tables: {exc}")
    v2 = _v2(mounts, member, os.geteuid() if euid is None else euid, prepare)
    if isinstance(v2, CgroupSupport):
        return v2
    v1 = _v1(mounts, member)
    if isinstance(v1, CgroupSupport):
        return v1
    return CgroupSupport(None, reason=f"no usable memory and pids cgroup: v2: {v2}; v1: {v1}")


@functools.cache
def cgroup_support() -> CgroupSupport:
    """Where this process can create session cgroups (probed once per process)."""
    support = probe()
    log.debug("cgroup support: %s", support)
    return support


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
