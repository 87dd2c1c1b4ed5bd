"""The worker that runs one model-written program inside the sandbox (stdlib only; ponder runs its source).

:class:`~ponder.tools.subprocess_executor.SubprocessExecutor` starts it as
``python -I -S -B -X utf8 -c SOURCE KEY=VALUE...`` (see :func:`main` for the keys), ``SOURCE`` being
``tools/_worker_setup.py`` followed by this file, with the program on stdin, stdout and stderr
redirected to files and a result file open on fd ``result_fd``. Before any model code runs,
:func:`_setup` (``tools/_worker_setup.py``; in this order) unshares the network when asked (``unshare``
mode), joins a fresh session keyring, sets the kernel resource limits, drops root to an unprivileged uid
when asked (it never goes on as uid 0) and installs the seccomp filter the host built
(``tools/sandbox/seccomp.py``), read from the pipe ``seccomp_fd``; any failure ends the worker.
Then it makes itself non-dumpable and forks a child that executes the program in a fresh ``__main__``
module and sends its result back on a private pipe (:func:`_pack`: known fields only, checked by
:func:`_unpack`); the child never holds the result fd. The worker writes one JSON object to the result
fd: ``value`` (``repr`` of a final expression), ``error_type``, ``error_message``, ``traceback``,
``value_truncated``, ``isolation`` and ``dropped_uid``, and exits the way the child did. The program
decides its own result (as its final expression does); it cannot write the result fd, and a process it
starts that closes its inherited fds (the grading harness's candidate) cannot answer at all.

Startup time matters (one process per run): on the success path it imports only builtin modules,
``resource``, ``ctypes`` and ``select`` (no ``ast``, ``json`` or ``linecache``).
"""

import _ast
import os
import sys

if "_setup" not in globals():  # on the host (tests, linters); in the sandbox _worker_setup.py precedes this file
    from ponder.tools._worker_setup import PR_SET_PDEATHSIG, _setup

FILENAME = "<solution>"
_sources: dict = {}  # file name -> source of the model's code (its frames are the ones reported)
MAX_FRAMES = 6
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


# -- the private channel from the untrusted process (model code) to the trusted one ---------------------
# The trusted process (the one-shot worker's parent, the session's protocol process) holds the result fd or
# the host's pipes and never runs model code; the process that runs it sends its result on a private pipe.
# Frame: b"<length>\n" then fields b"<name> <length>\n<UTF-8 bytes>"; only the names below, each once.
_TEXT_FIELDS = ("value", "error_type", "error_message", "traceback", "cell")
_FLAG_FIELDS = ("value_truncated",)
PR_SET_DUMPABLE = 4


def _pack(result: dict) -> bytes:
    """Encode a result (str fields and bool flags) as one frame of the private channel."""
    parts = []
    for key, value in result.items():
        data = (b"1" if value else b"0") if isinstance(value, bool) else value.encode("utf-8", "surrogatepass")
        parts.append(b"%s %d\n%s" % (key.encode("ascii"), len(data), data))
    body = b"".join(parts)
    return b"%d\n%s" % (len(body), body)


def _unpack(body: bytes):
    """Decode a frame's body from the untrusted side: a dict, or ``None`` unless it is well formed.

    Well formed: only known field names, each at most once, text fields valid UTF-8 (lone surrogates
    allowed), flags ``0`` or ``1``, and nothing left over.
    """
    result: dict = {}
    pos = 0
    while pos < len(body):
        newline = body.find(b"\n", pos, pos + 40)
        head = body[pos:newline].split(b" ") if newline >= 0 else []
        if len(head) != 2 or not head[1].isdigit():
            return None
        key, end = head[0].decode("ascii", "replace"), newline + 1 + int(head[1])
        data = body[newline + 1 : end]
        if key in result or end > len(body):
            return None
        if key in _TEXT_FIELDS:
            try:
                result[key] = data.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                return None
        elif key in _FLAG_FIELDS and data in (b"0", b"1"):
            result[key] = data == b"1"
        else:
            return None
        pos = end
    return result


def _split_frame(buf: bytearray, cap: int):
    """Take one frame's body off ``buf``: the bytes, ``None`` while incomplete, ``False`` for garbage."""
    newline = buf.find(b"\n", 0, 24)
    if newline < 0:
        return False if len(buf) >= 24 else None
    head = bytes(buf[:newline])
    if not head.isdigit() or int(head) > cap:
        return False
    end = newline + 1 + int(head)
    if len(buf) < end:
        return None
    body = bytes(buf[newline + 1 : end])
    del buf[:end]
    return body


def _write_all(fd: int, data: bytes) -> bool:
    """Write all of ``data``; ``False`` when the reader is gone (or the fd is)."""
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError:
        return False
    return True


