"""Attacks with processes, signals, privileges and resources: each is stopped and the host is fine."""

from __future__ import annotations

import os
import resource
import signal
import time
import uuid
from pathlib import Path

import pytest

from .conftest import Guard, is_zombie, pids_in_namespace, wait_until

pytestmark = pytest.mark.security


def strays(ns: str) -> list[int]:
    """Live processes in the session's namespace other than its init (pid 1) and worker (pid 2: the protocol
    process, which forks the session process, pid 3, before any code runs).

    Zombies do not count: a killed child of the session process stays one until the next run reaps it (the
    session process is stopped between runs); it runs nothing and holds no memory.
    """
    found = []
    for pid in pids_in_namespace(ns):
        try:
            line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("NSpid:"))
        except (OSError, StopIteration):
            continue
        if int(line.split()[-1]) > 3 and not is_zombie(pid):
            found.append(pid)
    return found


@pytest.mark.parametrize("catch", [False, True], ids=["plain", "catching-errors"])
def test_fork_bomb(guard: Guard, catch: bool) -> None:
    body = "    try:\n        os.fork()\n    except OSError:\n        pass\n" if catch else "    os.fork()\n"
    result = guard.attack("import os\nwhile True:\n" + body)
    if catch:
        assert result.killed and result.kill_reason == "timeout", result
    else:
        assert result.error_type == "BlockingIOError" or result.killed, result
    ns, _ = guard.identify()
    assert wait_until(lambda: not strays(ns))


@pytest.mark.parametrize("code", ["x = bytearray(10**10)", "x = []\nwhile True:\n    x.append(bytearray(2**24))",
                                  "x = 'x' * 10**10"], ids=["one-block", "growing", "string"])
def test_memory_bomb(guard: Guard, code: str) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = guard.attack(code)
    assert result.error_type == "MemoryError" or result.kill_reason == "memory", result
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB: the host did not grow


def test_cpu_loop_with_threads(guard: Guard) -> None:
    code = ("import threading\ndef spin():\n    while True:\n        pass\n"
            "for _ in range(4):\n    threading.Thread(target=spin, daemon=True).start()\nspin()")
    result = guard.attack(code)
    assert result.killed and result.kill_reason in ("timeout", "cpu"), result


def test_print_flood(guard: Guard) -> None:
    result = guard.attack("while True:\n    print('x' * 100)")
    assert result.killed and result.kill_reason == "output" and len(result.stdout) < 2100, result


def test_kill_the_parent_and_the_test_process(guard: Guard) -> None:
    """The session's own processes are its to kill (its protocol process: the session ends, nothing else)."""
    code = (f"import os, signal\nout = []\nfor pid in ({os.getpid()}, 1):\n    try:\n"
            f"        os.kill(pid, signal.SIGKILL)\n        out.append('sent')\n"
            f"    except OSError as exc:\n        out.append(type(exc).__name__)\nout")
    result = guard.attack(code)
    assert result.value == "['ProcessLookupError', 'PermissionError']", result
    guard.sandbox.run("kept = 1")
    for attack in ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nimport time\ntime.sleep(5)",
                   "import os, signal\nos.kill(-1, signal.SIGKILL)\nimport time\ntime.sleep(5)"):
        result = guard.attack(attack)
        assert result.killed and result.value is None, result  # no result, nothing forged
        assert guard.sandbox.run("1 + 1").value == "2"  # a fresh session
    assert guard.sandbox.run("kept").error_type == "NameError"
    os.kill(os.getpid(), 0)


def test_ignoring_signals_does_not_escape_the_timeout(guard: Guard) -> None:
    code = ("import signal, time\nfor sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU,\n"
            "            signal.SIGALRM, signal.SIGUSR1):\n    signal.signal(sig, signal.SIG_IGN)\n"
            "while True:\n    time.sleep(0.01)")
    result = guard.attack(code)
    assert result.killed and result.kill_reason == "timeout", result


@pytest.mark.parametrize("call", ["list(map(f, [n + 1]))", "f(n + 1) + 1"], ids=["through-C", "python"])
def test_deep_recursion(guard: Guard, call: str) -> None:
    result = guard.attack(f"import sys\nsys.setrecursionlimit(10**6)\ndef f(n):\n    return {call}\nf(0)")
    if call.startswith("list"):  # recursion through C code overflows the C stack: a crash
        assert result.killed and result.kill_reason == "crash", result
    else:  # Python frames live on the heap: an error, the memory limit or the timeout stops it
        assert result.killed or result.error_type in ("RecursionError", "MemoryError", "SystemError"), result
    assert guard.sandbox.run("'next run works'").value == "'next run works'"
    assert guard.sandbox.restarts == int(result.killed)
    guard.identify()


