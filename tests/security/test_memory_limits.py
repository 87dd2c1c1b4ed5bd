"""Attacks on memory the per-process limits do not count: memfds, tmpfs, SysV and POSIX IPC, pipes, descriptors.

``RLIMIT_AS`` counts only what a process maps, so memory held in files (memfd, ``/dev/shm``, ``/tmp``, a tmpfs
mounted in a nested namespace), in detached SysV segments, message queues or pipe buffers escapes it, and
several processes multiply it. Each attack tries to hold up to 1.5 GiB (bounded loops, a few processes) in a
256 MiB session: it must be stopped (an error, a full tmpfs, the session killed for memory) and the host's
``MemAvailable``, sampled through the attack, must not drop by much more than the session's limit.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .conftest import SYSCALL_PRELUDE, Guard

pytestmark = pytest.mark.security

LIMIT_MIB = 256  # the session fixture's memory_mb
#: Allowed drop of the host's MemAvailable beyond the limit: the worker, bwrap, page tables, kernel memory,
#: and other processes of the machine moving while the attack runs. A flood that is not stopped drops ~1.5 GiB.
SLACK_MIB = 640
FLOOD_MIB = 1536


def mem_available() -> int:
    """The host's ``MemAvailable`` in MiB."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) >> 10
    raise AssertionError("no MemAvailable in /proc/meminfo")


@contextmanager
def lowest_mem_available() -> Iterator[list[int]]:
    """Sample ``MemAvailable`` every 10 ms while the block runs: yields ``[before, lowest]`` (MiB)."""
    seen = [mem_available()] * 2
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.01):
            seen[1] = min(seen[1], mem_available())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        time.sleep(0.05)
        stop.set()
        thread.join()
        seen[1] = min(seen[1], mem_available())


#: ``PROCS`` processes each make up to ``UNITS`` units of ``UNIT_MIB`` with ``UNIT`` (``i``: the unit's index, ``n``:
#: the process's), count them in shared memory (it survives a kill), mark themselves done and hold everything until
#: every process is done or dead. The value: MiB held at that moment, i.e. by the processes still alive, or by all
#: of them when the memory outlives its process (files in a tmpfs, SysV segments: ``PERSISTS``).
FLOOD = SYSCALL_PRELUDE + """
import mmap, signal, time
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past RLIMIT_FSIZE fails instead of killing
shared = mmap.mmap(-1, 4096)  # [n]: units made by process n; [1000 + n]: process n is done; [2000]: release
block = b'x' * (1 << 20)
held = []

def flood(n):
    for i in range(UNITS):
        try:
            ok = UNIT
        except (OSError, MemoryError):
            break
        if not ok:
            break
        shared[n] = min(255, shared[n] + 1)
    shared[1000 + n] = 1
    deadline = time.monotonic() + 1.5
    while not shared[2000] and time.monotonic() < deadline:
        time.sleep(0.005)

children = []
for n in range(PROCS):
    pid = os.fork()
    if pid == 0:
        try:
            flood(n)
        finally:
            os._exit(0)
    children.append(pid)
dead = set()
deadline = time.monotonic() + 1.5
while time.monotonic() < deadline:
    for n, pid in enumerate(children):
        if n not in dead and os.waitpid(pid, os.WNOHANG)[0]:
            dead.add(n)
    if all(shared[1000 + n] or n in dead for n in range(PROCS)):
        break
    time.sleep(0.005)
alive = [n for n in range(PROCS) if n not in dead and shared[1000 + n]]
mib = sum(shared[n] for n in (range(PROCS) if PERSISTS else alive)) * UNIT_MIB
time.sleep(0.2)  # everything held at once for a moment: the host samples its MemAvailable
shared[2000] = 1
for n, pid in enumerate(children):
    if n not in dead:
        os.waitpid(pid, 0)
mib
"""

