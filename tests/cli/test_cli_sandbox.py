"""``ponder sandbox exec``: runs code in an isolated session, prints what happened, exit 0/1/2."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from testkit import CONTROL, EVIL, render

from ponder.cli import main
from ponder.cli.sandbox import print_exec_result
from ponder.core.settings import PACKAGE_DIR
from ponder.tools.executor import ExecResult


@pytest.fixture
def bwrap() -> None:
    """The isolation checks need bubblewrap (``make test`` installs it; a skip fails under the skip policy)."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed: `ponder sandbox exec` isolation cannot be checked")


def test_prints_output_value_and_isolation(capsys, bwrap):
    assert main(["sandbox", "exec", "print('thinking')\n6 * 7"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["thinking", "→ 42"]
    assert lines[2].endswith(" ms · isolation bwrap") and len(lines) == 3


def test_code_is_isolated_from_the_project_and_the_network(capsys, bwrap):
    secret = PACKAGE_DIR / "pyproject.toml"
    code = (f"import os, socket\nseen = os.path.exists({str(secret)!r})\n"
            "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=2)\n    net = 'reached'\n"
            "except OSError as exc:\n    net = type(exc).__name__\nseen, net, 'ponder' in os.environ.get('PATH', '')")
    assert main(["sandbox", "exec", "--json", code]) == 0
    result = json.loads(capsys.readouterr().out)
    seen, net, _ = eval(result["value"])  # noqa: S307 - our own repr of a tuple
    assert seen is False and net != "reached", result
    assert main(["sandbox", "exec", "import ponder"]) == 1  # the host package is not importable
    assert "ModuleNotFoundError: No module named 'ponder'" in capsys.readouterr().out


def test_json_result_and_code_from_stdin(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("x = 20\nprint(x)\nx + 22\n"))
    assert main(["sandbox", "exec", "-", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["value"], result["stdout"], result["killed"], result["error_type"]) == ("42", "20\n", False, None)


def test_an_exception_is_shown_and_exits_1(capsys):
    assert main(["sandbox", "exec", "def f(x):\n    return 1 / x\nf(0)"]) == 1
    out = capsys.readouterr().out
    assert "ZeroDivisionError: division by zero" in out and "line 2, in f" in out


def test_a_crash_is_reported_and_exits_1(capsys):
    assert main(["sandbox", "exec", "import ctypes\nctypes.string_at(0)"]) == 1
    assert "killed: crash" in capsys.readouterr().out


@pytest.mark.slow
def test_a_timeout_is_reported_and_exits_1(capsys):
    assert main(["sandbox", "exec", "--timeout", "1", "--json", "while True:\n    pass"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["killed"] and result["kill_reason"] == "timeout" and result["duration"] >= 1


@pytest.mark.parametrize(("argv", "message"), [
    (["sandbox", "exec"], "Missing argument 'code'. (see 'ponder sandbox exec --help')"),
    (["sandbox", "exec", "1", "--timeout", "lots"], "Invalid value for '--timeout'"),
    (["sandbox", "exec", "1", "--timeout", "0"], "exec_timeout"),
    (["sandbox", "exec", "1", "--sandbox", "docker"], "sandbox"),
    (["sandbox", "exec", "1", "--bogus"], "No such option: --bogus"),
])
def test_bad_arguments_are_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("ponder: error:") and message in err and len(err.splitlines()) == 1, err
    assert captured.out == ""  # nothing ran


def test_console_script(tmp_path):
    exe = Path(sys.executable).parent / "ponder"
    env = {**os.environ, "PONDER_CONFIG": str(tmp_path / "none.toml")}
    out = subprocess.run([str(exe), "sandbox", "exec", "--json", "sum(range(10))"], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["value"] == "45"




def test_exec_result_output_value_and_error_are_inert():
    result = ExecResult(stdout=EVIL, stderr=EVIL, value=EVIL, error_type="ValueError", error_message=EVIL,
                        traceback=EVIL, duration=0.012)
    out = render(lambda c: print_exec_result(c, result, "bwrap"))
    assert not CONTROL.search(out), repr(out)
    assert out.count("[bold red]markup[/]") >= 3 and "fakereal" in out  # markup shown as text, not applied
    assert out.splitlines()[-1] == "12 ms · isolation bwrap"
