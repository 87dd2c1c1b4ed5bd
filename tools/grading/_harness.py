"""The trusted side of the grading harness (stdlib only; runs in the sandbox as one ordinary program).

The host sends ``_codec.py`` + this file + a call of :func:`grade` with everything as literals; the
program's last expression is that call, so its value (the sandbox's result) is the verdict. The trusted
side first makes itself non-dumpable (no ``ptrace``, no ``/proc/<pid>/mem``, ``/fd`` or ``/environ`` for
processes of the same uid), then, per test, forks a candidate process that closes every inherited
descriptor but 0-2 (stdin becomes ``/dev/null``) and its two channel pipes and execs a fresh interpreter
running ``_candidate.py``. The tests run here, with pristine builtins, in namespaces where the candidate's
functions are proxies: arguments and results cross the pipes as plain values (``_codec.py``). A test
passes only if it finishes, the candidate answered every call with a plain value or an ``Exception``
and acknowledged the end ("tests finished"), and no signal reached this process meanwhile.
"""

import _signal
import builtins
import marshal
import os
import sys

if "encode_tokens" not in globals():  # on the host (tests, linters); in the sandbox the codec precedes this file
    from ponder.tools.grading._codec import FrameReader, PlainError, check_plain, decode_tokens, write_frame

PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
_PRISTINE = dict(vars(builtins))
_UNSAFE_ERRORS = ("StopIteration", "StopAsyncIteration")  # they end iterations: never re-raised as such
_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGVTALRM", "SIGPROF")


class CandidateError(Exception):
    """An exception of the candidate's that is not a built-in ``Exception`` type (or cannot be rebuilt)."""


class Disqualified(BaseException):  # noqa: N818 - a verdict, not an error
    """The candidate broke the rules (died, exited, returned a non-plain value): every test fails."""


def _unhex(token: bytes) -> str:
    if len(token) % 2 or not all(c in b"0123456789abcdef" for c in token):
        raise PlainError("malformed text")
    return bytes.fromhex(token.decode("ascii")).decode("utf-8", "replace")[:2000]


