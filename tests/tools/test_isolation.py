"""Isolation of the local sandbox: fail-closed mode selection, the worker's set-up, bwrap's view, cgroups.

Mode selection is tested with fake probes; the worker's set-up (fresh uid, fresh session keyring, rlimits,
seccomp) and bwrap's options on real sandboxes of every mode.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from ponder.core.errors import ConfigError, SandboxError
from ponder.core.settings import load_settings
from ponder.tools.sandbox import isolation, open_sandbox, seccomp
from ponder.tools.sandbox.cgroups import CgroupSupport
from ponder.tools.sandbox.isolation import MAX_FILES, SANDBOX_SHM_BYTES, select_isolation
from ponder.tools.sandbox.local import LocalSandbox

MODES = ["bwrap", "unshare", "none"]
_SC = seccomp._bindings()
NR = {name: _SC.resolve_syscall(_SC.system_arch(), name) for name in ("keyctl", "add_key")}
NO_CAPS = "0000000000000000"


@pytest.fixture
def fresh_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which modes work here (they are probed once per process)."""
    monkeypatch.setattr(isolation, "_probed", {})


def _probe(results: dict[str, str | None], calls: list[str]) -> Callable[[str], str | None]:
    def probe(mode: str) -> str | None:
        calls.append(mode)
        return results.get(mode)

    return probe


# -- choosing the mode -------------------------------------------------------------------------


@pytest.mark.usefixtures("fresh_probes")
def test_auto_is_bwrap_and_nothing_weaker() -> None:
    calls: list[str] = []
    assert select_isolation("auto", _probe({}, calls)) == "bwrap"
    assert calls == ["bwrap"]


@pytest.mark.usefixtures("fresh_probes")
def test_auto_fails_closed_when_bwrap_cannot_start() -> None:
    calls: list[str] = []
    reason = "bwrap: setting up uid map: Permission denied\n(more detail)"
    for requested in ("auto", "bwrap"):
        with pytest.raises(SandboxError) as info:
            select_isolation(requested, _probe({"bwrap": reason}, calls))
        text = str(info.value)
        assert "\n" not in text and "setting up uid map: Permission denied" in text
        assert "apt-get install bubblewrap" in text and 'sandbox_isolation = "unshare" or "none"' in text
    assert calls == ["bwrap"]  # probed once, and nothing weaker was tried


@pytest.mark.usefixtures("fresh_probes")
def test_auto_fails_closed_when_bwrap_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolation, "bwrap_executable", lambda: None)
    calls: list[str] = []
    with pytest.raises(SandboxError, match=r"not installed; install bubblewrap \(Debian/Ubuntu: apt-get"):
        select_isolation("auto", _probe({}, calls))
    assert calls == []


