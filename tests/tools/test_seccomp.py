"""The sandbox's seccomp filter, loaded by the worker's own loader into a throwaway process.

Each probe is a syscall whose arguments are invalid or harmless (a bad fd, a NULL pointer, a wrong magic
number), so the same probe also runs *without* the filter: a probe counts only when the unfiltered call
does not fail with ``EPERM`` by itself, and then the filtered call must fail with ``EPERM`` (or ``ENOSYS``
for ``clone3``). A rule missing from the filter makes its probe fail.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys

import pytest

from ponder.core.errors import SandboxError
from ponder.tools.sandbox import seccomp
from ponder.tools.sandbox.seccomp import DENIED, bpf_pipe, build_filter, filter_bpf

AF_INET, AF_INET6, AF_UNIX, AF_NETLINK, AF_PACKET, AF_VSOCK = 2, 10, 1, 16, 17, 40
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_PACKET = 1, 2, 3, 10
SOCK_NONBLOCK, SOCK_CLOEXEC = 0o4000, 0o2000000
CLONE_THREAD, HIGH = 0x10000, 1 << 32
NULL = 0

# name -> (syscall, args): harmless without the filter (checked: never EPERM there), EPERM with it
DENIED_PROBES: dict[str, tuple[str, tuple[int | str, ...]]] = {
    "keyctl": ("keyctl", (0, -3, 0)),  # KEYCTL_GET_KEYRING_ID of the session keyring, no create
    "add_key": ("add_key", (NULL, NULL, NULL, 0, 0)),
    "request_key": ("request_key", (NULL, NULL, NULL, 0)),
    "io_uring_setup": ("io_uring_setup", (0, NULL)),
    "io_uring_enter": ("io_uring_enter", (-1, 0, 0, 0, NULL, 0)),
    "io_uring_register": ("io_uring_register", (-1, 0, NULL, 0)),
    "perf_event_open": ("perf_event_open", (NULL, 0, -1, -1, 0)),
    "bpf": ("bpf", (9999, NULL, 0)),
    "userfaultfd": ("userfaultfd", (0xFFFF,)),
    "ptrace": ("ptrace", (2, 0x3FFFFFFF, 0, 0)),  # PEEKDATA of a pid that does not exist
    "process_vm_readv": ("process_vm_readv", (0x3FFFFFFF, NULL, 0, NULL, 0, 1)),
    "process_vm_writev": ("process_vm_writev", (0x3FFFFFFF, NULL, 0, NULL, 0, 1)),
    "kexec_load": ("kexec_load", (0, 0xFFFFFFFF, NULL, 0x00FF0000)),  # too many segments, wrong arch
    "kexec_file_load": ("kexec_file_load", (-1, -1, 0, NULL, 0)),
    "init_module": ("init_module", (NULL, 0, NULL)),
    "finit_module": ("finit_module", (-1, NULL, 0)),
    "delete_module": ("delete_module", (NULL, 0)),
    "mount": ("mount", (NULL, NULL, NULL, 0, NULL)),
    "umount2": ("umount2", (NULL, 0)),
    "pivot_root": ("pivot_root", (NULL, NULL)),
    "move_mount": ("move_mount", (-1, NULL, -1, NULL, 0)),
    "open_tree": ("open_tree", (-1, NULL, 0)),
    "fsopen": ("fsopen", (NULL, 0)),
    "fsmount": ("fsmount", (-1, 0, 0)),
    "fspick": ("fspick", (-1, NULL, 0)),
    "mount_setattr": ("mount_setattr", (-1, NULL, 0, NULL, 0)),
    "setns": ("setns", (-1, 0)),
    "unshare": ("unshare", (0x10000000 | 0x1,)),  # CLONE_NEWUSER plus an unknown bit: EINVAL unfiltered
    "acct": ("acct", ("/nonexistent/ponder-acct",)),
    "swapon": ("swapon", ("/nonexistent/ponder-swap", 0)),
    "swapoff": ("swapoff", ("/nonexistent/ponder-swap",)),
    "reboot": ("reboot", (0, 0, 0, NULL)),  # wrong magic numbers: EINVAL unfiltered
    "syslog": ("syslog", (10, NULL, 0)),  # SYSLOG_ACTION_SIZE_BUFFER
    "quotactl": ("quotactl", (0, NULL, 0, NULL)),
    "personality": ("personality", (0x0040000,)),  # ADDR_NO_RANDOMIZE
    # every CLONE_NEW* flag, made invalid by CLONE_THREAD without CLONE_SIGHAND: EINVAL unfiltered
    **{f"clone {name}": ("clone", (flag | CLONE_THREAD, 0, 0, 0, 0))
       for name, flag in seccomp.CLONE_NEW_FLAGS.items()},
    "socket AF_VSOCK": ("socket", (AF_VSOCK, SOCK_STREAM, 0)),
    "socket AF_VSOCK, upper bits": ("socket", (HIGH | AF_VSOCK, SOCK_STREAM, 0)),
    "socket AF_PACKET": ("socket", (AF_PACKET, SOCK_RAW, 0)),
    "socket AF_PACKET dgram": ("socket", (AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0)),
    "socketpair AF_VSOCK": ("socketpair", (AF_VSOCK, SOCK_STREAM, 0, NULL)),
    "socketpair AF_PACKET": ("socketpair", (AF_PACKET, SOCK_DGRAM, 0, NULL)),
    "raw IPv4": ("socket", (AF_INET, SOCK_RAW, 1)),
    "raw IPv4 cloexec": ("socket", (AF_INET, SOCK_RAW | SOCK_CLOEXEC, 1)),
    "raw IPv6 nonblock": ("socket", (AF_INET6, SOCK_RAW | SOCK_NONBLOCK, 58)),
    "SOCK_PACKET": ("socket", (AF_INET, SOCK_PACKET, 0)),
    "netlink audit": ("socket", (AF_NETLINK, SOCK_RAW, 9)),
    "netlink netfilter": ("socket", (AF_NETLINK, SOCK_DGRAM, 12)),
    "netlink xfrm": ("socket", (AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 6)),
    "netlink route, upper bits": ("socket", (AF_NETLINK, SOCK_RAW, HIGH)),
}
ALLOWED_PROBES: dict[str, tuple[str, tuple[int | str, ...]]] = {
    "tcp": ("socket", (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)),
    "udp6": ("socket", (AF_INET6, SOCK_DGRAM, 0)),
    "unix": ("socket", (AF_UNIX, SOCK_DGRAM, 0)),
    "netlink route": ("socket", (AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0)),
    "personality PER_LINUX": ("personality", (0,)),
    "getpid": ("getpid", ()),
}

PROBE = r"""
import ctypes, json, os, subprocess, sys, threading
probes = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
if sys.argv[2] != "-":
    from ponder.tools._worker_setup import _load_seccomp
    _load_seccomp(libc, int(sys.argv[2]))