FLOODS = {  # name: (processes, units each, MiB a unit, the code making one unit, the memory outlives its process)
    "memfd": (8, 192, 1, "os.write(held.append(os.memfd_create(f'm{n}-{i}')) or held[-1], block) == len(block)",
              False),
    "processes-times-rlimit-as": (8, 180, 1, "held.append(bytearray(block)) or True", False),
    "dev-shm": (8, 192, 1, "open(f'/dev/shm/f{n}-{i}', 'wb').write(block) == len(block)", True),
    "tmp": (8, 192, 1, "open(f'/tmp/f{n}-{i}', 'wb').write(block) == len(block)", True),
    "sysv-shm": (4, 24, 16, "shm(16 << 20)", True),  # detached segments outlive their mapping: RLIMIT_AS misses them
    "pipe-buffers": (8, 192, 1, "pipe_full()", False),
}
HELPERS = """
libc.shmget.restype = ctypes.c_int
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
libc.shmdt.argtypes = [ctypes.c_void_p]

def shm(size):
    ident = libc.shmget(0, size, 0o1600)  # IPC_PRIVATE, IPC_CREAT | 0600
    if ident < 0:
        return False
    addr = libc.shmat(ident, None, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        return False
    ctypes.memset(addr, 1, size)  # touch every page
    libc.shmdt(addr)
    return True

def pipe_full():
    import fcntl
    r, w = os.pipe()
    held.extend((r, w))
    try:
        fcntl.fcntl(w, 1031, 1 << 20)  # F_SETPIPE_SZ: 1 MiB of buffer
    except OSError:
        pass
    os.set_blocking(w, False)
    total = 0
    while total < (1 << 20):
        try:
            total += os.write(w, block[: (1 << 20) - total])
        except BlockingIOError:
            break
    return total == (1 << 20)
"""


def flood_code(name: str) -> str:
    procs, units, unit_mib, unit, persists = FLOODS[name]
    assert procs * units * unit_mib <= FLOOD_MIB
    return (FLOOD.replace("UNIT_MIB", str(unit_mib)).replace("UNITS", str(units)).replace("PROCS", str(procs))
            .replace("PERSISTS", str(persists)).replace("UNIT", unit)
            .replace("held = []\n", "held = []\n" + HELPERS))


def host_ipc() -> tuple[str, list[str]]:
    """The host's SysV shared memory segments and ``/dev/shm`` entries (a sandbox must add none)."""
    return Path("/proc/sysvipc/shm").read_text(), sorted(os.listdir("/dev/shm"))


@pytest.mark.parametrize("name", list(FLOODS))
def test_memory_outside_rlimit_as(session: Guard, name: str) -> None:
    ipc = host_ipc()
    with lowest_mem_available() as seen:
        result = session.attack(flood_code(name))
    drop = seen[0] - seen[1]
    held = int(result.value) if result.value and result.value.isdigit() else None
    stopped = result.killed and result.kill_reason == "memory" or (held is not None and held <= LIMIT_MIB + 64)
    assert stopped, f"{held} MiB held, host MemAvailable dropped {drop} MiB: {result}"
    assert drop < LIMIT_MIB + SLACK_MIB, f"host MemAvailable dropped {drop} MiB ({held} MiB held): {result}"
    assert host_ipc() == ipc


def test_tmpfs_in_a_nested_namespace(session: Guard) -> None:
    """A tmpfs of its own (no size cap) in a nested user namespace, then 1.5 GiB of files in it."""
    inner = ("import ctypes, signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
             "libc = ctypes.CDLL(None, use_errno=True)\n"
             "assert libc.mount(b'none', b'/tmp', b'tmpfs', 0, b'size=4g') == 0, 'mount'\n"
             "block = b'x' * (1 << 20)\nn = 0\n"
             f"for i in range({FLOOD_MIB}):\n"
             "    if open(f'/tmp/f{i}', 'wb').write(block) != len(block):\n        break\n    n += 1\nprint(n)\n")
    code = ("import subprocess, sys\n"
            "p = subprocess.run(['unshare', '-U', '-r', '-m', sys.executable, '-I', '-S', '-c', INNER],"
            " capture_output=True, text=True)\n"
            "p.returncode, p.stdout.strip()\n").replace("INNER", repr(inner))
    with lowest_mem_available() as seen:
        result = session.attack(code)
    drop = seen[0] - seen[1]
    if not result.killed:
        returncode, written = eval(result.value)  # noqa: S307 - the repr of (int, str) our code built
        assert returncode != 0 or int(written) <= LIMIT_MIB + 64, (returncode, written, drop)
    else:
        assert result.kill_reason == "memory", result
    assert drop < LIMIT_MIB + SLACK_MIB, f"host MemAvailable dropped {drop} MiB: {result}"