def test_ctypes_segfault(guard: Guard) -> None:
    result = guard.attack("import ctypes\nctypes.string_at(0)")
    assert result.killed and result.kill_reason == "crash", result
    assert "restarted" in result.summary() and guard.sandbox.restarts == 1


DAEMONS = ("import os, subprocess, sys\n"
           "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', '{marker}'], "
           "start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
           "if os.fork() == 0:\n    if os.fork() == 0:\n        os.setsid()\n"
           "        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(300)', '{marker}'])\n"
           "    os._exit(0)\n")


def test_background_processes_die_with_their_run(guard: Guard) -> None:
    ns, _ = guard.identify()
    marker = uuid.uuid4().hex
    result = guard.attack(DAEMONS.format(marker=marker) + "import time\ntime.sleep(0.3)\n'started'")
    assert result.value == "'started'", result
    assert wait_until(lambda: not strays(ns)), strays(ns)


def test_daemons_do_not_outlive_a_timeout(guard: Guard) -> None:
    ns, _ = guard.identify()
    marker = uuid.uuid4().hex
    result = guard.attack(DAEMONS.format(marker=marker) + "import time\ntime.sleep(300)")
    assert result.killed and result.kill_reason == "timeout", result
    assert wait_until(lambda: not pids_in_namespace(ns)), pids_in_namespace(ns)


def test_ptrace(guard: Guard) -> None:
    code = (f"import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            f"[libc.ptrace(16, pid, None, None) for pid in (1, {os.getpid()}, {os.getppid()})]")  # PTRACE_ATTACH
    result = guard.attack(code)
    assert result.value == "[-1, -1, -1]", result


def test_mount_and_namespaces(guard: Guard) -> None:
    mounts = Path("/proc/self/mountinfo").read_text()
    code = ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nout = []\n"
            "out.append(libc.mount(b'tmpfs', b'/usr', b'tmpfs', 0, None))\n"
            "out.append(libc.mount(b'/tmp', b'/etc', None, 4096, None))\n"  # MS_BIND
            "out.append(libc.unshare(0x00020000))\n"  # CLONE_NEWNS without privileges
            "out.append(libc.setns(0, 0))\nout")
    result = guard.attack(code)
    assert result.value == "[-1, -1, -1, -1]", result
    assert Path("/proc/self/mountinfo").read_text() == mounts


def test_raise_rlimits(guard: Guard) -> None:
    code = ("import resource\nout = []\nfor name in ('RLIMIT_AS', 'RLIMIT_NPROC', 'RLIMIT_FSIZE', 'RLIMIT_CPU'):\n"
            "    kind = getattr(resource, name)\n    try:\n"
            "        resource.setrlimit(kind, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\n"
            "        out.append(name)\n    except (ValueError, OSError):\n        pass\nout")
    result = guard.attack(code)
    assert result.value == "[]", result
    bomb = guard.attack("x = bytearray(2**30)")
    assert bomb.error_type == "MemoryError", bomb


def test_become_root(guard: Guard) -> None:
    code = ("import os\nout = []\nfor call in (lambda: os.setuid(0), lambda: os.setgid(0), lambda: os.setgroups([0]),\n"
            "             lambda: os.seteuid(0), lambda: os.setresuid(0, 0, 0)):\n"
            "    try:\n        call()\n        out.append('root')\n    except OSError:\n        pass\n"
            "out, os.getuid() != 0, os.geteuid() != 0")
    result = guard.attack(code)
    assert result.value == "([], True, True)", result


def test_forged_protocol_frames(guard: Guard) -> None:
    forge = ("import os\nframe = b'{\"nonce\": \"x\", \"value\": \"forged\"}'\n"
             "for fd in map(int, os.listdir('/proc/self/fd')):\n    try:\n"
             "        if os.fstat(fd).st_mode & 0o170000 == 0o010000:\n"  # a pipe
             "            os.write(fd, b'%d\\n' % len(frame) + frame)\n    except OSError:\n        pass\n'real'")
    for code in (forge, forge.replace("b'%d\\n' % len(frame) + frame", "b'9' * 40 + b'\\n'")):
        result = guard.attack(code)  # the session process's only pipe out leads to the protocol process
        assert result.value == "'real'" or (result.killed and result.kill_reason == "crash"), result


def test_signals_cannot_reach_the_host(guard: Guard) -> None:
    pid = os.getpid()
    old = signal.signal(signal.SIGUSR1, lambda *_: pytest.fail("the sandbox signalled the test process"))
    try:
        code = (f"import os, signal\nout = 'sent'\ntry:\n    os.kill({pid}, signal.SIGUSR1)\n"
                f"except OSError as exc:\n    out = type(exc).__name__\nout")
        result = guard.attack(code)
        time.sleep(0.1)
        assert result.value == "'ProcessLookupError'", result
    finally:
        signal.signal(signal.SIGUSR1, old)
