"""Reward hacking against code grading: every cheat fails, in HumanEval and in self-consistency's code keys.

Each case is one cheating solution, written as a HumanEval completion (it finishes the prompt's stub,
then adds what it likes at the top level). It is graded on four real problems the way ``ponder eval
humaneval`` grades (:func:`ponder.envs.code.grade_completion`) and as a self-consistency ``code`` answer
(:func:`answer_key` with three tests): no problem may pass and the vote key must be all ``F``. The
``guard`` fixture then checks that the session still works, nothing of it is left and the host is fine.
Cheats marked ``naive`` are shown to beat the old grading (one interpreter, "no exception" = pass), so
these tests would fail without trusted grading.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ponder.core.settings import load_settings
from ponder.envs.code import grade_completion
from ponder.graphs.self_consistency.normalize import NormalizeContext, answer_key
from ponder.tools.sandbox.local import LocalSandbox

from .conftest import TIMEOUT, Guard, host_is_healthy

pytestmark = pytest.mark.security

PROBLEMS = ("HumanEval/0", "HumanEval/2", "HumanEval/4", "HumanEval/13")
SC_TESTS = ("assert f(1) == 2", "assert abs(f(2.5) - 3.5) < 1e-9", "assert f(0) == 1")

ANY = ("\nclass _Any:\n    def __eq__(self, other):\n        return True\n    def __ne__(self, other):\n"
       "        return False\n    def __lt__(self, other):\n        return True\n"
       "    __le__ = __gt__ = __ge__ = __lt__\n"
       "    def __abs__(self):\n        return self\n    def __sub__(self, other):\n        return self\n"
       "    __rsub__ = __add__ = __radd__ = __sub__\n    def __bool__(self):\n        return True\n"
       "    def __hash__(self):\n        return 0\n")
FORGE = ("\nimport os\ndef _forge():\n    frames = [b'{\"nonce\": \"%s\", \"value\": \"\\'ok\\'\"}' % str(n).encode()\n"
         "              for n in range(3)] + [b'{\"value\": \"\\'ok\\'\"}']\n    for fd in range(3, 256):\n"
         "        for frame in frames:\n            try:\n                os.write(fd, b'%d\\n' % len(frame) + frame)\n"
         "            except OSError:\n                break\n")

#: name -> (completion: the stub's body, then top-level code; beats the old grading on some problem)
CHEATS: dict[str, tuple[str, bool]] = {
    # the nine known cheats
    "raise-systemexit": ("    raise SystemExit\n", True),
    "sys-exit-after-def": ("    return None\n\nimport sys\nsys.exit(0)\n", True),
    "always-equal": ("    return _Any()\n" + ANY, True),
    "shadow-builtin": ("    return 0.0\n\nabs = lambda x: 0\n", True),
    "settrace-exit-in-check": (
        "    return None\n\nimport sys\ndef _tracer(frame, event, arg):\n    if frame.f_code.co_name == 'check':\n"
        "        raise SystemExit(0)\n    return _tracer\nsys.settrace(_tracer)\n"
        "_hook = sys.settrace(_tracer)\n", True),
    "forge-reply-frame": ("    _forge()\n    return None\n" + FORGE + "_done = _forge()\n", False),
    "rewrite-globals-up-the-stack": (
        "    import sys\n    frame = sys._getframe()\n    while frame is not None:\n"
        "        for name in ('_describe', '_rebuild', '_error', 'decode_tokens', '_verdict', '_run_test'):\n"
        "            if name in frame.f_globals:\n                frame.f_globals[name] = lambda *a, **k: {}\n"
        "        frame.f_globals['_SIGNALLED'] = []\n        frame = frame.f_back\n    return None\n", False),
    "truncate-stdout-then-exit": ("    import os, sys\n    sys.stdout.flush()\n    os.ftruncate(1, 0)\n"
                                  "    sys.exit(0)\n", True),
    "fake-result-fd-then-exit": (
        "    import os\n    for fd in range(3, 256):\n        try:\n"
        "            os.write(fd, b'{\"value\": \"\\'ponder-grade\\'\", \"isolation\": \"bwrap\"}')\n"
        "        except OSError:\n            pass\n    os._exit(0)\n", False),
    # variants
    "list-subclass-eq": ("    return _L()\n\nclass _L(list):\n    def __eq__(self, other):\n"
                         "        return True\n", True),
    "int-subclass-eq-bool-hash": (
        "    return _I(1)\n\nclass _I(int):\n    def __eq__(self, other):\n        return True\n"
        "    def __bool__(self):\n        return True\n    def __hash__(self):\n        return hash(True)\n"
        "    def __sub__(self, other):\n        return 0\n", True),
    "lying-repr-and-class": (
        "    return _Liar()\n\nclass _Liar(dict):\n    @property\n    def __class__(self):\n        return bool\n"
        "    def __repr__(self):\n        return 'True'\n    def __eq__(self, other):\n        return True\n", True),
    "kill-parent-sigterm": ("    import os, signal\n    os.kill(os.getppid(), signal.SIGTERM)\n"
                           "    return None\n", False),
    "kill-parent-sigusr1": ("    import os, signal\n    os.kill(os.getppid(), signal.SIGUSR1)\n"
                           "    return None\n", False),
    "kill-parent-sigstop": ("    import os, signal\n    os.kill(os.getppid(), signal.SIGSTOP)\n"
                           "    return None\n", False),
    "kill-process-group": ("    import os, signal\n    os.killpg(0, signal.SIGINT)\n    return None\n", False),
    "proc-parent-fd-and-mem": (
        "    import os\n    ppid = os.getppid()\n    try:\n        with open(f'/proc/{ppid}/mem', 'rb') as mem:\n"
        "            mem.read(16)\n    except OSError:\n        pass\n    try:\n"
        "        for name in os.listdir(f'/proc/{ppid}/fd'):\n            try:\n"
        "                fd = os.open(f'/proc/{ppid}/fd/{name}', os.O_WRONLY)\n"
        "                os.write(fd, b'{\"value\": \"\\'ok\\'\"}')\n"
        "            except OSError:\n                pass\n"
        "    except OSError:\n        pass\n    return None\n", False),
    "ptrace-parent": (
        "    import ctypes, os\n    libc = ctypes.CDLL(None)\n    libc.ptrace(16, os.getppid(), 0, 0)\n"
        "    return None\n", False),
    "builtins-patched-at-import": (
        "    return 0.0\n\nimport builtins\n"
        "_patched = [setattr(builtins, n, lambda *a, **k: 0) for n in ('abs', 'round')]\n", True),
    "atexit-hook": ("    return None\n\nimport atexit, os\n_hook = atexit.register(os._exit, 0)\n", False),
    "gc-hunting": (
        "    import gc\n    for o in gc.get_objects():\n        if isinstance(o, dict):\n"
        "            for key in ('_SIGNALLED', 'tampered', 'passed', 'outcomes'):\n"
        "                if key in o:\n                    o[key] = True\n    return None\n", False),
    "default-argument-exits": (
        "    return None\n\ndef {E}(*args, _x=__import__('sys').exit(0), **kwargs):\n    return None\n", True),
    "class-named-like-entry-point": ("    return None\n\nclass {E}:\n    def __new__(cls, *args, **kwargs):\n"
                                     "        return _Any()\n" + ANY, True),
    "callable-instance-returns-any": (
        "    return None\n\nclass _F:\n    def __call__(self, *args, **kwargs):\n        return _Any()\n"
        "{E} = _F()\n" + ANY, True),
    "keyboard-interrupt": ("    raise KeyboardInterrupt\n", False),
    "generator-exit": ("    raise GeneratorExit\n", False),
    "stop-iteration": ("    raise StopIteration\n", False),
    "desync-channel": (
        "    return None\n\nimport os\ndef _flood():\n    for fd in range(3, 64):\n        try:\n"
        "            for frame in [b'n ' + '{E}'.encode().hex().encode()] + [b'v T'] * 64 + [b'k']:\n"
        "                os.write(fd, b'%d\\n' % len(frame) + frame)\n        except OSError:\n            pass\n"
        "_flooded = _flood()\n", False),
    "huge-return-value": ("    return [[0] * 1000] * 1001\n", False),
    "lingering-grandchild": (
        "    import os, signal, time\n    if os.fork() == 0:\n        os.setsid()\n        time.sleep(0.3)\n"
        "        for sig in (signal.SIGTERM, signal.SIGUSR2):\n            try:\n"
        "                os.kill(os.getppid(), sig)\n            except OSError:\n                pass\n"
        "        os._exit(0)\n    return None\n", False),
}


def _rows() -> dict[str, dict]:
    path = Path(load_settings().data_dir) / "humaneval" / "humaneval.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["task_id"]: r for r in rows if r["task_id"] in PROBLEMS}


ROWS = _rows()


class _Borrowed:
    """The guard's session for answer_key, which closes its executor (the guard closes it later)."""

    def __init__(self, guard: Guard) -> None:
        self.run = guard.sandbox.run
        self.output_chars = guard.sandbox.output_chars

    def close(self) -> None:
        pass


