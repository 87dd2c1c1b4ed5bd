"""Forged results: model code must not answer for the trusted side (nonce, protocol fds, result fd).

Sessions: the code runs in the session process S; the protocol process P (its parent, non-dumpable) holds
the host's pipes and the per-request nonce, checks S's answers and stops S between cells. Each test runs one attack and
checks that it failed; the ``guard`` fixture checks that the host is unharmed and nothing is left.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from ponder.tools.sandbox import session_worker

from .conftest import TIMEOUT, Guard, pids_in_namespace

pytestmark = pytest.mark.security

#: Host-format reply frames with every nonce-like string the code can find (its frames' locals and globals,
#: every object the garbage collector tracks, every str in them), written to every fd above 2.
FORGE_WITH_FOUND_NONCES = """
import gc, os, re, sys
hexes = set()
def scan(value):
    if isinstance(value, (str, bytes)) and re.fullmatch(rb'[0-9a-f]{16}', value if isinstance(value, bytes)
                                                         else value.encode('latin-1', 'replace')):
        hexes.add(value if isinstance(value, str) else value.decode())
frame = sys._getframe()
while frame is not None:
    for value in list(frame.f_locals.values()) + list(frame.f_globals.values()):
        scan(value)
    frame = frame.f_back
for obj in gc.get_objects():
    if isinstance(obj, dict):
        for value in list(obj.values()):
            scan(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            scan(value)
written = 0
for nonce in sorted(hexes) + ['x']:
    body = ('{"nonce": "%s", "value": "\\'forged\\'"}' % nonce).encode()
    for fd in range(3, 256):
        try:
            os.write(fd, b'%d\\n' % len(body) + body)
            written += 1
        except OSError:
            pass
'real'
"""


def test_reply_frames_with_nonces_from_frames_and_gc(guard: Guard) -> None:
    result = guard.attack(FORGE_WITH_FOUND_NONCES)
    assert result.value != "'forged'", result
    assert result.value == "'real'" or (result.killed and result.kill_reason == "crash"), result


#: Read the session process's whole memory (readable mappings, through /proc/self/mem after making itself
#: dumpable) and count the occurrences of two strings built from their hex here: the nonce of the previous
#: request (``SEEN``) and a random control that never left the host (``CONTROL``).
COUNT_IN_OWN_MEMORY = """
import ctypes, os
ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: the process inherited 0 from its parent
needles = [bytes.fromhex(h).decode()[::-1].encode() for h in (SEEN, CONTROL)]
counts = [0, 0]
with open('/proc/self/maps') as maps, open('/proc/self/mem', 'rb', 0) as mem:
    for line in maps:
        span, perms = line.split()[:2]
        start, end = (int(x, 16) for x in span.split('-'))
        if perms[0] != 'r' or end - start > 1 << 30:
            continue
        try:
            mem.seek(start)
            data = mem.read(end - start)
        except (OSError, OverflowError, ValueError):
            continue
        for i, needle in enumerate(needles):
            counts[i] += data.count(needle)
counts
"""


def test_session_process_never_holds_a_nonce(guard: Guard, monkeypatch: pytest.MonkeyPatch) -> None:
    nonces: list[str] = []
    send = session_worker.SessionWorker.send

    def recording(worker: session_worker.SessionWorker, data: bytes, deadline: float) -> str:
        nonces.append(data.split(b" ", 1)[0].decode())
        return send(worker, data, deadline)

    monkeypatch.setattr(session_worker.SessionWorker, "send", recording)
    assert guard.sandbox.run("x = 1").ok
    seen, control = nonces[-1], os.urandom(8).hex()

    def encoded(text: str) -> str:  # hex of the reversed text: the code holds neither string itself
        return text[::-1].encode().hex()

    code = f"SEEN, CONTROL = {encoded(seen)!r}, {encoded(control)!r}\n" + COUNT_IN_OWN_MEMORY
    result = guard.attack(code)
    counts = json.loads(result.value)
    assert counts[1] >= 1, result  # the scan works: it finds the control it built
    assert counts[0] == counts[1], f"the nonce of the last request is in the session process: {counts}"


def test_protocol_process_fds_through_proc(guard: Guard) -> None:
    code = ("import os\nppid = os.getppid()\nout = []\ntry:\n    names = os.listdir(f'/proc/{ppid}/fd')\n"
            "except OSError as exc:\n    names = []\n    out.append(type(exc).__name__)\n"
            "for fd in list(names) + [str(n) for n in range(64)]:\n    try:\n"
            "        w = os.open(f'/proc/{ppid}/fd/{fd}', os.O_WRONLY)\n        os.write(w, b'9\\n{}')\n"
            "        out.append(fd)\n    except OSError:\n        pass\nout, ppid")
    result = guard.attack(code)
    out, ppid = eval(result.value)  # noqa: S307 - the repr of ([str], int) our code built
    assert out == ["PermissionError"] and ppid == 2, result


def test_protocol_process_memory_through_proc(guard: Guard) -> None:
    code = ("import os\nppid = os.getppid()\nout = []\nfor name in ('mem', 'environ', 'maps', 'map_files', 'cwd',"
            " 'root', 'exe', 'syscall', 'stack'):\n    try:\n        p = f'/proc/{ppid}/{name}'\n"
            "        if os.path.islink(p):\n            out.append((name, os.readlink(p)))\n"
            "        elif os.path.isdir(p):\n            out.append((name, os.listdir(p)))\n"
            "        else:\n            out.append((name, open(p, 'rb').read(64)))\n"
            "    except OSError:\n        pass\nout")
    result = guard.attack(code)
    assert result.value == "[]", result


def test_pidfd_getfd_of_the_protocol_process(guard: Guard) -> None:
    code = ("import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "pidfd = libc.syscall(434, os.getppid(), 0)\nstolen = []\n"  # pidfd_open (x86_64 and aarch64)
            "for fd in range(64):\n    got = libc.syscall(438, pidfd, fd, 0)\n"  # pidfd_getfd
            "    if got >= 0:\n        stolen.append(fd)\n        os.write(got, b'9\\n{}')\nstolen")
    result = guard.attack(code)
    assert result.value == "[]", result


def session_process(ns: str) -> int:
    """The host pid of the session process (pid 3 of the session's pid namespace)."""
    for pid in pids_in_namespace(ns):
        try:
            line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("NSpid:"))
        except (OSError, StopIteration):
            continue
        if line.split()[-1] == "3":
            return pid
    raise AssertionError(f"no session process in {ns}")


def stat_of(pid: int) -> tuple[str, int]:
    """``(state, utime + stime in ticks)`` of a host process."""
    data = Path(f"/proc/{pid}/stat").read_text()
    fields = data[data.rfind(")") + 2 :].split()
    return fields[0], int(fields[11]) + int(fields[12])


def test_thread_does_not_run_between_cells(guard: Guard) -> None:
    ns, _ = guard.identify()
    start = ("import os, threading, time\ndef grow():\n    with open('grow', 'ab', 0) as fh:\n        while True:\n"
             "            fh.write(b'x')\n            time.sleep(0.001)\n"
             "threading.Thread(target=grow, daemon=True).start()\ntime.sleep(0.2)\nos.path.getsize('grow')")
    before = guard.attack(start)
    assert int(before.value) > 10, before  # the thread runs during its cell
    state = stat_of(session_process(ns))
    time.sleep(1.0)
    assert stat_of(session_process(ns)) == state and state[0] == "T", state  # stopped, no CPU used
    after = guard.attack("os.path.getsize('grow')")
    assert int(after.value) - int(before.value) < 100, (before.value, after.value)  # ~1000 if it had run


def test_forged_answer_then_running_on(guard: Guard) -> None:
    """The code answers for its own cell through S's private pipe, then keeps running: S is stopped at once
    and the next cell runs under the timeout (the old code still holds S: the session is killed)."""
    ns, _ = guard.identify()
    code = ("import os, sys\nf = sys._getframe()\nwhile f.f_code.co_name != '_session':\n    f = f.f_back\n"
            "cell, fd = f.f_locals['header'][0].decode(), f.f_locals['result_fd']\n"
            "os.write(fd, _pack({'value': \"'own'\", 'cell': cell}))\nn = 0\nwhile True:\n    n += 1")
    code = code.replace("_pack(", "f.f_globals['_pack'](")
    result = guard.attack(code)
    assert result.value == "'own'" and not result.killed, result  # its own cell: the code may say anything
    state = stat_of(session_process(ns))
    time.sleep(1.0)
    assert stat_of(session_process(ns)) == state and state[0] == "T", state
    nxt = guard.attack("n")
    assert nxt.killed and nxt.kill_reason == "timeout" and nxt.duration >= TIMEOUT, nxt
    assert guard.sandbox.run("1 + 1").value == "2"


def test_private_frame_for_another_cell(guard: Guard) -> None:
    code = ("import os, sys\nf = sys._getframe()\nwhile f.f_code.co_name != '_session':\n    f = f.f_back\n"
            "os.write(f.f_locals['result_fd'], f.f_globals['_pack']({'value': \"'forged'\", 'cell': '999'}))\n"
            "'real'")
    result = guard.attack(code)
    assert result.killed and result.kill_reason == "crash" and result.value is None, result
