"""The cgroup support probe on fake ``/proc/self/cgroup`` and ``mountinfo`` tables."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from ponder.tools.sandbox import cgroup_probe
from ponder.tools.sandbox.cgroup_probe import CgroupSupport, probe
from ponder.tools.sandbox.cgroups import SessionCgroup

LIMIT = 256 << 20


def fake(tmp_path: Path, cgroup: str, mounts: list[tuple[str, str, str, str]]) -> tuple[Path, Path]:
    """Write a fake ``/proc/self/cgroup`` and ``mountinfo``; mounts are (root, point under tmp, type, options)."""
    lines = []
    for i, (root, point, fstype, options) in enumerate(mounts):
        (tmp_path / point).mkdir(parents=True, exist_ok=True)
        escaped = str(tmp_path / point).replace(" ", "\\040")
        lines.append(f"{30 + i} 23 0:{40 + i} {root} {escaped} rw,relatime - {fstype} {fstype} rw,{options}")
    (tmp_path / "mountinfo").write_text("\n".join(lines) + "\n")
    (tmp_path / "cgroup").write_text(cgroup)
    return tmp_path / "cgroup", tmp_path / "mountinfo"


V1_MOUNTS = [("/", "cg/memory", "cgroup", "memory"), ("/", "cg/pids", "cgroup", "pids")]
HYBRID = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n"


def test_probe_picks_v1_on_a_hybrid_machine_without_v2_controllers(tmp_path: Path) -> None:
    proc, mountinfo = fake(tmp_path, HYBRID, [*V1_MOUNTS, ("/", "cg/unified dir", "cgroup2", "")])
    (tmp_path / "cg/unified dir/cgroup.controllers").write_text("\n")
    for d in ("cg/memory/process_api/abc", "cg/pids"):
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
        (tmp_path / d / "cgroup.procs").write_text("")
    support = probe(proc, mountinfo, euid=0)
    assert support == CgroupSupport(
        "v1", (tmp_path / "cg/memory/process_api/abc", tmp_path / "cg/pids"), ("memory", "pids")
    )


def test_probe_reasons_when_nothing_is_usable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proc, mountinfo = fake(tmp_path, HYBRID, [*V1_MOUNTS, ("/", "cg/unified", "cgroup2", "")])
    (tmp_path / "cg/unified/cgroup.controllers").write_text("cpu io\n")
    (tmp_path / "cg/memory/process_api/abc").mkdir(parents=True)
    monkeypatch.setattr(cgroup_probe, "_writable", lambda d: False)
    support = probe(proc, mountinfo, euid=1000)
    assert support.version is None and support.parents == ()
    assert support.reason == (
        f"no usable memory and pids cgroup: v2: the cgroup2 hierarchy at {tmp_path / 'cg/unified'} lacks the memory "
        f"and pids controller (bound to v1?); v1: {tmp_path / 'cg/memory/process_api/abc'} is not writable by us "
        "(root, or a delegated cgroup, is needed)"
    )
    proc.write_text("0::/\n")
    assert probe(proc, mountinfo, euid=0).reason.endswith("v1: this process is in no v1 memory hierarchy")
    assert "cannot read the cgroup tables" in probe(tmp_path / "missing", mountinfo).reason
    proc, mountinfo = fake(tmp_path / "ns", "0::/elsewhere\n", [("/container", "cg", "cgroup2", "")])
    assert "v2: no cgroup2 mount shows our cgroup;" in probe(proc, mountinfo, euid=0).reason


def test_probe_as_root_on_v2_prepares_a_ponder_parent(tmp_path: Path) -> None:
    proc, mountinfo = fake(tmp_path, "0::/user.slice/session-1.scope\n", [("/", "cg", "cgroup2", "nsdelegate")])
    (tmp_path / "cg/cgroup.controllers").write_text("cpu memory pids io\n")
    (tmp_path / "cg/cgroup.subtree_control").write_text("cpu\n")
    support = probe(proc, mountinfo, euid=0)
    assert support == CgroupSupport("v2", (tmp_path / "cg/ponder",), ("memory", "pids"))
    assert (tmp_path / "cg/cgroup.subtree_control").read_text() == "+memory +pids"
    assert (tmp_path / "cg/ponder/cgroup.subtree_control").read_text() == "+memory +pids"
    # a fake cgroup directory: writing the limits works like the real files do
    cg = SessionCgroup.create(LIMIT, 64, support=support)
    assert cg is not None and cg.version == "v2" and cg.dirs[0].parent == tmp_path / "cg/ponder"
    assert (cg.dirs[0] / "memory.max").read_text() == str(LIMIT) and (cg.dirs[0] / "pids.max").read_text() == "64"
    argv = cg.wrap(["x"])
    assert argv[-2:] == [str(cg.dirs[0] / "cgroup.procs"), "x"]
    assert cg.describe() == "cgroup v2: memory 256 MiB, pids 64"


def test_probe_v2_reasons_for_busy_root_and_missing_delegation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proc, mountinfo = fake(tmp_path, "0::/app.slice/run-1.scope\n", [("/", "cg", "cgroup2", "")])
    (tmp_path / "cg/cgroup.controllers").write_text("memory pids\n")
    own = tmp_path / "cg/app.slice/run-1.scope"
    own.mkdir(parents=True)

    def busy(directory: Path) -> None:
        raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))

    monkeypatch.setattr(cgroup_probe, "_enable", busy)
    assert "(no-internal-processes rule: that cgroup holds processes)" in probe(proc, mountinfo, euid=0).reason
    assert "v2: not root, and neither our cgroup2" in probe(proc, mountinfo, euid=1000).reason
    (own.parent / "cgroup.subtree_control").write_text("memory pids\n")
    (own.parent / "cgroup.procs").write_text("")
    (own / "cgroup.procs").write_text("")
    assert probe(proc, mountinfo, euid=1000) == CgroupSupport("v2", (own.parent,), ("memory", "pids"))
    # root that cannot use the hierarchy's root (a user namespace, a busy container root) takes the delegation
    assert probe(proc, mountinfo, euid=0) == CgroupSupport("v2", (own.parent,), ("memory", "pids"))