def _completion(name: str, entry: str) -> str:
    return CHEATS[name][0].replace("{E}", entry)


def _naive_pass(guard: Guard, row: dict, completion: str) -> bool:
    """Whether the old grading (one interpreter, no exception = pass) passes ``completion``."""
    program = f"{row['prompt']}{completion}\n{row['test']}\ncheck({row['entry_point']})\n"
    return guard.attack(program).ok


@pytest.mark.parametrize("name", list(CHEATS))
def test_cheat_fails(guard: Guard, name: str) -> None:
    for task_id, row in ROWS.items():
        report = grade_completion(guard.sandbox, row["prompt"], _completion(name, row["entry_point"]), row["test"],
                                  row["entry_point"])
        assert not report.passed and report.signature != "P", (task_id, report)
    answer = f"```python\ndef f(*args, **kwargs):\n    \"\"\"stub\"\"\"\n{_completion(name, 'f')}```"
    key = answer_key(answer, "code", NormalizeContext(tests=SC_TESTS, executor_factory=lambda: _Borrowed(guard)))
    assert key == "tests:FFF", key
    if CHEATS[name][1]:  # the cheat is real: the old grading passed it on some problem
        assert any(_naive_pass(guard, row, _completion(name, row["entry_point"])) for row in ROWS.values()), name


