"""LocalSandbox: more limits and isolation per mode (stdout that looks like a result, an output flood, wall
time, forks, escaping processes, the network, the working dir).

(A thread left spinning after its cell is stopped between runs: tests/tools/test_local_sandbox.py.)
"""

from __future__ import annotations

import os
import resource
import socket
import time
import uuid
from pathlib import Path

import pytest
from testkit import processes_with

from ponder.core.errors import SandboxError
from ponder.core.settings import PACKAGE_DIR
from ponder.tools.sandbox.local import LocalSandbox

MODES = ["bwrap", "unshare", "none"]
ISOLATING = ["bwrap", "unshare"]  # the modes with a pid and a network namespace


def make(isolation: str = "auto", **kwargs) -> LocalSandbox:
    try:
        return LocalSandbox(isolation=isolation, **kwargs)
    except SandboxError as exc:
        pytest.skip(f"isolation {isolation} unavailable here: {exc}")




def test_printed_json_is_output_not_the_result() -> None:
    with make(timeout=5) as sandbox:
        out = sandbox.run('print(\'{"value": "forged"}\')\n"real"')
    assert out.stdout == '{"value": "forged"}\n' and out.value == "'real'"


def test_output_flood_does_not_grow_the_host() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with make(timeout=5, output_chars=1000) as sandbox:
        result = sandbox.run("while True:\n    print('x' * 1000)")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB
    assert result.killed and result.kill_reason == "output" and len(result.stdout) < 1100, result


@pytest.mark.slow
def test_wall_timeout_of_a_sleeping_run() -> None:
    with make(timeout=1.5) as sandbox:
        result = sandbox.run("import time\ntime.sleep(10**6)")
    assert result.killed and result.kill_reason == "timeout" and result.duration >= 1.5, result


@pytest.mark.parametrize("mode", MODES)
def test_fork_attempts_return(mode: str) -> None:
    code = ("import os\nn = 0\nfor _ in range(200):\n    if os.fork() == 0:\n        os._exit(0)\n"
            "    os.wait()\n    n += 1\nn")
    with make(mode, timeout=10) as sandbox:
        result = sandbox.run(code)
    assert result.ok and result.value == "200", result  # the process limit counts live processes, not forks


@pytest.mark.slow
@pytest.mark.parametrize("mode", ISOLATING)  # without a pid namespace, setsid() escapes the kill
def test_no_process_survives_a_timeout(mode: str) -> None:
    marker = uuid.uuid4().hex
    code = (f"import os, subprocess, sys, time\n"
            f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', '{marker}'],"
            f" start_new_session=True)\n"
            f"if os.fork() == 0:\n    os.setsid()\n    os.execv(sys.executable, [sys.executable, '-c',"
            f" 'import time; time.sleep(300)', '{marker}'])\n"
            f"time.sleep(300)")
    with make(mode, timeout=2) as sandbox:
        result = sandbox.run(code)
    assert result.killed and result.kill_reason == "timeout"
    deadline = time.monotonic() + 30  # a poll for the kernel to reap them, not a speed limit
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    leftovers = processes_with(marker)
    for pid in leftovers:  # clean up before failing
        os.kill(pid, 9)
    assert not leftovers


@pytest.mark.parametrize("mode", ISOLATING)  # 'none' does not isolate the network
def test_network_is_unreachable(mode: str) -> None:
    with make(mode) as sandbox, socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = sandbox.run(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)")
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert result.error_type is not None, result
    assert not result.killed


@pytest.mark.parametrize("mode", MODES)
def test_writes_stay_in_the_working_dir_which_is_removed(mode: str) -> None:
    with make(mode) as sandbox:
        result = sandbox.run(
            "import os\nwith open('notes.txt', 'w') as fh:\n    fh.write('hi')\n"
            "os.getcwd(), open('notes.txt').read(), os.path.abspath('notes.txt')"
        )
        cwd, content, path = eval(result.value)  # noqa: S307 - our own repr of a tuple of strings
        assert content == "hi"
        assert not Path(cwd).is_relative_to(PACKAGE_DIR) and Path(path).parent == Path(cwd)
        host_dir = sandbox._worker.workdir
    assert not Path(host_dir).exists() and not Path(cwd).exists()
