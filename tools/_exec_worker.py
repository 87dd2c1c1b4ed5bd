"""The worker that runs one model-written program inside the sandbox (stdlib only; ponder runs its source).

:class:`~ponder.tools.subprocess_executor.SubprocessExecutor` starts it as
``python -I -S -B -X utf8 -c <this file's source> KEY=VALUE...`` (see :func:`main` for the keys) with
the program on stdin, stdout and stderr redirected to files and a result file open on fd ``result_fd``.
Before any model code runs, :func:`_setup` (in this order) unshares the network when asked (``unshare``
mode), joins a fresh session keyring, sets the kernel resource limits, drops root to an unprivileged uid
when asked (it never goes on as uid 0) and installs the seccomp filter the host built
(``tools/sandbox/seccomp.py``), read from the pipe ``seccomp_fd``; any failure ends the worker.
Then it executes the program in a fresh ``__main__`` module and writes one JSON object to the result
fd: ``value`` (``repr`` of a final expression), ``error_type``, ``error_message``, ``traceback``,
``value_truncated``, ``isolation`` and ``dropped_uid``. The program can write to that fd too; it can
only falsify its own result.

Startup time matters (one process per run): on the success path it imports only builtin modules and
``resource`` (no ``ast``, ``json`` or ``linecache``).
"""

import _ast
import os
import sys

FILENAME = "<solution>"
_sources: dict = {}  # file name -> source of the model's code (its frames are the ones reported)
MAX_FRAMES = 6
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
_ESCAPES = {i: f"\\u{i:04x}" for i in range(32)} | {ord('"'): '\\"', ord("\\"): "\\\\"}


def _json(result: dict) -> bytes:
    """Encode a flat dict of str/bool/None as JSON without importing ``json`` (lone surrogates escaped)."""
    items = []
    for key, value in result.items():
        if isinstance(value, str):
            text = '"' + value.translate(_ESCAPES) + '"'
        else:
            text = "true" if value is True else "false" if value is False else "null"
        items.append(f'"{key}": {text}')
    return ("{" + ", ".join(items) + "}").encode("utf-8", "backslashreplace")


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

    Shared by the one-shot worker and the session worker. In order: check that bwrap isolated us (bwrap
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


def _cut(text: str, limit: int) -> tuple[str, bool]:
    return (text, False) if len(text) <= limit else (text[:limit] + " ...[truncated]", True)


def _describe(exc: BaseException, limit: int) -> dict:
    """Error fields for ``exc``, the traceback limited to frames of the model's code."""
    import linecache
    import traceback

    for name, source in _sources.items():
        linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    try:
        message = str(exc)
    except BaseException:  # noqa: BLE001 - a hostile __str__
        message = "<unprintable exception>"
    if isinstance(exc, SyntaxError):
        lines = traceback.format_exception_only(type(exc), exc)
    else:
        kept: list = []  # the last frames of the model's code (walked by hand: a traceback can be huge)
        node = exc.__traceback__
        while node is not None:
            if node.tb_frame.f_code.co_filename in _sources:
                kept = kept[1 - MAX_FRAMES :] + [node]
            node = node.tb_next
        lines = ["Traceback (most recent call last):\n"]
        lines += traceback.format_list([traceback.extract_tb(tb, limit=1)[0] for tb in kept])
        lines += traceback.format_exception_only(type(exc), exc)
    return {
        "error_type": type(exc).__name__,
        "error_message": _cut(message, limit)[0],
        "traceback": _cut("".join(lines), limit)[0],
    }


def _execute(code: str, limit: int, module: object = None, filename: str = FILENAME) -> dict:
    """Run ``code`` as ``__main__``; a final expression is evaluated separately and its ``repr`` kept.

    ``module`` is a fresh module unless given (a session passes the same one every time); ``filename``
    names the code in tracebacks.
    """
    _sources[filename] = code
    if module is None:
        module = type(sys)("__main__")
        module.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = module
    result: dict = {}
    try:
        tree = compile(code, filename, "exec", _ast.PyCF_ONLY_AST)
        last = None
        if tree.body and isinstance(tree.body[-1], _ast.Expr):
            last = _ast.Expression(tree.body.pop().value)
        exec(compile(tree, filename, "exec"), module.__dict__)
        if last is not None:
            value = eval(compile(last, filename, "eval"), module.__dict__)
            if value is not None:
                result["value"], result["value_truncated"] = _cut(repr(value), limit)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            result.update(_describe(exc, limit))
    except BaseException as exc:  # noqa: BLE001 - everything the program does is reported, not raised
        result.update(_describe(exc, limit))
    return result


def main() -> None:
    """Set up isolation and limits, run the program from stdin and write the JSON result.

    Keys (``sys.argv[1:]``, ``KEY=VALUE``): ``result_fd``, ``chars`` (output limit), ``cpu`` (seconds;
    optional ``cpu_hard``, default ``cpu + 1``),
    ``as``, ``fsize``, ``core``, ``nproc`` (rlimits), ``drop_uid`` (``-1``: keep), ``isolation`` (the
    parent's mode: ``unshare`` makes the worker unshare the network itself) and ``userns`` (``1``: bwrap
    already put us in a user namespace, where ``RLIMIT_NPROC`` counts only the sandbox).
    """
    config = dict(arg.split("=", 1) for arg in sys.argv[1:])
    result_fd = int(config["result_fd"])
    os.set_inheritable(result_fd, False)
    sys.argv = [FILENAME]
    isolation, dropped = _setup(config)
    result = _execute(sys.stdin.read(), int(config["chars"]))
    result["isolation"] = isolation
    result["dropped_uid"] = dropped
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - e.g. the output file hit its size limit
            pass
    data = _json(result)
    while data:
        data = data[os.write(result_fd, data) :]
    os.close(result_fd)


if __name__ == "__main__":
    main()
