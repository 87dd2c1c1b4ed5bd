"""The sandbox worker's set-up: isolate and limit the process before any model code runs (stdlib only).

:func:`_setup` is the first thing the session worker (``tools/sandbox/_kernel_worker.py``) does. In the
sandbox this file is not imported: the host runs ``python -I -S -c SOURCE`` where ``SOURCE`` is this file
followed by the worker's own files (``KERNEL_SOURCE`` in ``tools/sandbox/launch.py``), so every name here
must be defined only here. On the host (tests, linters) the workers import it.

In order, :func:`_setup` checks that bwrap isolated the process (``bwrap`` mode) or unshares the network
and pids itself (``unshare`` mode), joins a fresh session keyring, sets the kernel resource limits, drops
root to an unprivileged uid when asked (it never goes on as uid 0) and installs the seccomp filter the
host built (``tools/sandbox/seccomp.py``), read from the pipe ``seccomp_fd``; any failure ends the worker.
It imports only ``os``, ``ctypes`` and ``resource``.
"""

import os

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000
PR_SET_PDEATHSIG = 1
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2
# (keyctl, capset) syscall numbers: x86_64 (the only ABI the x86_64 filter lets through) and aarch64
SYS_KEYCTL, SYS_CAPSET = {"aarch64": (219, 91)}.get(os.uname().machine, (250, 126))
KEYCTL_JOIN_SESSION_KEYRING = 1
ENOSYS = 38
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
MAX_FILES = 256  # RLIMIT_NOFILE default


