"""Session cgroups on this machine's real cgroups (memory and pids limits); the probe: test_cgroup_probe.py.

The floods are plain subprocesses started through :meth:`SessionCgroup.wrap` (no bwrap): what is tested is
the cgroup, not the rest of the sandbox. A machine where no cgroup can be made fails these tests.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ponder.tools.sandbox.cgroups import EXIT_CANNOT_JOIN, CgroupSupport, SessionCgroup, cgroup_support

MIB = 1 << 20
LIMIT = 256 * MIB
PY = [sys.executable, "-I", "-S"]

MEMFD_FLOOD = """
import os, sys
fd = os.memfd_create("flood")
chunk = b"x" * (1 << 20)
for i in range(int(sys.argv[1])):
    try:
        os.write(fd, chunk)
    except OSError as exc:
        print("error", exc.errno, i, flush=True)
        sys.exit(3)
    print(i + 1, flush=True)
print("done", flush=True)
"""

TMPFS_FLOOD = """
import os, sys
chunk = b"x" * (1 << 20)
for i in range(int(sys.argv[2])):
    try:
        with open(os.path.join(sys.argv[1], f"f{i}"), "wb") as f:
            f.write(chunk)
    except OSError as exc:
        print("error", exc.errno, i, flush=True)
        sys.exit(3)
    print(i + 1, flush=True)
print("done", flush=True)
"""

FORKER = """
import os, time
n = 0
while n < 200:  # bounded: a broken pids.max must not fork-bomb the host
    try:
        pid = os.fork()
    except OSError as e:
        print(n, e.errno, flush=True)
        break
    if pid == 0:
        os.close(1)
        os.close(2)
        time.sleep(60)
        os._exit(0)
    n += 1
"""

SPINNER = """
import os
made = 0
while True:
    if made < 7:
        try:
            os.fork()
            made += 1
        except OSError:
            pass
"""


def wait_until(check: object, timeout: float = 5.0) -> bool:
    """Poll ``check()`` until it is true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return bool(check())  # type: ignore[operator]


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def peak(cg: SessionCgroup) -> int:
    """The highest memory use the cgroup has seen."""
    name = "memory.peak" if cg.version == "v2" else "memory.max_usage_in_bytes"
    return int((cg.dirs[0] / name).read_text())


def usage(cg: SessionCgroup) -> int:
    """The cgroup's memory use now."""
    name = "memory.current" if cg.version == "v2" else "memory.usage_in_bytes"
    return int((cg.dirs[0] / name).read_text())


@pytest.fixture
def support() -> CgroupSupport:
    support = cgroup_support()
    if support.version is None:
        pytest.fail(f"no memory and pids cgroup can be created on this machine: {support.reason}")
    return support


@pytest.fixture
def cg(support: CgroupSupport) -> Iterator[SessionCgroup]:
    cgroup = SessionCgroup.create(LIMIT, 32)
    assert cgroup is not None, support
    yield cgroup
    cgroup.close()
    assert not any(d.exists() for d in cgroup.dirs)


def test_limits_are_written(cg: SessionCgroup) -> None:
    mem, pids = cg.dirs[0], cg.dirs[-1]
    assert cg.name.startswith(f"ponder-{os.getpid()}-")
    if cg.version == "v2":
        assert int((mem / "memory.max").read_text()) == LIMIT
        if (mem / "memory.swap.max").exists():
            assert (mem / "memory.swap.max").read_text().strip() == "0"
    else:
        assert int((mem / "memory.limit_in_bytes").read_text()) == LIMIT
        if (mem / "memory.memsw.limit_in_bytes").exists():
            assert int((mem / "memory.memsw.limit_in_bytes").read_text()) == LIMIT
    assert (pids / "pids.max").read_text().strip() == "32"
    assert cg.describe() == f"cgroup {cg.version}: memory 256 MiB, pids 32"