class _Candidate:
    """The candidate process and its channel."""

    def __init__(self, runner: str, source: str) -> None:
        self.tampered = ""
        self.calls = 0
        down_r, down_w = os.pipe()
        up_r, up_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            _become_candidate(runner, down_r, up_w)
        os.close(down_r)
        os.close(up_w)
        self.out, self.reader = down_w, FrameReader(up_r)
        self.names: list = []
        self.load_error = None
        self._load(source)

    def disqualify(self, reason: str) -> None:
        """Mark the candidate as cheating and end the test."""
        self.tampered = self.tampered or reason
        raise Disqualified(self.tampered)

    def _exchange(self, message: tuple) -> list:
        if self.tampered:
            raise Disqualified(self.tampered)
        try:
            write_frame(self.out, marshal.dumps(message))
        except OSError:
            self.disqualify("the candidate process is gone")
        reply = self.reader.read()
        if reply is None:
            self.disqualify("the candidate process died or broke the protocol")
        return reply.split(b" ")

    def _error(self, tokens: list, where: str) -> Exception:
        try:
            if len(tokens) == 3:
                return _rebuild(_unhex(tokens[1]), _unhex(tokens[2]), where)
        except PlainError:
            pass
        self.disqualify(f"malformed exception {where}")

    def _load(self, source: str) -> None:
        tokens = self._exchange(("load", source))
        try:
            if tokens[0] == b"n":
                self.names = [n for n in map(_unhex, tokens[1:]) if n.isidentifier()]
                return
        except PlainError:
            pass
        if tokens[0] == b"e":
            self.load_error = self._error(tokens, "while loading the candidate's definitions")
            return
        self._broken(tokens, "while loading the definitions")

    def _broken(self, tokens: list, where: str) -> None:
        reason = f"the candidate broke the protocol {where}"
        if tokens[0] == b"x" and len(tokens) == 2:
            try:
                reason = _unhex(tokens[1])
            except PlainError:
                pass
        self.disqualify(reason)

    def call(self, name: str, args: tuple, kwargs: dict) -> object:
        """Call the candidate's ``name``: its plain result, or its exception re-raised here."""
        if self.load_error is not None:
            raise self.load_error
        try:
            check_plain((args, kwargs))
        except PlainError as exc:
            raise TypeError(f"cannot pass this argument to the candidate's {name}: {exc}") from None
        self.calls += 1
        tokens = self._exchange(("call", name, args, kwargs))
        if tokens[0] == b"v":
            try:
                return decode_tokens(tokens[1:])
            except PlainError as exc:
                self.disqualify(f"the candidate's {name} returned a malformed value ({exc})")
        if tokens[0] == b"e":
            raise self._error(tokens, f"raised by the candidate's {name}")
        self._broken(tokens, f"in {name}")

    def finish(self) -> None:
        """Ask the candidate to end; it must acknowledge (the "tests finished" handshake).

        Raises:
            Exception: the candidate's error while loading, if any (the test did not call it).
        """
        if self.load_error is not None:
            raise self.load_error
        if self._exchange(("bye",)) != [b"k"]:
            self.disqualify("the candidate did not acknowledge the end of the tests")

    def close(self) -> None:
        """Close the channel, kill and reap the process (what it started is the sandbox's to end)."""
        for fd in (self.out, self.reader.fd):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.kill(self.pid, 9)
        except OSError:
            pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def _become_candidate(runner: str, read_fd: int, write_fd: int) -> None:
    """In the forked child: keep only stdout/stderr and the channel, then exec a fresh interpreter."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, 9)  # SIGKILL when the trusted side goes
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        keep = sorted({read_fd, write_fd})
        os.closerange(3, keep[0])
        os.closerange(keep[0] + 1, keep[1])
        os.closerange(keep[1] + 1, 1 << 20)
        for fd in keep:
            os.set_inheritable(fd, True)
        for name in _SIGNALS:
            _signal.signal(getattr(_signal, name), _signal.SIG_DFL)
        os.execv(sys.executable, [sys.executable, "-I", "-S", "-B", "-c", runner, str(read_fd), str(write_fd)])
    finally:
        os._exit(127)


def _rebuild(name: str, message: str, where: str) -> Exception:
    """The candidate's exception as a trusted object: a built-in ``Exception`` type with its message."""
    kind = _PRISTINE.get(name)
    if isinstance(kind, type) and issubclass(kind, Exception) and name not in _UNSAFE_ERRORS:
        try:
            exc = kind(message)
            if type(exc) is kind:
                return exc
        except Exception:  # noqa: BLE001 - e.g. UnicodeDecodeError needs five arguments
            pass
    return CandidateError(f"{name}: {message} ({where})")


def _proxy(candidate: _Candidate, name: str) -> object:
    def proxy(*args: object, **kwargs: object) -> object:
        return candidate.call(name, args, kwargs)

    proxy.__name__ = proxy.__qualname__ = name
    return proxy


def _harden() -> None:
    """Make this process non-dumpable, so a candidate of the same uid cannot trace or read it.

    Raises:
        OSError: when the kernel refused.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 or libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


_SIGNALLED: list = []  # signals that reached the grader during this run: every test fails


def _flag_signal(signum: int, frame: object) -> None:
    _SIGNALLED.append(signum)
    raise Disqualified(f"signal {signum} reached the grader")


def _describe(exc: BaseException, sources: dict) -> str:
    """``exc`` with a traceback of the tests' frames only (``sources``: file name -> source); no imports."""
    lines, node = [], exc.__traceback__
    while node is not None:
        code = node.tb_frame.f_code
        if code.co_filename in sources:
            text = sources[code.co_filename].splitlines()
            line = text[node.tb_lineno - 1].strip() if 0 < node.tb_lineno <= len(text) else ""
            lines = [*lines[-5:], f'  File "{code.co_filename}", line {node.tb_lineno}, in {code.co_name}\n'
                     f"    {line}\n"]
        node = node.tb_next
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001
        message = ""
    last = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return "Traceback (most recent call last):\n" + "".join(lines) + last