def _unshare() -> str:
    """Fallback isolation: new network and pid namespaces (plus a user namespace when not root).

    The worker then forks twice: the child is pid 1 of the new pid namespace and only reaps (a namespace's
    init ignores signals it has no handler for, the kernel's ``SIGXCPU`` and CPU-limit ``SIGKILL``
    included), the grandchild (pid 2, like under bwrap) runs the program. Each is killed when its parent
    dies and pid 1 dying ends the namespace, so killing the worker's process group ends every process the
    program started, including those that called ``setsid``. The parents wait and exit like bwrap does
    (``128 + signal``). In a new user namespace the worker keeps its own uid (not root there) and gives up
    the capabilities that namespace granted. Returns the isolation achieved: ``net``, ``userns+net`` or
    ``none``.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0 and libc.unshare(CLONE_NEWNET | CLONE_NEWPID) == 0:
        isolation = "net"
    elif libc.unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWPID) == 0:
        isolation = "userns+net"
        try:  # map our own uid (allowed for one's own uid), so nothing runs as uid 0 in the namespace
            for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
                with open(f"/proc/self/{name}", "w") as fh:
                    fh.write(text)
        except OSError:
            pass
        _drop_capabilities(libc)
    else:
        return "none"
    _fork_and_wait(libc, reap_all=False)  # the child is pid 1 of the new namespace
    _fork_and_wait(libc, reap_all=True)
    return isolation


def _drop_capabilities(libc: object) -> None:
    """Clear the effective, permitted and inheritable capability sets (``capset``); fail closed."""
    import ctypes

    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # two struct __user_cap_data_struct, all zero
    if libc.syscall(SYS_CAPSET, header, data) != 0:
        raise SystemExit(f"capset failed: {os.strerror(ctypes.get_errno())}")


def _fork_and_wait(libc: object, reap_all: bool) -> None:
    """Fork; the child returns, the parent waits for it (reaping orphans too if ``reap_all``) and exits."""
    child = os.fork()
    if child == 0:
        libc.prctl(PR_SET_PDEATHSIG, 9)  # SIGKILL when the parent dies
        return
    while True:
        pid, status = os.wait() if reap_all else os.waitpid(child, 0)
        if pid == child:
            os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))


def _join_session_keyring(libc: object) -> None:
    """Replace the inherited session keyring (the host's login keyring) by a fresh, empty one.

    ``ENOSYS`` (a kernel without keys) is fine; any other failure ends the worker (fail closed).
    """
    import ctypes

    if libc.syscall(SYS_KEYCTL, KEYCTL_JOIN_SESSION_KEYRING, None) < 0:
        err = ctypes.get_errno()
        if err != ENOSYS:
            raise SystemExit(f"could not join a fresh session keyring: {os.strerror(err)}")


def _set_limits(config: dict, nproc: bool) -> None:
    import resource

    cpu = int(config["cpu"])  # SIGXCPU, then SIGKILL at the hard limit (a second later by default)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, int(config.get("cpu_hard", cpu + 1))))
    limits = {"as": config["as"], "fsize": config["fsize"], "core": config["core"],
              "nofile": config.get("nofile", MAX_FILES)}
    if nproc:
        limits["nproc"] = config["nproc"]
    for name, limit in limits.items():
        resource.setrlimit(getattr(resource, f"RLIMIT_{name.upper()}"), (int(limit), int(limit)))


def _drop_privileges(uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise SystemExit("privilege drop failed")


def _load_seccomp(libc: object, fd: int) -> None:
    """Install the host-built seccomp filter (classic BPF read from ``fd``) on this process; fail closed."""
    import ctypes

    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    data = b"".join(chunks)
    if not data or len(data) % 8 or len(data) // 8 > 4096:
        raise SystemExit(f"bad seccomp filter ({len(data)} bytes)")

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

    prog = SockFprog(len(data) // 8, data)
    ulong = ctypes.c_ulong
    if libc.prctl(PR_SET_NO_NEW_PRIVS, ulong(1), ulong(0), ulong(0), ulong(0)) != 0:
        raise SystemExit(f"PR_SET_NO_NEW_PRIVS failed: {os.strerror(ctypes.get_errno())}")
    if libc.prctl(PR_SET_SECCOMP, ulong(SECCOMP_MODE_FILTER), ctypes.byref(prog), ulong(0), ulong(0)) != 0:
        raise SystemExit(f"could not install the seccomp filter: {os.strerror(ctypes.get_errno())}")


def _check_bwrap(config: dict) -> None:
    """Under bwrap, refuse to go on unless it really isolated us (a broken or replaced ``bwrap`` may not).

    Every namespace in ``host_ns`` (``name:inode,...``, the host's own) must differ from ours, and none of
    the host's folders in ``host_dirs`` (``path:device:inode,...``) may be what we see at that path.
    """
    for item in config["host_ns"].split(","):
        name, _, inode = item.partition(":")
        if os.stat(f"/proc/self/ns/{name}").st_ino == int(inode):
            raise SystemExit(f"not isolated: the {name} namespace is the host's")
    for item in filter(None, config["host_dirs"].split(",")):
        path, dev, inode = item.rsplit(":", 2)
        try:
            info = os.stat(path)
        except OSError:
            continue
        if (info.st_dev, info.st_ino) == (int(dev), int(inode)):
            raise SystemExit(f"not isolated: {path} is the host's")


def _setup(config: dict) -> tuple:
    """Isolate and limit this process before any model code runs: ``(isolation achieved, uid dropped)``.

    In order: check that bwrap isolated us (bwrap
    mode) or unshare the network and pids (``unshare`` mode), join a fresh session keyring, set the kernel
    resource limits, drop root to a fresh uid when asked, then install the seccomp filter read from
    ``seccomp_fd`` (last: it denies ``unshare`` and ``keyctl``). Any failure ends the worker; it never
    goes on as uid 0.
    """
    import ctypes

    if config["isolation"] == "bwrap":
        _check_bwrap(config)
    isolation = _unshare() if config["isolation"] == "unshare" else config["isolation"]
    libc = ctypes.CDLL(None, use_errno=True)
    _join_session_keyring(libc)
    drop_uid = int(config["drop_uid"])
    dropped = drop_uid >= 0 and os.getuid() == 0
    # RLIMIT_NPROC counts every process of the (real) uid: only safe to set for a fresh uid or a new user ns
    _set_limits(config, nproc=dropped or config["userns"] == "1" or isolation == "userns+net")
    if dropped:
        _drop_privileges(drop_uid)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise SystemExit("refusing to run model code as uid 0")
    _load_seccomp(libc, int(config["seccomp_fd"]))
    return isolation, dropped