def _prctl(option: int, value: int) -> None:
    """``prctl(option, value)``; fail closed."""
    import ctypes

    if ctypes.CDLL(None, use_errno=True).prctl(option, ctypes.c_ulong(value), 0, 0, 0) != 0:
        raise SystemExit(f"prctl({option}) failed: {os.strerror(ctypes.get_errno())}")


def _pidfd(pid: int) -> int:
    """A pidfd of ``pid`` (readable once it exits), ``-1`` where the kernel has none (before Linux 5.3)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return -1


def _exited(pid: int) -> bool:
    """Whether the child ``pid`` has ended (it is not reaped)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _receive(fd: int, pid: int, pidfd: int, cap: int, buf: bytearray):
    """Wait for one frame from the untrusted child ``pid`` on ``fd`` (at most ``cap`` bytes).

    Returns the frame's body, or ``None`` when there is none: garbage, the pipe closed, or the child
    ended without sending one (its result would have been in the pipe before it exited).
    """
    import select

    poller = select.poll()
    poller.register(fd, select.POLLIN)
    if pidfd >= 0:
        poller.register(pidfd, select.POLLIN)
    while True:
        frame = _split_frame(buf, cap)
        if frame is not None:
            return frame if isinstance(frame, bytes) else None
        ready = dict(poller.poll(None if pidfd >= 0 else 50))
        if ready.get(fd):
            data = os.read(fd, 65536)
            if not data:
                return None
            buf += data
        elif (pidfd >= 0 and ready.get(pidfd)) or (pidfd < 0 and _exited(pid)):
            while dict(poller.poll(0)).get(fd) and (data := os.read(fd, 65536)) and len(buf) <= cap:
                buf += data  # what it wrote before it exited
            frame = _split_frame(buf, cap)
            return frame if isinstance(frame, bytes) else None


def _mirror(status: int) -> None:
    """Exit the way a child with wait status ``status`` did (same exit code, or killed by the same signal)."""
    if os.WIFSIGNALED(status):
        import _signal

        sig = os.WTERMSIG(status)
        try:
            _signal.signal(sig, _signal.SIG_DFL)
        except (OSError, ValueError):  # SIGKILL, SIGSTOP
            pass
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


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
        "error_type": _cut(type(exc).__name__, 200)[0],
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
    """Set up isolation and limits, run the program from stdin in a child and write the JSON result.

    Keys (``sys.argv[1:]``, ``KEY=VALUE``): ``result_fd``, ``chars`` (output limit), ``cpu`` (seconds;
    optional ``cpu_hard``, default ``cpu + 1``),
    ``as``, ``fsize``, ``core``, ``nproc``, ``nofile`` (rlimits), ``drop_uid`` (``-1``: keep),
    ``isolation`` (the parent's mode: ``unshare`` makes the worker unshare the network itself),
    ``userns`` (``1``: bwrap already put us in a user namespace, where ``RLIMIT_NPROC`` counts only the
    sandbox) and ``seccomp_fd``.

    After :func:`_setup` this process makes itself non-dumpable (the program cannot read its memory or
    fds through ``/proc``) and forks the child that runs the program; only this process holds the result
    fd. It accepts one well-formed result frame from the child's private pipe, writes the result fd,
    then exits the way the child did.
    """
    config = dict(arg.split("=", 1) for arg in sys.argv[1:])
    result_fd = int(config["result_fd"])
    os.set_inheritable(result_fd, False)
    sys.argv = [FILENAME]
    isolation, dropped = _setup(config)
    limit = int(config["chars"])
    _prctl(PR_SET_DUMPABLE, 0)
    read_end, write_end = os.pipe()
    parent = os.getpid()
    child = os.fork()
    if child == 0:
        os.close(read_end)
        os.close(result_fd)
        _run_program(parent, write_end, limit)
        return  # the interpreter's normal exit: threads the program left are joined, as without a child
    os.close(write_end)
    body = _receive(read_end, child, _pidfd(child), 16 * limit + 4096, bytearray())
    status = os.waitpid(child, 0)[1]
    result = _unpack(body) if body is not None else None
    if result is not None:
        result.pop("cell", None)
        result["isolation"] = isolation
        result["dropped_uid"] = dropped
        _write_all(result_fd, _json(result))
    os.close(result_fd)
    _mirror(status)


def _run_program(parent: int, fd: int, limit: int) -> None:
    """In the child: run the program from stdin and send its result to ``parent`` on ``fd``."""
    _prctl(PR_SET_PDEATHSIG, 9)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)
    me = os.getpid()
    result = _execute(sys.stdin.read(), limit)
    if os.getpid() != me:  # a process the program forked finished it: only the child reports
        os._exit(0)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - e.g. the output file hit its size limit
            pass
    _write_all(fd, _pack(result))
    os.close(fd)


if __name__ == "__main__":
    main()
