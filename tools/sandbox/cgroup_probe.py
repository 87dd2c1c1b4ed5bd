"""Where this process can create sandbox cgroups: the probe behind :func:`cgroup_support`.

:func:`cgroup_support` finds, once per process, where session cgroups (:mod:`ponder.tools.sandbox.cgroups`)
can go: cgroup v2 when the unified hierarchy offers ``memory`` and ``pids`` (our own cgroup if its subtree
has them enabled, as root a ``ponder`` cgroup under the hierarchy's root, else a delegated parent we can
write); cgroup v1 when the ``memory`` and ``pids`` hierarchies are mounted and our cgroups there are
writable (children go under our own cgroups). Otherwise it says why not, and the sandbox runs without one.
:func:`probe` does the same uncached, on any ``/proc/self/cgroup`` and ``mountinfo`` (tests use fake ones).

It reads the two tables and, as root on v2, creates the ``ponder`` parent and enables the controllers for
it (file writes under ``/sys/fs/cgroup``); the host process itself is never moved.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

NEEDED = ("memory", "pids")


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