out = {}
for name, (nr, args) in probes.items():
    cargs = [ctypes.c_char_p(a.encode()) if isinstance(a, str) else ctypes.c_long(a) for a in args]
    ctypes.set_errno(0)
    ret = libc.syscall(ctypes.c_long(nr), *cargs)
    out[name] = ctypes.get_errno() if ret == -1 else 0
# ordinary work after the filter: fork, threads, a subprocess (clone3 -> clone), interfaces (netlink route)
pid = os.fork()
if pid == 0:
    os._exit(7)
out["fork"] = os.waitpid(pid, 0)[1] >> 8
box = []
thread = threading.Thread(target=box.append, args=(1,)); thread.start(); thread.join()
out["thread"] = box
out["subprocess"] = subprocess.run(["/bin/sh", "-c", "exit 5"]).returncode
import socket
out["if_nameindex"] = [name for _, name in socket.if_nameindex()]
print(json.dumps(out))
"""


def _numbers(probes: dict[str, tuple[str, tuple]]) -> dict[str, tuple[int, tuple]]:
    sc = seccomp._bindings()
    arch = sc.system_arch()
    return {name: (sc.resolve_syscall(arch, call), args) for name, (call, args) in probes.items()}


def _run_probes(probes: dict[str, tuple[str, tuple]], filtered: bool) -> dict:
    """Run ``probes`` in a fresh interpreter, with the sandbox's filter loaded by the worker's loader."""
    fd = bpf_pipe() if filtered else None
    try:
        proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(_numbers(probes)), str(fd or "-")],
                              pass_fds=(fd,) if fd else (), capture_output=True, text=True, timeout=60)
    finally:
        if fd is not None:
            os.close(fd)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def unfiltered() -> dict:
    return _run_probes(DENIED_PROBES | ALLOWED_PROBES, filtered=False)


@pytest.fixture(scope="module")
def filtered() -> dict:
    return _run_probes(DENIED_PROBES | ALLOWED_PROBES, filtered=True)


@pytest.mark.parametrize("name", list(DENIED_PROBES))
def test_denied(name: str, unfiltered: dict, filtered: dict) -> None:
    assert unfiltered[name] != errno.EPERM, f"{name}: the probe proves nothing here (EPERM without the filter)"
    assert filtered[name] == errno.EPERM, f"{name}: {errno.errorcode.get(filtered[name], filtered[name])}"


def test_clone3_is_enosys_so_libc_falls_back_to_clone(filtered: dict) -> None:
    result = _run_probes({"clone3": ("clone3", (0, 0))}, filtered=True)
    assert result["clone3"] == errno.ENOSYS
    assert filtered["subprocess"] == 5 and filtered["fork"] == 7 and filtered["thread"] == [1]


@pytest.mark.parametrize("name", list(ALLOWED_PROBES))
def test_allowed(name: str, unfiltered: dict, filtered: dict) -> None:
    assert filtered[name] == unfiltered[name] == 0


def test_ordinary_work_is_unaffected(unfiltered: dict, filtered: dict) -> None:
    for key in ("fork", "thread", "subprocess", "if_nameindex"):
        assert filtered[key] == unfiltered[key], key
    assert "lo" in filtered["if_nameindex"]


def test_every_denied_name_is_in_the_filter() -> None:
    """The static list (what the module promises) is what the exported filter holds."""
    text = _pfc()
    for name in DENIED:
        assert f'"{name}"' in text, name
    assert "action KILL_PROCESS" in text.split("invalid architecture action")[1]


def test_other_abi_is_killed() -> None:
    """An x32 syscall (``__X32_SYSCALL_BIT``) kills the process: the filter allows only native calls."""
    fd = bpf_pipe()
    code = ("import ctypes, sys; from ponder.tools._worker_setup import _load_seccomp; "
            "libc = ctypes.CDLL(None, use_errno=True); _load_seccomp(libc, int(sys.argv[1])); "
            "print('loaded', flush=True); libc.syscall(0x40000000 | 39); print('survived', flush=True)")
    try:
        proc = subprocess.run([sys.executable, "-c", code, str(fd)], pass_fds=(fd,), capture_output=True,
                              text=True, timeout=60)
    finally:
        os.close(fd)
    assert proc.stdout == "loaded\n" and proc.returncode == -signal.SIGSYS, (proc.returncode, proc.stderr)


def test_filter_is_built_once_per_process() -> None:
    data = filter_bpf()
    assert data is filter_bpf() and len(data) % 8 == 0 and 8 < len(data) < 65536


def test_missing_libseccomp_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "seccomp", None)  # import fails
    monkeypatch.setitem(sys.modules, "pyseccomp", None)
    filter_bpf.cache_clear()
    try:
        with pytest.raises(SandboxError, match="libseccomp2") as info:
            filter_bpf()
        assert "\n" not in str(info.value)
        with pytest.raises(SandboxError, match="libseccomp2"):
            bpf_pipe()
    finally:
        filter_bpf.cache_clear()


def test_missing_libseccomp_stops_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    from ponder.tools.sandbox.local import LocalSandbox

    monkeypatch.setitem(sys.modules, "seccomp", None)
    monkeypatch.setitem(sys.modules, "pyseccomp", None)
    filter_bpf.cache_clear()
    try:
        with pytest.raises(SandboxError, match="libseccomp2"):
            LocalSandbox(isolation="auto")
    finally:
        filter_bpf.cache_clear()


def test_docstring_says_why_the_worker_loads_it() -> None:
    doc = seccomp.__doc__ or ""
    assert "--seccomp" in doc and "keyring" in doc


def _pfc() -> str:
    import tempfile

    with tempfile.TemporaryFile("w+") as fh:
        build_filter().export_pfc(fh)
        fh.seek(0)
        return fh.read()