@pytest.mark.usefixtures("fresh_probes")
def test_weak_modes_only_by_name_and_warned_every_time(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []
    with caplog.at_level(logging.WARNING, logger=isolation.log.name):
        for _ in range(2):
            assert select_isolation("unshare", _probe({}, calls)) == "unshare"
            assert select_isolation("none", _probe({}, calls)) == "none"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4
    assert sum("filesystem is NOT" in w for w in warnings) == 2 and sum("WITHOUT" in w for w in warnings) == 2
    assert calls == ["unshare"]  # probed once per process; "none" needs no probe


@pytest.mark.usefixtures("fresh_probes")
def test_weak_mode_that_does_not_work_is_an_error() -> None:
    with pytest.raises(SandboxError, match="'unshare' is not available on this machine: no namespaces"):
        select_isolation("unshare", _probe({"unshare": "no namespaces"}, []))


@pytest.mark.usefixtures("fresh_probes")
def test_weak_modes_as_root_need_an_interpreter_a_fresh_uid_can_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(isolation, "weak_interpreter", lambda: None)
    for mode in ("unshare", "none"):
        with pytest.raises(SandboxError, match="unprivileged uid; use bubblewrap instead: install bubblewrap"):
            select_isolation(mode, _probe({}, []))


def test_weak_interpreter_is_our_version_and_usable_by_others() -> None:
    path = isolation.weak_interpreter()
    assert path is not None, "no interpreter a fresh uid can run: weak modes cannot run as root here"
    out = subprocess.run([str(path), "-I", "-S", "-c", "import sys; print(sys.version_info[:2])"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(sys.version_info[:2])
    assert all(os.stat(p).st_mode & 0o001 for p in Path(os.path.realpath(path)).parents)


def test_the_setting_reaches_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PONDER_SANDBOX_ISOLATION", "unshare")
    settings = load_settings()
    assert settings.sandbox_isolation == "unshare"
    with open_sandbox(settings) as session:
        assert session.isolation_in_use == "unshare" and session.run("1").value == "1"
    assert load_settings().sandbox_isolation == "unshare"
    monkeypatch.setenv("PONDER_SANDBOX_ISOLATION", "docker")
    with pytest.raises(ConfigError, match="sandbox_isolation"):
        load_settings()


@pytest.mark.usefixtures("fresh_probes")
def test_sandbox_fails_closed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """bwrap missing, then a bwrap that cannot start (as in many containers): one line, nothing weaker runs."""
    monkeypatch.setattr(isolation, "bwrap_executable", lambda: None)
    with pytest.raises(SandboxError, match="apt-get install bubblewrap") as info:
        LocalSandbox(isolation="auto")
    assert "\n" not in str(info.value)
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create a new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(isolation, "bwrap_executable", lambda: str(fake))
    monkeypatch.setattr(isolation, "_probed", {})
    with pytest.raises(SandboxError, match="No permissions to create a new namespace") as info:
        LocalSandbox(isolation="auto")
    assert "\n" not in str(info.value) and "apt-get install bubblewrap" in str(info.value)


def _cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    empty = tmp_path / "empty-path"
    empty.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-c", "import sys; from ponder.cli import main; sys.exit(main())", *args],
                          env={**os.environ, "PATH": str(empty)}, capture_output=True, text=True, timeout=120)


def test_cli_shows_missing_bwrap_as_one_line(tmp_path: Path) -> None:
    script = tmp_path / "script.jsonl"
    script.write_text(json.dumps("```python\ndef solution():\n    return 6 * 7\n```") + "\n")
    for args in (["sandbox", "exec", "print(1)"],
                 ["run", "--agent", "pal", "what is 6*7", "--model", f"scripted:{script}"]):
        proc = _cli(args, tmp_path)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
        assert len(lines) == 1 and lines[0].startswith("ponder: error: cannot sandbox model code"), proc.stderr
        assert "apt-get install bubblewrap" in lines[0] and "1\n" not in proc.stdout


# -- the worker's set-up, in every mode ----------------------------------------------------------

SETUP_PROBE = f"""
import ctypes, os, resource
libc = ctypes.CDLL(None, use_errno=True)
def err(ret):
    return ctypes.get_errno() if ret == -1 else 0
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
try:
    fds = [os.open("/dev/null", os.O_RDONLY) for _ in range({MAX_FILES} + 10)]
    opened = len(fds)
except OSError as exc:
    opened = exc.errno
dict(uid=os.getuid(), euid=os.geteuid(), seccomp=status["Seccomp"].strip(), nnp=status["NoNewPrivs"].strip(),
     caps=status["CapEff"].strip(), nofile=resource.getrlimit(resource.RLIMIT_NOFILE), opened=opened,
     keyctl=err(libc.syscall({NR["keyctl"]}, 0, -3, 0)), unshare=err(libc.unshare(0x10000000)))
"""


def _run(mode: str, code: str, **kwargs: object):
    executor = LocalSandbox(isolation=mode, timeout=10, **kwargs)
    try:
        return executor.run(code)
    finally:
        executor.close()


@pytest.mark.parametrize("mode", MODES)
def test_worker_setup(mode: str) -> None:
    result = _run(mode, SETUP_PROBE)
    assert result.ok, result.summary(500)
    got = ast.literal_eval(result.value)
    assert got["uid"] != 0 and got["euid"] != 0  # never uid 0, whatever the mode
    assert got["seccomp"] == "2" and got["nnp"] == "1" and got["caps"] == NO_CAPS
    assert got["nofile"] == (MAX_FILES, MAX_FILES) and got["opened"] == 24  # EMFILE
    assert got["keyctl"] == 1 and got["unshare"] == 1  # EPERM


KEYRING_PROBE = """
import ctypes, os, sys
from ponder.tools import _worker_setup
from ponder.tools.sandbox.seccomp import bpf_pipe
libc = ctypes.CDLL(None, use_errno=True)
keyctl, add_key, desc = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].encode()
assert libc.syscall(keyctl, 1, b"ponder-host-login") > 0  # a named session keyring, like pam_keyinit's
key = libc.syscall(add_key, b"user", desc, b"s3cret", 6, -3)
assert key > 0 and libc.syscall(keyctl, 5, key, 0x3F000000) == 0  # possessor only: no uid can see it
if sys.argv[4] == "skip-join":  # the control: without the fresh keyring the key stays possessed
    _worker_setup._join_session_keyring = lambda libc: None
drop = 2_000_000_000 + os.getpid() if os.getuid() == 0 else -1
config = dict(isolation="none", drop_uid=drop, userns="0", cpu=5, **{"as": 1 << 30}, fsize=1 << 20, core=0,
              nproc=64, nofile=256, seccomp_fd=bpf_pipe())
_worker_setup._setup(config)
print(desc.decode() in open("/proc/keys").read())
"""


@pytest.mark.parametrize("variant", ["setup", "skip-join"])
def test_setup_leaves_the_host_session_keyring(variant: str) -> None:
    """After ``_setup`` the worker possesses nothing of the host's session keyring (the control shows it would)."""
    desc = f"ponder-test-{uuid.uuid4().hex}"
    proc = subprocess.run([sys.executable, "-c", KEYRING_PROBE, str(NR["keyctl"]), str(NR["add_key"]), desc,
                           variant], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ("True" if variant == "skip-join" else "False")


class _FakeLibc:
    def __init__(self, err: int) -> None:
        self.err = err

    def syscall(self, *args: object) -> int:
        import ctypes

        ctypes.set_errno(self.err)
        return -1


def test_keyring_join_fails_closed_except_without_keys() -> None:
    from ponder.tools._worker_setup import _join_session_keyring

    _join_session_keyring(_FakeLibc(38))  # ENOSYS: a kernel without keys is fine
    with pytest.raises(SystemExit, match="fresh session keyring"):
        _join_session_keyring(_FakeLibc(13))


@pytest.mark.parametrize("data", [b"", b"\0" * 7, b"\0" * 8 * 5000])
def test_bad_seccomp_filter_ends_the_worker(data: bytes) -> None:
    from ponder.tools._worker_setup import _load_seccomp

    read_end, write_end = os.pipe()
    os.write(write_end, data[:60000])
    os.close(write_end)
    with pytest.raises(SystemExit, match="bad seccomp filter"):
        _load_seccomp(None, read_end)


# -- bwrap's view ------------------------------------------------------------------------------

BWRAP_PROBE = """
import ctypes, os, shutil, subprocess
def read(path):
    try:
        with open(path, "rb") as fh:
            return fh.read(200)
    except OSError as exc:
        return exc.errno
shm, tmp = os.statvfs("/dev/shm"), os.statvfs("/tmp")
unshare = shutil.which("unshare")
nested = subprocess.run([unshare, "-U", "-r", "true"], capture_output=True).returncode if unshare else 1
dict(cmdline1=read("/proc/1/cmdline"), masked={p: read("/proc/" + p) for p in MASKED},
     shm=shm.f_blocks * shm.f_frsize, shm_dev=os.stat("/dev/shm").st_dev != os.stat("/tmp").st_dev,
     nested=nested)
"""


def test_bwrap_hides_host_paths_and_kernel_files() -> None:
    masked = [p for p in ("cmdline", "config.gz", "key-users", "keys", "kallsyms", "modules", "sched_debug",
                          "timer_list", "kcore") if os.path.exists(f"/proc/{p}")]
    result = _run("bwrap", f"MASKED = {masked!r}\n" + BWRAP_PROBE)
    assert result.ok, result.summary(500)
    got = ast.literal_eval(result.value)
    cmdline = got["cmdline1"]
    assert isinstance(cmdline, bytes) and b"bwrap\0--args\0" in cmdline, cmdline[:200]
    assert b"--ro-bind" not in cmdline and b"/tmp/" not in cmdline and b"--tmpfs" not in cmdline
    for path, content in got["masked"].items():
        assert content in (b"", 13), (path, content)  # empty (/dev/null) or EACCES
    assert got["shm"] == SANDBOX_SHM_BYTES and got["shm_dev"]
    assert got["nested"] != 0  # no nested user namespace, root or not


# -- cgroups -----------------------------------------------------------------------------------

MEMFD_FLOOD = """
import os
chunk = b"x" * (1020 << 10)  # each memfd under RLIMIT_FSIZE; RLIMIT_AS counts none of them
fds = []
for _ in range(240):  # 239 MiB at most (under RLIMIT_NOFILE): far above the 128 MiB limit, yet bounded
    fds.append(os.memfd_create("flood"))
    os.write(fds[-1], chunk)
print("not stopped", len(fds))
"""


def test_memfd_flood_is_stopped_and_reported_as_memory(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="ponder.tools"):
        result = _run("bwrap", MEMFD_FLOOD, memory_mb=128)
    assert "not stopped" not in result.stdout
    assert result.killed and result.kill_reason == "memory", result.summary(300)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("sandbox limits:")]
    assert len(lines) == 1 and "memory 128 MiB, pids 64" in lines[0] and "nofile 256" in lines[0], lines


def test_no_cgroup_is_said_in_the_log_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolation, "cgroup_support", lambda: CgroupSupport(None, reason="no cgroup2 here"))
    assert isolation.cgroup_text(None, 128 << 20) == "no cgroup (no cgroup2 here): total memory not bounded"



def test_worker_refuses_a_bwrap_that_did_not_isolate(tmp_path: Path) -> None:
    """A broken or replaced ``bwrap`` that runs the worker as it is: the worker stops before any model code."""
    from ponder.tools._worker_setup import _check_bwrap

    checks = isolation.bwrap_checks()
    assert "/:" in checks["host_dirs"] and "/tmp:" in checks["host_dirs"]
    with pytest.raises(SystemExit, match="the net namespace is the host's"):
        _check_bwrap(checks)  # this test process is the host
    elsewhere = {"host_ns": "net:1,pid:1,mnt:1,ipc:1,uts:1"}
    info = tmp_path.stat()
    _check_bwrap({**elsewhere, "host_dirs": f"{tmp_path}:{info.st_dev}:{info.st_ino + 1}"})  # another folder
    _check_bwrap({**elsewhere, "host_dirs": f"{tmp_path / 'missing'}:{info.st_dev}:{info.st_ino}"})
    with pytest.raises(SystemExit, match="is the host's"):  # e.g. a bwrap that binds the host's /
        _check_bwrap({**elsewhere, "host_dirs": f"{tmp_path}:{info.st_dev}:{info.st_ino}"})
