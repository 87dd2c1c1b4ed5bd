"""SubprocessExecutor: results, limits and isolation of model-written code."""

from __future__ import annotations

import json
import os
import resource
import socket
import time
import uuid
from pathlib import Path

import pytest

from ponder.core.errors import ConfigError, SandboxError
from ponder.core.settings import PACKAGE_DIR, load_settings
from ponder.tools._exec_worker import _json, _pack, _split_frame, _unpack
from ponder.tools.executor import CodeExecutor
from ponder.tools.subprocess_executor import SubprocessExecutor

MODES = ["bwrap", "unshare", "none"]
ISOLATING = ["bwrap", "unshare"]  # the modes with a pid and a network namespace


def make(isolation: str = "auto", **kwargs) -> SubprocessExecutor:
    try:
        return SubprocessExecutor(isolation=isolation, **kwargs)
    except SandboxError as exc:
        pytest.skip(f"isolation {isolation} unavailable here: {exc}")


@pytest.fixture(scope="module")
def ex() -> SubprocessExecutor:
    with SubprocessExecutor(timeout=5) as executor:
        yield executor


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


def processes_with(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            pass
    return found


# -- results -----------------------------------------------------------------------------------------


def test_success_prints_and_returns_last_expression(mode: str) -> None:
    executor = make(mode)
    result = executor.run("def solution():\n    print('thinking')\n    return 42\n\nsolution()")
    assert result.ok, result
    assert result.value == "42"
    assert result.stdout == "thinking\n"
    assert result.stderr == ""
    assert result.duration > 0
    assert executor.isolation_in_use == mode


def test_value_semantics(ex: SubprocessExecutor) -> None:
    assert ex.run("x = 5").value is None
    assert ex.run("print('only printed')").value is None
    assert ex.run("None").value is None
    assert ex.run("'a' + 'b'").value == "'ab'"
    assert ex.run("if __name__ == '__main__':\n    answer = 7\nanswer").value == "7"
    out = ex.run('print(\'{"value": "forged"}\')\n"real"')
    assert out.stdout == '{"value": "forged"}\n' and out.value == "'real'"
    assert ex.run("print('héllo 😀')").stdout == "héllo 😀\n"


def test_exception_has_short_traceback_of_model_code(ex: SubprocessExecutor) -> None:
    result = ex.run("def f(x):\n    return 10 / x\n\nf(0)")
    assert not result.ok and not result.killed
    assert result.error_type == "ZeroDivisionError"
    assert result.error_message == "division by zero"
    assert 'File "<solution>", line 2, in f' in result.traceback
    assert "return 10 / x" in result.traceback
    assert "_exec_worker" not in result.traceback and "<string>" not in result.traceback
    assert "ZeroDivisionError" in result.summary()


def test_deep_recursion_traceback_is_short(ex: SubprocessExecutor) -> None:
    result = ex.run("def f(n):\n    return f(n + 1)\nf(0)")
    assert result.error_type == "RecursionError"
    assert result.traceback.count("<solution>") <= 6


def test_syntax_error(ex: SubprocessExecutor) -> None:
    result = ex.run("def solution(:\n    return 1\n")
    assert result.error_type == "SyntaxError"
    assert "<solution>" in result.traceback and "line 1" in result.traceback


def test_system_exit(ex: SubprocessExecutor) -> None:
    assert ex.run("import sys\nprint('bye')\nsys.exit(0)").ok
    failed = ex.run("import sys\nsys.exit(3)")
    assert failed.error_type == "SystemExit" and failed.error_message == "3"
    hard = ex.run("import os\nos._exit(4)")
    assert hard.error_type == "SystemExit" and "status 4" in hard.error_message


def test_crash_is_reported(mode: str) -> None:
    result = make(mode).run("import ctypes\nctypes.string_at(0)")
    assert result.killed and result.kill_reason == "crash"


def test_long_value_is_truncated() -> None:
    result = make(output_chars=200).run("'x' * 10000")
    assert result.truncated and len(result.value) < 250


def test_private_frames_round_trip_and_reject_anything_else() -> None:
    result = {"value": "'é 😀 \udc80'", "error_type": "E", "error_message": "m\n", "traceback": "", "cell": "3",
              "value_truncated": True}
    frame = _pack(result)
    body = _split_frame(bytearray(frame), 1 << 20)
    assert _unpack(body) == result and _unpack(b"") == {}
    for bad in (b"nonce 1\nx", b"value 1\nxvalue 1\ny", b"value_truncated 1\n2", b"value 5\nx",
                b"value 1\n\xff", b"value x\n", b"value 1\nxy", b"value -1\n", b"isolation 5\nbwrap"):
        assert _unpack(bad) is None, bad
    assert _split_frame(bytearray(b"9" * 30), 1 << 20) is False  # no length line
    assert _split_frame(bytearray(b"100\n" + b"x" * 10), 50) is False  # over the cap
    assert _split_frame(bytearray(b"5\nab"), 50) is None  # not complete yet


def test_forked_child_does_not_report(ex: SubprocessExecutor) -> None:
    result = ex.run("import os\npid = os.fork()\n'child' if pid == 0 else 'parent'")
    assert result.value == "'parent'", result


def test_worker_json_encoder_round_trips() -> None:
    data = {"a": 'q"b\\s\n\t\x00\x1f é 😀 \u2028 \udc80 \\udc80', "b": True, "c": False, "d": None}
    assert json.loads(_json(data)) == data


# -- limits ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_timeout_kills_busy_loop(mode: str) -> None:
    executor = make(mode, timeout=1)
    result = executor.run("while True:\n    pass")
    assert result.killed and result.kill_reason == "timeout"
    assert result.duration >= 1  # killed at the deadline, not before
    assert "timeout" in result.summary()


@pytest.mark.parametrize(
    "code",
    [
        "import time\ntime.sleep(10**6)",
        "import threading\ndef spin():\n    while True:\n        pass\n"
        "threading.Thread(target=spin).start()\n1",
    ],
    ids=["sleep", "thread-hog"],
)
@pytest.mark.slow
def test_wall_timeout(code: str) -> None:
    result = make(timeout=1.5).run(code)
    # one spinning thread uses at most 1 CPU second per second: the 3 s CPU limit cannot come first
    assert result.killed and result.kill_reason == "timeout" and result.duration >= 1.5, result


@pytest.mark.slow
def test_cpu_limit() -> None:
    result = make(timeout=20, cpu_seconds=1).run("x = 0\nwhile True:\n    x += 1")
    assert result.killed and result.kill_reason == "cpu"


@pytest.mark.parametrize("code", ["x = bytearray(2 * 256 * 2**20)", "x = 'x' * 10**10"])
def test_memory_bomb(code: str) -> None:
    result = make(memory_mb=256).run(code)
    assert result.error_type == "MemoryError" and not result.killed, result  # RLIMIT_AS refuses the allocation


def test_output_flood_is_bounded() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = make(timeout=5, output_chars=1000).run("while True:\n    print('x' * 1000)")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB
    assert result.truncated
    assert len(result.stdout) < 1100
    assert result.killed and result.kill_reason == "output", result  # the file-size limit, long before 5 s


def test_big_file_write_is_bounded(ex: SubprocessExecutor) -> None:
    result = ex.run("with open('big.bin', 'wb') as fh:\n    fh.write(b'x' * (8 * 2**20))")
    assert result.error_type == "OSError" and "too large" in result.error_message.lower()


def test_fork_attempts_return(mode: str) -> None:
    code = ("import os\nn = 0\nfor _ in range(200):\n    if os.fork() == 0:\n        os._exit(0)\n"
            "    os.wait()\n    n += 1\nn")
    result = make(mode, timeout=10).run(code)
    assert result.ok and result.value == "200", result  # the process limit counts live processes, not forks


def test_process_count_is_limited_under_bwrap() -> None:
    code = ("import os, time\nn = 0\nfor _ in range(500):\n    if os.fork() == 0:\n        time.sleep(60)\n"
            "        os._exit(0)\n    n += 1\nn")
    result = make("bwrap", timeout=10).run(code)
    assert result.error_type == "BlockingIOError", result


@pytest.mark.slow
@pytest.mark.parametrize("mode", ISOLATING)  # without a pid namespace, setsid() escapes the kill
def test_no_process_survives_the_run(mode: str) -> None:
    marker = uuid.uuid4().hex
    code = (f"import os, subprocess, sys, time\n"
            f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', '{marker}'],"
            f" start_new_session=True)\n"
            f"if os.fork() == 0:\n    os.setsid()\n    os.execv(sys.executable, [sys.executable, '-c',"
            f" 'import time; time.sleep(300)', '{marker}'])\n"
            f"time.sleep(300)")
    result = make(mode, timeout=2).run(code)
    assert result.killed and result.kill_reason == "timeout"
    deadline = time.monotonic() + 30  # a poll for the kernel to reap them, not a speed limit
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    leftovers = processes_with(marker)
    for pid in leftovers:  # clean up before failing
        os.kill(pid, 9)
    assert not leftovers


# -- isolation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ISOLATING)  # 'none' does not isolate the network
def test_network_is_unreachable(mode: str) -> None:
    executor = make(mode)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = executor.run(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)")
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert result.error_type is not None, result
    assert not result.killed


def test_environment_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-test-key")
    result = make().run("import os\nsorted(os.environ), os.environ['HOME'] == os.getcwd()")
    assert "OPENAI_API_KEY" not in result.value and "PONDER" not in result.value
    assert result.value.endswith("True)")


def test_project_and_home_are_hidden_under_bwrap() -> None:
    executor = make("bwrap")
    secret = PACKAGE_DIR / "pyproject.toml"
    assert secret.is_file()
    result = executor.run(f"open({str(secret)!r}).read()")
    assert result.error_type == "FileNotFoundError", result
    home = executor.run("import os\nos.listdir('/root')")
    assert len(eval(home.value)) <= 1  # noqa: S307 - at most the dir holding the interpreter, bound back
    for target in ("/etc/ponder-sandbox-test", "/ponder-sandbox-test", str(PACKAGE_DIR / "sandbox-test")):
        blocked = executor.run(f"open({target!r}, 'w').write('x')")
        assert blocked.error_type in ("PermissionError", "OSError", "FileNotFoundError"), blocked
        assert not Path(target).exists()


def test_writes_stay_in_the_temp_dir_which_is_removed(mode: str) -> None:
    result = make(mode).run(
        "import os\nwith open('notes.txt', 'w') as fh:\n    fh.write('hi')\n"
        "os.getcwd(), open('notes.txt').read(), os.path.abspath('notes.txt')"
    )
    cwd, content, path = eval(result.value)  # noqa: S307 - our own repr of a tuple of strings
    assert content == "hi"
    assert not Path(cwd).is_relative_to(PACKAGE_DIR) and Path(path).parent == Path(cwd)
    assert not Path(cwd).exists()


# -- lifecycle ---------------------------------------------------------------------------------------


def test_protocol_context_manager_and_close() -> None:
    with make() as executor:
        assert isinstance(executor, CodeExecutor)
        assert executor.run("1 + 1").value == "2"
    with pytest.raises(SandboxError):
        executor.run("1")


def test_from_settings() -> None:
    settings = load_settings(exec_timeout=2.5, exec_memory_mb=128, exec_output_chars=300)
    executor = SubprocessExecutor.from_settings(settings)
    assert (executor.timeout, executor.memory_mb, executor.output_chars) == (2.5, 128, 300)
    assert executor.cpu_seconds == 4
    expected = {"bwrap"}  # "auto" is bwrap or an error (tests/tools/test_isolation.py), never weaker
    assert executor.isolation_in_use in expected


def test_unknown_isolation_mode() -> None:
    with pytest.raises(ConfigError):
        SubprocessExecutor(isolation="docker")  # type: ignore[arg-type]


def test_close_during_a_run_reports_closed() -> None:
    import threading

    executor = make(timeout=30)
    closing = threading.Event()

    def close() -> None:
        closing.set()
        executor.close()

    threading.Timer(0.5, close).start()
    result = executor.run("import time\ntime.sleep(60)")
    assert closing.is_set() and result.killed and result.kill_reason == "closed", result
    assert result.duration < executor.timeout


def test_sigkill_without_an_oom_kill_is_a_crash_not_memory() -> None:
    # under a cgroup the kernel says whether it was the memory limit: a SIGKILL the code sent itself is not
    with make(timeout=10) as executor:
        result = executor.run("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    assert result.killed and result.kill_reason == "crash", result
