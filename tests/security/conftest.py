"""Attack suite against the local sandbox under bubblewrap (``pytest tests/security``).

Every test runs hostile code in a fresh :class:`LocalSandbox` (``isolation="bwrap"``, 2 s timeout) and
asserts both that the attack failed and that the host is unharmed. The suite skips, with the reason,
where bubblewrap is missing or cannot start (CI installs it: ``make test``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ponder.core.errors import SandboxError
from ponder.tools.executor import ExecResult
from ponder.tools.sandbox.local import LocalSandbox

TIMEOUT = 2.0
#: Seconds after which a run that has not returned counts as hung: the sandbox's timeout did not hold. A hang
#: detector far above TIMEOUT (a loaded machine adds seconds, not minutes), not a speed limit.
HUNG = 30 * TIMEOUT


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "security: attacks against the local sandbox (needs bubblewrap)")


def pids_in_namespace(ns: str) -> list[int]:
    """Host pids whose pid namespace is ``ns`` (``pid:[inode]``)."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") == ns:
                found.append(int(entry))
        except OSError:
            pass
    return found


def pids_of_uid(uid: int) -> list[int]:
    """Host pids whose real uid is ``uid``."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        line = next((x for x in status.splitlines() if x.startswith("Uid:")), "Uid: -1")
        if int(line.split()[1]) == uid:
            found.append(int(entry))
    return found


def wait_until(predicate, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


@dataclass
class Guard:
    """A sandbox session plus what the test needs to check the host afterwards."""

    sandbox: LocalSandbox
    namespaces: set[str] = field(default_factory=set)
    uids: set[int] = field(default_factory=set)

    def identify(self) -> tuple[str, int]:
        """Record the current session's pid namespace and uid (checked for leftovers at teardown)."""
        result = self.sandbox.run("import os\nos.readlink('/proc/self/ns/pid'), os.getuid()")
        ns, uid = eval(result.value)  # noqa: S307 - our own repr of a (str, int) tuple
        assert ns != os.readlink("/proc/self/ns/pid"), "the session shares the host's pid namespace"
        self.namespaces.add(ns)
        if uid != os.getuid():
            self.uids.add(uid)
        return ns, uid

    def attack(self, code: str) -> ExecResult:
        """Run ``code``: the run must return (the timeout holds), and a timeout kill comes at the deadline.

        The wall time of the whole call is not bounded (killing and reaping take longer on a loaded machine);
        each test checks its attack's outcome, e.g. the kill reason, and the fixture checks that nothing of
        the session is left.
        """
        pool = ThreadPoolExecutor(1, thread_name_prefix="attack")
        try:
            result = pool.submit(self.sandbox.run, code).result(timeout=HUNG)
        except FutureTimeout:
            pytest.fail(f"the sandbox did not return within {HUNG:.0f} s: its {TIMEOUT} s timeout did not hold")
        finally:
            pool.shutdown(wait=False)
        if result.kill_reason == "timeout":
            assert result.duration >= TIMEOUT, result  # killed at the deadline, not before
        return result

    def leftovers(self) -> list[int]:
        pids = [p for ns in self.namespaces for p in pids_in_namespace(ns)]
        return pids + [p for uid in self.uids for p in pids_of_uid(uid)]


def host_is_healthy() -> None:
    """The host can still start processes and its test process is fine."""
    assert subprocess.run(["true"], timeout=10).returncode == 0
    os.kill(os.getpid(), 0)


@pytest.fixture
def guard() -> Iterator[Guard]:
    """A fresh bwrap session; afterwards: the host is healthy and nothing of any session is left."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed: the sandbox's isolation cannot be tested here "
                    "(install the bubblewrap package; `make test` does)")
    try:
        sandbox = _bwrap_session()
    except SandboxError as exc:
        pytest.skip(f"bubblewrap cannot start a sandbox on this machine: {exc}")
    yield from _guarded(sandbox, Guard.leftovers)


def _bwrap_session() -> LocalSandbox:
    return LocalSandbox(timeout=TIMEOUT, memory_mb=256, output_chars=2000, isolation="bwrap")


def _guarded(sandbox: LocalSandbox, live: Callable[[Guard], list[int]]) -> Iterator[Guard]:
    """Yield a :class:`Guard` of ``sandbox``; then: it still works, it is closed, ``live`` empties, the host is fine."""
    g = Guard(sandbox)
    g.identify()
    try:
        yield g
        assert sandbox.run("1 + 1").value == "2", "the sandbox does not work after the attack"
        g.identify()
    finally:
        sandbox.close()
    assert wait_until(lambda: not live(g)), f"sandbox processes left: {live(g)}"
    host_is_healthy()


# -- shared by the keyring, fail-closed, kernel-surface, memory and /proc attack files ---------------------------

#: Syscall numbers the attacks call through ``libc.syscall`` (x86_64, aarch64).
SYSCALLS = {
    "x86_64": {"add_key": 248, "request_key": 249, "keyctl": 250, "io_uring_setup": 425, "perf_event_open": 298,
               "bpf": 321, "userfaultfd": 323, "clone": 56, "clone3": 435, "process_vm_readv": 310,
               "pidfd_open": 434, "pidfd_getfd": 438, "fsopen": 430, "open_tree": 428, "memfd_create": 319,
               "kcmp": 312, "syslog": 103},
    "aarch64": {"add_key": 217, "request_key": 218, "keyctl": 219, "io_uring_setup": 425, "perf_event_open": 241,
                "bpf": 280, "userfaultfd": 282, "clone": 220, "clone3": 435, "process_vm_readv": 270,
                "pidfd_open": 434, "pidfd_getfd": 438, "fsopen": 430, "open_tree": 428, "memfd_create": 279,
                "kcmp": 272, "syslog": 116},
}[os.uname().machine]

#: Prelude of attack code: ``call(name, *args)`` makes a raw syscall and returns its result or ``-errno``.
SYSCALL_PRELUDE = (
    "import ctypes, os\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "libc.syscall.restype = ctypes.c_long\n"
    f"NR = {SYSCALLS!r}\n"
    "def call(name, *args):\n"
    "    res = libc.syscall(NR[name] if isinstance(name, str) else name, *args)\n"
    "    return res if res >= 0 else -ctypes.get_errno()\n"
)


def is_zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and only waits to be reaped (a zombie runs nothing, holds no memory)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" in status


@pytest.fixture
def session() -> Iterator[Guard]:
    """Like :func:`guard`, but a zombie of the session waiting for the host's init to reap it is not a leftover.

    On some machines the host's pid 1 reaps orphans seconds late (bwrap's own pid 1 is reparented to it when
    the session is killed); a zombie can run nothing, so the attack files that use this fixture do not wait for it.
    Everything else is checked as by :func:`guard`: the sandbox works after the attack, no live process of
    the session's pid namespace or uid is left, the host is healthy.
    """
    yield from _guarded(_bwrap_session(), lambda g: [pid for pid in g.leftovers() if not is_zombie(pid)])


def run_host(script: str, *args: str, env: dict[str, str] | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh host Python process (ponder importable): a process of its own for attacks
    that change process-wide state (the session keyring, the cached isolation probe, ``PATH``)."""
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd="/")