def test_wrapped_process_and_its_children_are_inside(cg: SessionCgroup) -> None:
    code = (
        "import os, subprocess, sys; c = subprocess.Popen(['sleep', '30'])\n"
        "print(os.getpid(), c.pid, flush=True); sys.stdin.read()"
    )
    proc = subprocess.Popen(cg.wrap([*PY, "-c", code]), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        parent, child = (int(x) for x in proc.stdout.readline().split())  # type: ignore[union-attr]
        assert parent == proc.pid  # the prefix exec'd: same process
        assert {parent, child} <= cg.procs()
        for pid in (parent, child):
            assert all(
                f"/{cg.name}" in line
                for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
                if ":memory:" in line or ":pids:" in line or line.startswith("0::") and cg.version == "v2"
            )
        assert os.getpid() not in cg.procs()  # the host stays where it was
        cg.close()
        assert proc.wait(5) == -signal.SIGKILL
        assert wait_until(lambda: not alive(child))
        assert not any(d.exists() for d in cg.dirs)
    finally:
        proc.kill()
        proc.wait()


def test_wrap_keeps_the_environment_and_fails_closed(cg: SessionCgroup, tmp_path: Path) -> None:
    out = subprocess.run(cg.wrap(["/usr/bin/env"]), env={"A": "1"}, capture_output=True, text=True, check=True)
    assert out.stdout == "A=1\n"  # the shell's PWD does not leak in
    marker = tmp_path / "ran"
    for d in cg.dirs:
        d.rmdir()
    result = subprocess.run(cg.wrap(["/usr/bin/touch", str(marker)]), capture_output=True, text=True)
    assert result.returncode == EXIT_CANNOT_JOIN
    assert "cannot enter the sandbox cgroup" in result.stderr
    assert not marker.exists()
    cg.close()  # the directories are already gone: no error


@pytest.mark.parametrize("processes", [1, 4])
def test_memfd_flood_is_stopped(cg: SessionCgroup, processes: int) -> None:
    # each process writes 1.5 GiB (or 4 x 512 MiB) into a memfd without mapping it: RLIMIT_AS never sees it
    size = 1536 // processes
    argv = [*PY, "-c", f"import os\nfor _ in range({processes - 1}):\n    if os.fork() == 0: break\n" + MEMFD_FLOOD]
    result = subprocess.run(cg.wrap([*argv, str(size)]), capture_output=True, text=True, timeout=60)
    lines = result.stdout.split()
    assert "done" not in lines, "a process got past the memory limit"
    if processes == 1:
        killed = result.returncode == -signal.SIGKILL and cg.oom_killed()
        refused = result.returncode == 3 and lines[-3] == "error" and int(lines[-2]) in (errno.ENOMEM, errno.ENOSPC)
        assert killed or refused, result
        assert int(lines[-1]) <= LIMIT // MIB
    assert peak(cg) <= LIMIT
    assert wait_until(lambda: not cg.procs()), "flooders left over"
    assert usage(cg) < LIMIT // 4  # the memfds died with their processes
    if result.returncode == -signal.SIGKILL:
        assert cg.oom_killed()


def test_memfd_flood_gets_through_rlimit_as_alone() -> None:
    # the control: without the cgroup the same flood passes a 256 MiB RLIMIT_AS (512 MiB written, then freed)
    argv = [
        *PY,
        "-c",
        "import resource; resource.setrlimit(resource.RLIMIT_AS, (256 << 20, 256 << 20))\n" + MEMFD_FLOOD,
    ]
    result = subprocess.run([*argv, "512"], capture_output=True, text=True, timeout=60)
    assert result.stdout.split()[-1] == "done", result


def test_tmpfs_flood_is_stopped(cg: SessionCgroup) -> None:
    shm = Path("/dev/shm") / f"ponder-test-{uuid.uuid4().hex}"
    shm.mkdir()
    try:
        result = subprocess.run(
            cg.wrap([*PY, "-c", TMPFS_FLOOD, str(shm), "1536"]), capture_output=True, text=True, timeout=60
        )
        lines = result.stdout.split()
        assert "done" not in lines, "the tmpfs flood got past the memory limit"
        stopped_by_error = result.returncode == 3 and int(lines[1]) in (errno.ENOMEM, errno.ENOSPC)
        assert stopped_by_error or result.returncode == -signal.SIGKILL and cg.oom_killed(), result
        written = sum(f.stat().st_size for f in shm.iterdir())
        assert written <= LIMIT
        assert peak(cg) <= LIMIT
    finally:
        for f in shm.iterdir():
            f.unlink()
        shm.rmdir()


def test_fork_bomb_stops_at_pids_max(support: CgroupSupport) -> None:
    with SessionCgroup.create(LIMIT, 16) as cg:
        assert cg is not None
        code = FORKER
        result = subprocess.run(cg.wrap([*PY, "-c", code]), capture_output=True, text=True, timeout=30)
        forked, err = (int(x) for x in result.stdout.split())
        assert forked == 15 and err == errno.EAGAIN  # 16 tasks: the parent and 15 children
        orphans = cg.procs()
        assert len(orphans) == 15
    assert wait_until(lambda: not any(alive(p) for p in orphans))
    assert not any(d.exists() for d in cg.dirs)


def test_spinning_fork_bomb_is_capped_and_killed(support: CgroupSupport) -> None:
    # every process keeps forking (errors ignored, at most 7 generations: 128 processes if pids.max failed)
    # and spins; close() must win the race against it
    with SessionCgroup.create(LIMIT, 24) as cg:
        assert cg is not None
        code = SPINNER
        proc = subprocess.Popen(cg.wrap([*PY, "-c", code]))
        assert wait_until(lambda: len(cg.procs()) >= 20)
        time.sleep(0.3)
        assert len(cg.procs()) <= 24
        members = cg.procs()
        current = int((cg.dirs[-1] / "pids.current").read_text())
        assert current <= 24
    assert proc.wait(5) == -signal.SIGKILL
    assert wait_until(lambda: not any(alive(p) for p in members))
    assert not any(d.exists() for d in cg.dirs)


def test_close_is_idempotent_and_oom_state_survives_it(cg: SessionCgroup) -> None:
    assert not cg.oom_killed()
    subprocess.run(cg.wrap([*PY, "-c", MEMFD_FLOOD, "512"]), capture_output=True, timeout=60)
    killed = cg.oom_killed()
    cg.close()
    cg.close()
    cg.kill()
    assert cg.oom_killed() == killed
    assert not any(d.exists() for d in cg.dirs)


def test_stale_cgroups_of_dead_hosts_are_removed(support: CgroupSupport) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert not alive(dead.pid)
    stale = [p / f"ponder-{dead.pid}-0123abcd" for p in dict.fromkeys(support.parents)]
    live = [p / f"ponder-{os.getppid()}-4567ef89" for p in dict.fromkeys(support.parents)]
    for d in stale + live:
        d.mkdir()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        for d in stale:
            (d / "cgroup.procs").write_text(str(sleeper.pid))
        with SessionCgroup.create(LIMIT, 8) as cg:
            assert cg is not None
        assert not any(d.exists() for d in stale)
        assert sleeper.wait(5) == -signal.SIGKILL
        assert all(d.exists() for d in live)  # its host is alive: not ours to remove
    finally:
        sleeper.kill()
        sleeper.wait()
        for d in stale + live:
            if d.exists():
                d.rmdir()


def test_bad_limits_are_rejected() -> None:
    for memory, pids in ((0, 8), (LIMIT, 0), (-1, 8), (1.5, 8)):
        with pytest.raises(ValueError, match="positive integers"):
            SessionCgroup.create(memory, pids)  # type: ignore[arg-type]


def test_a_host_that_exits_without_close_leaves_nothing(support: CgroupSupport) -> None:
    host = (
        "import subprocess, sys\n"
        "from ponder.tools.sandbox.cgroups import SessionCgroup\n"
        "cg = SessionCgroup.create(64 << 20, 8)\n"
        "p = subprocess.Popen(cg.wrap(['sleep', '60']))\n"
        "print(cg.name, p.pid, flush=True)\n"
    )
    result = subprocess.run([sys.executable, "-c", host], capture_output=True, text=True, timeout=30, check=True)
    name, pid = result.stdout.split()
    assert wait_until(lambda: not alive(int(pid)))
    assert not any((parent / name).exists() for parent in support.parents)


def test_close_right_after_the_start_wins_the_race(support: CgroupSupport) -> None:
    # close() may run while the prefix is still joining: the process is killed or never runs its command
    for _ in range(20):
        cg = SessionCgroup.create(LIMIT, 8)
        assert cg is not None
        proc = subprocess.Popen(cg.wrap(["sleep", "60"]), stderr=subprocess.DEVNULL)
        cg.close()
        assert proc.wait(5) in (-signal.SIGKILL, EXIT_CANNOT_JOIN)
        assert not any(d.exists() for d in cg.dirs)
