"""LocalSandbox: a stateful, isolated Python session (results, state, limits, restarts, lifecycle)."""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest
from testkit import processes_with

from ponder.core.errors import ConfigError, SandboxError
from ponder.core.settings import load_settings
from ponder.tools.executor import CodeExecutor, ExecResult
from ponder.tools.sandbox import open_sandbox
from ponder.tools.sandbox.local import LocalSandbox

MODES = ["bwrap", "unshare", "none"]
ISOLATING = ["bwrap", "unshare"]  # the modes with a pid namespace


def make(isolation: str = "auto", **kwargs) -> LocalSandbox:
    try:
        return LocalSandbox(isolation=isolation, **kwargs)
    except SandboxError as exc:
        pytest.skip(f"isolation {isolation} unavailable here: {exc}")


@pytest.fixture
def sb() -> LocalSandbox:
    with LocalSandbox(timeout=5) as sandbox:
        yield sandbox


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param




def wait_gone(marker: str, seconds: float = 30.0) -> list[int]:
    """Poll until no process carries ``marker`` (a wait for the kernel to reap them, not a speed limit)."""
    deadline = time.monotonic() + seconds
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    leftovers = processes_with(marker)
    for pid in leftovers:  # clean up before failing
        os.kill(pid, 9)
    return leftovers


# -- state and results -------------------------------------------------------------------------------


def test_state_persists_between_runs(mode: str) -> None:
    with make(mode) as sandbox:
        assert sandbox.run("x = 1").ok
        assert sandbox.run("x + 1").value == "2"
        assert sandbox.run("def double(n):\n    return 2 * n\nimport math").ok
        assert sandbox.run("double(math.floor(2.5))").value == "4"
        assert sandbox.isolation_in_use == mode


def test_sessions_do_not_share_state() -> None:
    with make() as one, make() as two:
        one.run("secret = 41")
        assert two.run("secret").error_type == "NameError"
        assert one.run("secret + 1").value == "42"


def test_last_expression_value(sb: LocalSandbox) -> None:
    assert sb.run("y = 5").value is None
    assert sb.run("print('only printed')").stdout == "only printed\n"
    assert sb.run("None").value is None
    assert sb.run("'a' + 'b'").value == "'ab'"
    assert sb.run("if __name__ == '__main__':\n    answer = 7\nanswer").value == "7"
    out = sb.run("import sys\nprint('héllo 😀')\nprint('warn', file=sys.stderr)\n[1, 2]")
    assert (out.stdout, out.stderr, out.value) == ("héllo 😀\n", "warn\n", "[1, 2]")
    assert out.duration > 0


def test_exception_has_short_traceback_of_model_code(sb: LocalSandbox) -> None:
    sb.run("def f(x):\n    return 10 / x")
    result = sb.run("y = 1\nf(0)")
    assert not result.ok and not result.killed
    assert result.error_type == "ZeroDivisionError" and result.error_message == "division by zero"
    assert 'File "<cell 1>", line 2, in f' in result.traceback and "return 10 / x" in result.traceback
    assert 'File "<cell 2>", line 2, in <module>' in result.traceback
    assert "_exec_worker" not in result.traceback and "_kernel_worker" not in result.traceback
    assert "<string>" not in result.traceback
    assert "ZeroDivisionError" in result.summary()
    assert sb.run("y").value == "1"  # an error does not end the session


def test_syntax_error_and_deep_recursion(sb: LocalSandbox) -> None:
    bad = sb.run("def solution(:\n    return 1\n")
    assert bad.error_type == "SyntaxError" and "line 1" in bad.traceback
    deep = sb.run("def g(n):\n    return g(n + 1)\ng(0)")
    assert deep.error_type == "RecursionError" and deep.traceback.count("<cell") <= 6


def test_system_exit(sb: LocalSandbox) -> None:
    sb.run("kept = 3")
    assert sb.run("import sys\nsys.exit(0)").ok
    failed = sb.run("sys.exit(3)")
    assert failed.error_type == "SystemExit" and failed.error_message == "3"
    assert sb.run("kept").value == "3"
    hard = sb.run("import os\nos._exit(4)")
    assert hard.error_type == "SystemExit" and "status 4" in hard.error_message
    assert "restarted" in hard.summary()
    assert sb.run("kept").error_type == "NameError" and sb.restarts == 1


def test_forked_child_does_not_take_over_the_session(sb: LocalSandbox) -> None:
    result = sb.run("import os\nstate = 'parent'\nif os.fork() == 0:\n    state = 'child'\nstate")
    assert result.value == "'parent'"
    assert sb.run("state").value == "'parent'" and sb.restarts == 0


