"""Attacks on the choice of isolation: without a working bubblewrap, model code must not run at all.

``auto`` means bubblewrap or nothing: with ``bwrap`` missing from ``PATH``, not executable, failing to start
(as in many containers) or starting without isolating anything, constructing a sandbox raises one clear line
that says how to install bubblewrap, and the model code, which would leave a marker file on the host, never
runs. ``ponder sandbox exec`` exits nonzero with that line and no traceback. The weaker modes, asked for by
name, are warned every session and never run code as uid 0 (which could write the checkout or list /root).

The isolation probe is cached per process, so every attack runs in a fresh host process (``run_host``) with
its own ``PATH``: a directory of links to every system tool but ``bwrap``, behind a fake ``bwrap`` if any.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ponder.core.settings import PACKAGE_DIR

from .conftest import host_is_healthy, run_host

pytestmark = pytest.mark.security

#: The host side, run in a fresh process: open ``spec["sessions"]`` sandboxes, run the code in each, report.
HOST = r'''
import json, logging, sys
spec = json.loads(sys.argv[1])
warnings = []

class Catch(logging.Handler):
    def emit(self, record):
        if record.levelno >= logging.WARNING:
            warnings.append(record.getMessage())

logging.getLogger().addHandler(Catch())
from ponder.core.errors import PonderError
from ponder.tools.sandbox.local import LocalSandbox

out = {"runs": [], "errors": [], "modes": []}
for _ in range(spec["sessions"]):
    try:
        box = LocalSandbox(timeout=5, memory_mb=256, isolation=spec["isolation"])
    except PonderError as exc:
        out["errors"].append(str(exc))
        continue
    try:
        out["modes"].append(box.isolation_in_use)
        out["runs"].append(box.run(spec["code"]).model_dump(mode="json"))
    finally:
        box.close()
out["warnings"] = warnings
print(json.dumps(out))
'''

#: What model code would do on the host: leave a marker, write the checkout, list /root, report its uid.
ATTACK = (
    "import os\nout = {'uid': (os.getuid(), os.geteuid())}\n"
    "for name, path in (('marker', MARKER), ('checkout', CHECKOUT)):\n"
    "    try:\n        open(path, 'w').write('the sandbox was here')\n        out[name] = 'written'\n"
    "    except OSError as exc:\n        out[name] = type(exc).__name__\n"
    "try:\n    out['root'] = os.listdir('/root')\nexcept OSError as exc:\n    out['root'] = type(exc).__name__\n"
    "out\n")

#: Fakes of ``bwrap`` (run by the host's Python): each logs its call to ``$PONDER_SEC_FAKE_LOG`` first.
FAKES = {
    "fails": ("import sys\nsys.stderr.write('bwrap: No permissions to creating new namespace, likely because the "
              "kernel does not allow non-privileged user namespaces\\n')\nsys.exit(1)\n"),
    "no-isolation": ("import os, sys\nargs = sys.argv[1:]\n"  # drop bwrap's options, run the command as it is
                     "while args and args[0].startswith('--'):\n"
                     "    args = args[2:] if args[0] == '--args' else args[1:]\n"
                     "if os.path.basename(args[0]).startswith('python') and PYTHON:\n"
                     "    args[0] = PYTHON\n"
                     "os.execvp(args[0], args)\n"),
    "host-root-visible": (  # the real bwrap with the namespaces and a private /tmp, but the host's / bound in
        "import os, sys\nargs = sys.argv[1:]\n"
        "while args and args[0].startswith('--'):\n"
        "    args = args[2:] if args[0] == '--args' else args[1:]\n"
        "if os.path.basename(args[0]).startswith('python') and PYTHON:\n"
        "    args[0] = PYTHON\n"
        "os.execv('/usr/bin/bwrap', ['bwrap', '--unshare-net', '--unshare-pid', '--unshare-ipc', '--unshare-uts',"
        " '--unshare-cgroup-try', '--die-with-parent', '--bind', '/', '/', '--proc', '/proc', '--dev', '/dev',"
        " '--tmpfs', '/tmp', '--', *args])\n"),
    "hostile-error": ("import sys\nsys.stderr.write('bwrap: setting up uid map: Permission denied\\n' * 50 + "
                      "'\\x1b]52;c;cHduZWQ=\\x07\\x1b[2J\\x1b[1A\\rrm -rf ~\\n' + 'x' * 20000)\nsys.exit(1)\n"),
}


@pytest.fixture(scope="module")
def system_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A directory of links to every tool of the system's ``PATH`` except ``bwrap``: a machine without it."""
    links = tmp_path_factory.mktemp("no-bwrap-bin")
    for folder in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            if name != "bwrap" and not (links / name).exists():
                (links / name).symlink_to(os.path.join(folder, name))
    assert shutil.which("bwrap", path=str(links)) is None and shutil.which("sh", path=str(links))
    return str(links)