def test_posix_message_queues(session: Guard) -> None:
    """Kernel memory in message queues (``mq_open``): bounded per uid by RLIMIT_MSGQUEUE and the queue count."""
    code = SYSCALL_PRELUDE + (
        "class Attr(ctypes.Structure):\n"
        "    _fields_ = [('flags', ctypes.c_long), ('maxmsg', ctypes.c_long), ('msgsize', ctypes.c_long),"
        " ('curmsgs', ctypes.c_long), ('pad', ctypes.c_long * 4)]\n"
        "try:\n    rt = ctypes.CDLL('librt.so.1', use_errno=True)\nexcept OSError:\n    rt = libc\n"
        "reserved = 0\nqueues = []\n"
        "for i in range(512):\n"
        "    for maxmsg, size in ((1 << 16, 1 << 20), (1024, 1 << 16), (10, 8192)):\n"
        "        q = rt.mq_open(f'/ponder-sec-{os.getpid()}-{i}'.encode(), 0o102, 0o600, ctypes.byref(Attr(0, maxmsg,"
        " size, 0)))\n"  # O_CREAT | O_RDWR
        "        if q >= 0:\n            queues.append(q)\n            reserved += maxmsg * size\n            break\n"
        "    else:\n        break\n"
        "reserved >> 20, len(queues)\n")
    with lowest_mem_available() as seen:
        result = session.attack(code)
    reserved, queues = eval(result.value)  # noqa: S307 - the repr of (int, int) our code built
    assert reserved <= 64, (reserved, queues)
    assert seen[0] - seen[1] < LIMIT_MIB + SLACK_MIB


FD_ATTACKS = {
    "open-until-emfile": ("import resource\nfds = []\nfor _ in range(5000):\n    try:\n"
                          "        fds.append(os.open('/dev/null', os.O_RDONLY))\n    except OSError:\n        break\n"
                          "len(fds) + 3\n"),
    "raise-the-limit": ("import resource\nout = 0\n"
                        "for limit in ((4096, 4096), (256, 4096), (1 << 20, 1 << 20)):\n    try:\n"
                        "        resource.setrlimit(resource.RLIMIT_NOFILE, limit)\n        out = limit[0]\n"
                        "    except (ValueError, OSError):\n        pass\n"
                        "max(out, resource.getrlimit(resource.RLIMIT_NOFILE)[1])\n"),
    "dup2-to-a-high-number": ("out = 0\nfor target in (255, 300, 4095, 100000):\n    try:\n"
                              "        os.dup2(0, target)\n        out = max(out, target + 1)\n"
                              "    except OSError:\n        pass\nout\n"),
    "fds-in-flight": (  # fds sent over a unix socket and closed here live on in the socket, outside our table
        "import array, socket\na, b = socket.socketpair()\na.setblocking(False)\nsent = 0\n"
        "for _ in range(5000):\n    fd = os.open('/dev/null', os.O_RDONLY)\n    try:\n"
        "        a.sendmsg([b'x'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', [fd]))])\n"
        "        sent += 1\n    except OSError:\n        break\n    finally:\n        os.close(fd)\nsent\n"),
}


@pytest.mark.parametrize("name", list(FD_ATTACKS))
def test_file_descriptors(session: Guard, name: str) -> None:
    """Descriptors stay near RLIMIT_NOFILE (about 256): each holds kernel memory the rlimits do not count."""
    result = session.attack(SYSCALL_PRELUDE + FD_ATTACKS[name])
    assert result.error_type is None, result
    assert int(result.value) <= 300, result