def test_threads_do_not_run_between_runs(mode: str) -> None:
    with make(mode) as sandbox:
        sandbox.run("import threading, time\nn = 0\ndef count():\n    global n\n    while True:\n        n += 1\n"
                    "        time.sleep(0.001)\nthreading.Thread(target=count, daemon=True).start()\ntime.sleep(0.1)")
        before = int(sandbox.run("n").value)
        time.sleep(0.5)
        after = int(sandbox.run("n").value)
        assert before > 10 and after - before < 50, (before, after)  # ~500 if the thread had run meanwhile
        assert int(sandbox.run("time.sleep(0.1)\nn").value) > after + 10  # it runs again during a run


def test_code_runs_in_a_child_of_the_protocol_process(mode: str) -> None:
    with make(mode) as sandbox:
        pid, ppid = eval(sandbox.run("import os\nos.getpid(), os.getppid()").value)  # noqa: S307
        assert ppid == sandbox._worker.proc.pid or mode != "none" and ppid == 2, (pid, ppid)
        fds = sandbox.run("import os\nsorted(int(fd) for fd in os.listdir('/proc/self/fd'))").value
        assert len(eval(fds)) <= 6, fds  # noqa: S307 - 0-2, its two private pipes, the listing's own fd


def test_garbage_from_the_session_process_is_a_crash(sb: LocalSandbox) -> None:
    sb.run("kept = 1")
    code = ("import os, sys\nf = sys._getframe()\nwhile f.f_code.co_name != '_session':\n    f = f.f_back\n"
            "os.write(f.f_locals['result_fd'], b'12\\nnonce 1\\nx' + b'y' * 5)\n'real'")
    result = sb.run(code)
    assert result.killed and result.kill_reason == "crash" and result.value is None, result
    assert "restarted" in result.summary() and sb.run("kept").error_type == "NameError"


def test_long_value_and_output_are_truncated() -> None:
    with make(output_chars=200) as sandbox:
        value = sandbox.run("'x' * 10000")
        assert value.truncated and len(value.value) < 250
        printed = sandbox.run("print('y' * 10000)")
        assert printed.truncated and len(printed.stdout) < 250 and not printed.killed
        assert sandbox.run("1").stdout == ""  # the next run starts with empty output


def test_output_flood_kills_and_restarts() -> None:
    with make(timeout=5, output_chars=1000) as sandbox:
        sandbox.run("z = 1")
        result = sandbox.run("while True:\n    print('x' * 1000)")
        assert result.killed and result.kill_reason == "output" and result.truncated
        assert len(result.stdout) < 1100
        assert "restarted" in result.summary()
        assert sandbox.run("z").error_type == "NameError"


# -- limits and restarts -----------------------------------------------------------------------------


@pytest.mark.slow
def test_timeout_kills_and_next_run_gets_a_fresh_session(mode: str) -> None:
    with make(mode, timeout=1) as sandbox:
        sandbox.run("x = 1")
        result = sandbox.run("print('before')\nwhile True:\n    pass")
        assert result.killed and result.kill_reason == "timeout"
        assert result.duration >= 1  # killed at the deadline, not before
        assert result.stdout == "before\n"
        assert "timeout" in result.summary() and "variables" in result.summary()
        after = sandbox.run("x")
        assert after.error_type == "NameError"
        assert sandbox.run("x = 2\nx").value == "2"
        assert sandbox.restarts == 1


@pytest.mark.slow
def test_cpu_budget_is_per_run_not_cumulative() -> None:
    spin = "import time\nend = time.process_time() + 0.7\nwhile time.process_time() < end:\n    pass\n'done'"
    with make(timeout=20, cpu_seconds=1) as sandbox:
        for _ in range(3):  # 2.1 s of CPU in total, 0.7 s per run
            assert sandbox.run(spin).value == "'done'"
        result = sandbox.run("while True:\n    pass")
        assert result.killed and result.kill_reason == "cpu"
        assert sandbox.restarts == 1


def test_memory_error_keeps_the_session() -> None:
    with make(memory_mb=256) as sandbox:
        sandbox.run("kept = 'yes'")
        result = sandbox.run("x = bytearray(2 * 256 * 2**20)")
        assert result.error_type == "MemoryError" and not result.killed, result  # RLIMIT_AS refuses it
        assert sandbox.run("kept").value == "'yes'" and sandbox.restarts == 0


def test_crash_is_reported_and_session_replaced(mode: str) -> None:
    with make(mode) as sandbox:
        result = sandbox.run("import ctypes\nctypes.string_at(0)")
        assert result.killed and result.kill_reason == "crash"
        assert sandbox.run("1 + 1").value == "2" and sandbox.restarts == 1


def test_dead_session_between_runs_is_replaced(sb: LocalSandbox) -> None:
    sb.run("x = 1")
    sb._worker.kill()  # e.g. a thread the code left running exhausted the session's CPU budget
    time.sleep(0.2)
    result = sb.run("1 + 1")
    assert result.value == "2" and "fresh" in result.summary() and sb.restarts == 1