@pytest.fixture
def marker() -> Iterator[Path]:
    """A host path any uid could create (a ``1777`` directory in the host's ``/var/tmp``); removed afterwards."""
    folder = Path(f"/var/tmp/ponder-sec-{uuid.uuid4().hex}")
    folder.mkdir()
    folder.chmod(0o1777)
    try:
        yield folder / "marker"
    finally:
        shutil.rmtree(folder)


def fake_bwrap(tmp_path: Path, kind: str) -> tuple[str, Path]:
    """A directory holding a fake ``bwrap`` of ``kind`` and the log it appends its calls to."""
    folder, log = tmp_path / "fake-bin", tmp_path / "fake.log"
    folder.mkdir()
    fake = folder / "bwrap"
    if kind == "not-executable":
        fake.write_text("#!/bin/sh\nexit 0\n")
        fake.chmod(0o644)
        return str(folder), log
    fake.write_text(f"#!{sys.executable}\nimport os\nwith open({str(log)!r}, 'a') as fh:\n"
                    f"    fh.write(' '.join(os.sys.argv) + '\\n')\nPYTHON = {shared_python()!r}\n" + FAKES[kind])
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(folder), log


def shared_python() -> str | None:
    """A Python of our version that every uid can run, if the machine has one (``None`` otherwise).

    Here the sandbox's interpreter may live under ``/root`` (pyenv), which only bwrap's own mounts make
    usable by the sandbox's uid; the fake ``bwrap`` that isolates nothing runs this one instead, as any
    machine with a system-wide Python would, so that the attack does not fail by that accident.
    """
    name = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for folder in ("/usr/bin", "/usr/local/bin"):
        path = Path(folder) / name
        if path.is_file() and all(p.stat().st_mode & 0o005 == 0o005 for p in (path, *path.resolve().parents)):
            return str(path)
    return None


def host_env(path: str) -> dict[str, str]:
    """The test's environment with ``PATH`` replaced and no user ``ponder.toml``."""
    return {**os.environ, "PATH": path, "PONDER_CONFIG": "/nonexistent/ponder.toml"}


def attack_code(marker: Path, checkout: Path) -> str:
    return ATTACK.replace("MARKER", repr(str(marker))).replace("CHECKOUT", repr(str(checkout)))