def _run_test(runner: str, candidate: str, setup: str, test: str, exports: list) -> tuple:
    """Run one test against a fresh candidate process: ``(passed, detail, calls)``.

    The test passes only if it ends without an exception, the candidate acknowledged the end of the
    test and nothing disqualified it (a dead or exiting candidate, a non-plain value, a signal).
    """
    sources = {"<setup>": setup, "<test>": test}
    process = None
    try:
        process = _Candidate(runner, candidate)
        if process.load_error is not None:
            return False, _describe(process.load_error, sources), 0
        names = exports or [n for n in process.names if not n.startswith("__") and n not in _PRISTINE]
        namespace = {"__name__": "__grader__", "__builtins__": dict(_PRISTINE)}
        try:
            exec(compile(setup, "<setup>", "exec"), namespace)
            # the names the candidate announced never replace the setup's (its check(), its helpers)
            namespace.update({name: _proxy(process, name) for name in names if exports or name not in namespace})
            exec(compile(test, "<test>", "exec"), namespace)
            process.finish()
        except Exception as exc:  # noqa: BLE001 - a failing test (or the candidate's re-raised error)
            return False, _describe(exc, sources), process.calls
    except Disqualified as exc:
        return False, f"disqualified: {exc}", 0 if process is None else process.calls
    finally:
        if process is not None:
            process.close()
    if process.tampered or _SIGNALLED:
        return False, f"disqualified: {process.tampered or 'a signal reached the grader'}", process.calls
    return True, "", process.calls


def _verdict(marker: str, outcomes: list, calls: int, limit: int) -> str:
    """``ponder-grade:<marker>:<P/F per test>:<calls>:<hex of each detail, dot-separated>`` (``limit`` chars)."""
    head = "ponder-grade:{}:{}:{}:".format(marker, "".join("P" if ok else "F" for ok, _ in outcomes), calls)
    details = [detail.encode("utf-8", "replace") for _, detail in outcomes]
    budget = (limit - len(head) - len(details)) // 2
    while sum(map(len, details)) > max(0, budget):
        longest = max(range(len(details)), key=lambda i: len(details[i]))
        details[longest] = details[longest][: len(details[longest]) * 2 // 3]
    return head + ".".join(d.hex() for d in details)


def grade(marker: str, runner: str, candidate: str, setup: str, tests: list, exports: list, limit: int) -> str:
    """Run every test in ``tests``, each against a fresh candidate process; the verdict (:func:`_verdict`).

    Args:
        marker: The host's random marker for this run (echoed in the verdict).
        runner: Source of the candidate process (``_codec.py`` + ``_candidate.py``).
        candidate: The candidate's kept definitions.
        setup: Trusted code run before each test (HumanEval: the prompt and the test code).
        tests: Test snippets; each runs after ``setup`` with the candidate's functions bound.
        exports: Names of the candidate's functions the tests use; empty: every function it defines
            whose name is not a builtin or a dunder.
        limit: Most characters of the verdict (the sandbox's output limit).
    """
    try:
        _harden()
    except (OSError, AttributeError, ImportError) as exc:
        return _verdict(marker, [(False, f"grader not started: {exc}")] * len(tests), 0, limit)
    previous, outcomes, calls = {}, [], 0
    del _SIGNALLED[:]
    try:
        for name in _SIGNALS:
            previous[name] = _signal.signal(getattr(_signal, name), _flag_signal)
        for test in tests:
            ok, detail, used = _run_test(runner, candidate, setup, test, list(exports))
            outcomes.append((ok, detail))
            calls += used
    except BaseException as exc:  # noqa: BLE001 - a signal between tests: fail closed
        outcomes = [(False, f"disqualified: {type(exc).__name__}: {exc}")] * len(tests)
    finally:
        for name, handler in previous.items():
            _signal.signal(getattr(_signal, name), handler)
    if _SIGNALLED or len(outcomes) != len(tests):
        outcomes = [(False, "disqualified: a signal reached the grader")] * len(tests)
    return _verdict(marker, outcomes, calls, limit)