@pytest.mark.parametrize("mode", ISOLATING)  # without a pid namespace children die with the session only
def test_child_processes_do_not_outlive_their_run(mode: str) -> None:
    marker = uuid.uuid4().hex
    with make(mode) as sandbox:
        result = sandbox.run(f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', "
                             f"'import time; time.sleep(300)', '{marker}'], start_new_session=True)\n1")
        assert result.value == "1"
        assert not wait_gone(marker)


# -- isolation and environment -----------------------------------------------------------------------


def test_environment_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-test-key")
    monkeypatch.setenv("PONDER_SECRET", "x")
    with make() as sandbox:
        result = sandbox.run("import os\nsorted(os.environ), os.environ['HOME'] == os.getcwd()")
    assert "OPENAI_API_KEY" not in result.value and "PONDER" not in result.value
    assert result.value.endswith("True)")


def test_host_package_is_not_importable(sb: LocalSandbox) -> None:
    assert sb.run("import ponder").error_type == "ModuleNotFoundError"


# -- lifecycle ---------------------------------------------------------------------------------------


def session_processes(sandbox: LocalSandbox) -> tuple[str, list[int]]:
    """The session's pid namespace and the host pids in it (or the worker's pid without a namespace)."""
    ns, pid = eval(sandbox.run("import os\nos.readlink('/proc/self/ns/pid'), os.getpid()").value)  # noqa: S307
    return ns, pids_in(ns, pid)


def pids_in(ns: str, pid: int) -> list[int]:
    if ns == os.readlink("/proc/self/ns/pid"):
        return [pid] if os.path.exists(f"/proc/{pid}") else []
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") == ns:
                found.append(int(entry))
        except OSError:
            pass
    return found


@pytest.mark.slow
def test_close_leaves_no_processes(mode: str) -> None:
    sandbox = make(mode, timeout=5)
    pid = sandbox._worker.proc.pid
    sandbox.run("import threading, time\nthreading.Thread(target=time.sleep, args=(300,), daemon=True).start()")
    ns, pids = session_processes(sandbox)
    assert pids
    sandbox.close()
    deadline = time.monotonic() + 30  # a poll for the kernel to reap them, not a speed limit
    while pids_in(ns, pids[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pids_in(ns, pids[0])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(SandboxError):
        sandbox.run("1")
    sandbox.close()  # idempotent


def test_close_during_a_run_ends_the_run() -> None:
    sandbox = make(timeout=30)
    closing = threading.Event()

    def close() -> None:
        closing.set()
        sandbox.close()

    threading.Timer(0.5, close).start()
    result = sandbox.run("import time\ntime.sleep(60)")
    assert closing.is_set() and result.killed and result.kill_reason == "closed", result  # the close ended it ...
    assert result.duration < sandbox.timeout  # ... not the 30 s timeout (nor the 60 s sleep)


def test_session_outlives_the_thread_that_started_it() -> None:
    box: list[LocalSandbox] = []
    thread = threading.Thread(target=lambda: box.append(make()))
    thread.start()
    thread.join()
    with box[0] as sandbox:
        sandbox.run("x = 1")
        thread = threading.Thread(target=sandbox.run, args=("x = 2",))  # a restart would come from here
        thread.start()
        thread.join()
        time.sleep(0.2)
        assert sandbox.run("x").value == "2" and sandbox.restarts == 0


def test_runs_from_many_threads_are_serialised(sb: LocalSandbox) -> None:
    sb.run("n = 0")

    def bump() -> None:
        for _ in range(10):
            sb.run("n += 1")

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sb.run("n").value == "40"


def test_protocol_settings_and_open_sandbox() -> None:
    settings = load_settings(exec_timeout=2.5, exec_memory_mb=128, exec_output_chars=300)
    with LocalSandbox.from_settings(settings) as sandbox:
        assert isinstance(sandbox, CodeExecutor)
        assert (sandbox.timeout, sandbox.memory_mb, sandbox.output_chars) == (2.5, 128, 300)
        assert sandbox.cpu_seconds == 4
        expected = {"bwrap"}  # "auto" is bwrap or an error (tests/tools/test_isolation.py), never weaker
        assert sandbox.isolation_in_use in expected
        assert isinstance(sandbox.run("1"), ExecResult)
    with open_sandbox(load_settings(sandbox="local")) as sandbox:
        assert isinstance(sandbox, LocalSandbox) and sandbox.run("6 * 7").value == "42"


def test_unknown_isolation_mode() -> None:
    with pytest.raises(ConfigError):
        LocalSandbox(isolation="docker")  # type: ignore[arg-type]


def test_sigkill_without_an_oom_kill_is_a_crash_not_memory() -> None:
    # the session's cgroup says whether the memory limit killed it: killing its own processes is a crash
    with make(timeout=10) as sandbox:
        result = sandbox.run("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(os.getpid(), 9)")
        assert result.killed and result.kill_reason == "crash", result
        assert sandbox.run("1 + 1").value == "2"  # a fresh session
