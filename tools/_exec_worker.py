"""The execution and private-channel helpers of the sandbox worker (stdlib only; ponder runs its source).

The session worker (``tools/sandbox/_kernel_worker.py``) is started as ``python -I -S -B -X utf8 -c SOURCE
KEY=VALUE...`` where ``SOURCE`` is ``tools/_worker_setup.py`` (isolation, limits, uid drop, seccomp),
this file and the session worker, concatenated (``KERNEL_SOURCE`` in ``tools/sandbox/launch.py``). Here:

* :func:`_execute` runs one cell in the session's ``__main__`` module; a final expression is evaluated
  separately and its ``repr`` kept; errors are reported with a short traceback of the model's frames only
  (:func:`_describe`);
* the private channel from the untrusted session process to the trusted protocol process: :func:`_pack`
  (known fields only), :func:`_split_frame` and :func:`_unpack` (strictly checked, size-capped), and
  :func:`_receive`, which waits for one frame or for the untrusted process to end;
* :func:`_json` encodes the protocol process's answer to the host without importing ``json``;
* :func:`_prctl`, :func:`_pidfd`, :func:`_exited` and :func:`_mirror` (exit the way a child did).

Start-up time matters: on the success path these import only builtin modules, ``ctypes`` and ``select``
(no ``ast``, ``json`` or ``linecache``).
"""

import _ast
import os
import sys

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
# The trusted process (the session's protocol process) holds the host's pipes and never runs model code;
# the process that runs it sends its result on a private pipe.
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


def _execute(code: str, limit: int, module: object, filename: str) -> dict:
    """Run ``code`` in ``module`` (the session's ``__main__``) as ``filename``; keep a final expression's ``repr``."""
    _sources[filename] = code
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