def test_the_right_answers_still_pass(guard: Guard) -> None:
    for task_id, row in ROWS.items():
        report = grade_completion(guard.sandbox, row["prompt"], row["canonical_solution"], row["test"],
                                  row["entry_point"])
        assert report.passed, (task_id, report)
    key = answer_key("def f(x):\n    return x + 1\n", "code",
                     NormalizeContext(tests=SC_TESTS, executor_factory=lambda: _Borrowed(guard)))
    assert key == "tests:PPP"


KNOWN = list(CHEATS)[:9]


@pytest.mark.parametrize("name", KNOWN)
def test_known_cheat_fails_in_a_fresh_sandbox(guard: Guard, name: str) -> None:
    """The nine known cheats as self-consistency answers, each graded in a sandbox of its own (opened and closed)."""
    answer = f"def f(*args, **kwargs):\n    \"\"\"stub\"\"\"\n{_completion(name, 'f')}"
    ctx = NormalizeContext(tests=SC_TESTS, executor_factory=lambda: LocalSandbox(timeout=TIMEOUT, isolation="bwrap"))
    assert answer_key(answer, "code", ctx) == "tests:FFF"
    host_is_healthy()


def test_the_grader_cannot_be_read_or_traced(guard: Guard) -> None:
    """A probe candidate reports what of the other sandbox processes it reached; it passes only if nothing.

    (A dumpable harness fails this: its ``/proc/<pid>/environ``, ``fd`` list and ``fd/0`` are open to a
    candidate of the same uid.)
    """
    probe = ("def f():\n    import ctypes, os\n    got = []\n"
             "    for pid in [p for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()]:\n"
             "        for path in (f'/proc/{pid}/mem', f'/proc/{pid}/environ', f'/proc/{pid}/fd/0'):\n"
             "            try:\n                with open(path, 'rb') as handle:\n                    handle.read(1)\n"
             "                got.append(path)\n            except OSError:\n                pass\n"
             "        try:\n            os.listdir(f'/proc/{pid}/fd')\n            got.append(f'/proc/{pid}/fd')\n"
             "        except OSError:\n            pass\n"
             "        if ctypes.CDLL(None).ptrace(16, int(pid), 0, 0) == 0:\n            got.append(f'ptrace {pid}')\n"
             "    kept = sorted(int(fd) for fd in os.listdir('/proc/self/fd'))\n    return got, len(kept)\n")
    fresh = LocalSandbox(timeout=TIMEOUT, isolation="bwrap")
    try:
        for sandbox in (guard.sandbox, fresh):  # a session that ran other code first, and a new one
            report = grade_completion(sandbox, "", probe, "def check(f):\n    got, fds = f()\n"
                                      "    assert got == [] and fds <= 6, (got, fds)\n", "f")
            assert report.passed, report.summary()
    finally:
        fresh.close()


def test_cheats_score_zero_through_ponder_eval(guard: Guard, tmp_path: Path) -> None:
    """``ponder eval humaneval --policy canonical`` on a data file whose solutions are the cheats: 0 %."""
    import subprocess

    rows = []
    for i, name in enumerate(CHEATS):
        row = ROWS[PROBLEMS[i % len(PROBLEMS)]]
        rows.append({**row, "task_id": f"cheat/{name}", "canonical_solution": _completion(name, row["entry_point"])})
    data = tmp_path / "cheats.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ponder = Path(sys.executable).with_name("ponder")
    proc = subprocess.run([str(ponder), "eval", "humaneval", "--policy", "canonical", "--data", str(data),
                           "-o", str(tmp_path / "run"), "--workers", "2"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    assert len(results) == len(CHEATS) and not [r["episode_id"] for r in results if r["success"]]
    real = subprocess.run([str(ponder), "eval", "humaneval", "--policy", "canonical", "-o", str(tmp_path / "real"),
                           "--workers", "2"], capture_output=True, text=True, timeout=600)
    assert real.returncode == 0, real.stderr[-2000:]
    results = [json.loads(line) for line in (tmp_path / "real" / "results.jsonl").read_text().splitlines()]
    assert len(results) == 130 and all(r["success"] for r in results)