def run_sandboxes(path: str, marker: Path, checkout: Path, isolation: str = "auto", sessions: int = 1) -> dict:
    spec = {"isolation": isolation, "sessions": sessions,
            "code": attack_code(marker, checkout)}
    proc = run_host(HOST, json.dumps(spec), env=host_env(path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_one_clear_line(message: str) -> None:
    """One printable line, not a wall of text, that says how to get bubblewrap."""
    assert "\n" not in message.strip() and message.isprintable(), repr(message)
    assert len(message) < 600, message
    assert "bubblewrap" in message and "install" in message, message


def assert_refused(report: dict, marker: Path, checkout: Path) -> None:
    """The sandbox was refused (one clear line) and no model code ran on the host."""
    assert not report["runs"] and report["modes"] == [], report
    assert len(report["errors"]) == 1, report
    assert_one_clear_line(report["errors"][0])
    assert not marker.exists() and not checkout.exists()
    host_is_healthy()


@pytest.fixture
def checkout() -> Iterator[Path]:
    """A path in the checkout that model code must never create."""
    path = PACKAGE_DIR / f".ponder-sec-{uuid.uuid4().hex}"
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def test_auto_without_bwrap(system_path: str, marker: Path, checkout: Path) -> None:
    report = run_sandboxes(system_path, marker, checkout)
    assert_refused(report, marker, checkout)


@pytest.mark.parametrize("kind", ["fails", "not-executable", "hostile-error"])
def test_auto_with_a_bwrap_that_cannot_start(tmp_path: Path, system_path: str, marker: Path, checkout: Path,
                                             kind: str) -> None:
    fake, log = fake_bwrap(tmp_path, kind)
    report = run_sandboxes(f"{fake}:{system_path}", marker, checkout)
    assert_refused(report, marker, checkout)
    if kind != "not-executable":
        assert log.is_file(), "the fake bwrap was never called: the attack did not happen"
        assert "\x1b" not in report["errors"][0] and "rm -rf" not in report["errors"][0], report


@pytest.mark.parametrize("kind", ["no-isolation", "host-root-visible"])
def test_auto_with_a_bwrap_that_does_not_isolate(tmp_path: Path, system_path: str, marker: Path, checkout: Path,
                                                 kind: str) -> None:
    """A ``bwrap`` that runs the command as it is, or with new namespaces and a private ``/tmp`` but the host's
    root bound in (a broken, patched or hijacked install): no model code may run on the host's filesystem."""
    fake, log = fake_bwrap(tmp_path, kind)
    report = run_sandboxes(f"{fake}:{system_path}", marker, checkout)
    assert log.is_file(), "the fake bwrap was never called: the attack did not happen"
    assert not marker.exists(), f"model code ran on the host's filesystem: {report}"
    assert_refused(report, marker, checkout)


@pytest.mark.parametrize("kind", ["missing", "fails"])
def test_ponder_sandbox_exec_without_a_working_bwrap(tmp_path: Path, system_path: str, marker: Path,
                                                     checkout: Path, kind: str) -> None:
    path = system_path if kind == "missing" else f"{fake_bwrap(tmp_path, kind)[0]}:{system_path}"
    ponder = Path(sys.executable).parent / "ponder"
    proc = subprocess.run([str(ponder), "sandbox", "exec", attack_code(marker, checkout)], capture_output=True,
                          text=True, timeout=120, env=host_env(path), cwd="/")
    text = (proc.stdout + proc.stderr).strip()
    assert proc.returncode != 0, text
    assert "Traceback" not in text, text
    assert_one_clear_line(text)
    assert not marker.exists() and not checkout.exists()
    host_is_healthy()


@pytest.mark.parametrize("mode", ["unshare", "none"])
def test_weak_modes_by_name_never_run_as_root(marker: Path, checkout: Path, mode: str) -> None:
    """Asked for by name, a weak mode either refuses (one line) or runs as another uid, warned every session."""
    report = run_sandboxes(os.environ["PATH"], marker, checkout, mode, sessions=2)
    assert not checkout.exists()
    for error in report["errors"]:
        assert "\n" not in error.strip() and mode in error, error
    for run in report["runs"]:
        value = eval(run["value"])  # noqa: S307 - the repr of a dict of str/int/tuple our attack built
        assert 0 not in value["uid"], run
        assert value["checkout"] != "written" and not isinstance(value["root"], list), run
    if report["runs"]:
        assert report["modes"] == [mode] * len(report["runs"]), report
        assert sum(mode in w for w in report["warnings"]) >= len(report["runs"]), report["warnings"]
    assert len(report["runs"]) + len(report["errors"]) == 2, report
    host_is_healthy()
