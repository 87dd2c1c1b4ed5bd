r"""The persistent worker behind :class:`~ponder.tools.sandbox.local.LocalSandbox` (stdlib only).

The host runs ``python -I -S -B -X utf8 -c SOURCE KEY=VALUE...`` where ``SOURCE`` is the worker set-up
(``tools/_worker_setup.py``), the execution and private-channel helpers (``tools/_exec_worker.py``) and
this file. Keys: ``chars`` (output limit), ``cpu`` (CPU seconds per cell), ``cpu_hard`` (the session's
hard CPU limit), ``as``, ``fsize``, ``core``, ``nproc``, ``nofile`` (rlimits), ``drop_uid`` (``-1``:
keep), ``isolation`` (``unshare`` makes the worker unshare the network itself), ``userns`` (``1``: bwrap
already put us in a user namespace, where ``RLIMIT_NPROC`` counts only the sandbox), ``seccomp_fd``, and
``req_fd`` and ``resp_fd`` (the protocol pipes).

Protocol with the host, one request at a time:

* host -> worker (``req_fd``): ``b"<nonce> <length>\n"`` then ``length`` bytes of UTF-8 code; end of file
  ends the session;
* worker -> host (``resp_fd``): ``b"<length>\n"`` then a JSON object: first ``{"nonce": "ready",
  "isolation": ..., "dropped_uid": ...}``, then per request ``nonce``, ``value``, ``error_type``,
  ``error_message``, ``traceback`` and ``value_truncated``; or ``{"nonce": ..., "failure": "garbled"}``
  when the session process answered with something else than one well-formed result.

Two processes. After :func:`_setup` (isolation, limits, uid drop, seccomp filter: they apply to both) the
protocol process P makes itself non-dumpable and forks the session process S, before it reads any
request: S never holds a nonce nor the host's pipes, and cannot reach P's memory or fds through
``/proc`` (nor ``ptrace``: the filter denies it). S keeps the session's one ``__main__`` module and runs
the cells (cell ``n`` is named ``<cell n>`` in tracebacks). Per request P:

1. sends the code to S on a private pipe (``b"<n> <length>\n"`` + code; no nonce) after ``SIGCONT``;
2. reads S's result on another private pipe: one frame of known fields (``_unpack``), size-capped, that
   must echo ``n``; anything else, or S closing the pipe, is a failure (S is killed, the host told);
3. ``SIGSTOP``\ s S (threads the code left running do not run between cells), then SIGKILLs every other
   process of the sandbox's pid namespace but pid 1, itself and S (found in ``/proc``; only inside a pid
   namespace), so no process the code started outlives its run;
4. adds the nonce and answers the host.

If S dies, P exits the same way (same exit code, or killed by the same signal), so the host sees the
session end exactly as it did with one process and reports the same kill reasons.

S gives each cell ``cpu`` more seconds of CPU (``RLIMIT_CPU`` is cumulative per process, so the soft
limit is moved to "used so far + cpu"; the hard limit stays at ``cpu_hard``, which an unprivileged
process cannot raise again) and restores ``sys.stdout``/``sys.stderr`` (line-buffered, on fds 1 and 2:
files the host truncates before each request and ``RLIMIT_FSIZE`` caps). Model code can still falsify
its own cell's result (it owns S); it cannot answer for another request, nor run while no cell does.
"""

import os
import sys

if "_execute" not in globals():  # on the host (tests, linters); in the sandbox the helpers precede this file
    from ponder.tools._exec_worker import (
        PR_SET_DUMPABLE,
        _execute,
        _exited,
        _json,
        _mirror,
        _pack,
        _pidfd,
        _prctl,
        _receive,
        _unpack,
        _write_all,
    )
    from ponder.tools._worker_setup import PR_SET_PDEATHSIG, _setup

SIGKILL, SIGCONT, SIGSTOP = 9, 18, 19  # the same on every Linux ABI this runs on (x86_64, aarch64)
STRAY_ROUNDS = 200  # passes over /proc before P gives up on a process it cannot kill


def _send(fd: int, result: dict) -> None:
    """Write one frame to the host; a host that went away ends the session."""
    data = _json(result)
    if not _write_all(fd, b"%d\n" % len(data) + data):
        os._exit(0)


def _cpu_budget(seconds: int) -> None:
    """Let this process use ``seconds`` more CPU seconds (soft limit), never above the hard limit."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    soft = int(usage.ru_utime + usage.ru_stime) + 1 + seconds
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    except (OSError, ValueError):
        pass


# -- the session process S (runs model code) -----------------------------------------------------------


def _session(parent: int, code_fd: int, result_fd: int, cpu: int, limit: int) -> None:
    """S: run each cell P sends on ``code_fd``, answer on ``result_fd``; exit when P closes the pipe."""
    _prctl(PR_SET_PDEATHSIG, SIGKILL)  # in every mode: without P nothing may go on
    if os.getppid() != parent:
        os._exit(0)
    out = open(1, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    err = open(2, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    sys.stdout = sys.__stdout__ = out
    sys.stderr = sys.__stderr__ = err
    module = type(sys)("__main__")
    module.__dict__["__builtins__"] = __builtins__
    pid = os.getpid()
    requests = open(code_fd, "rb", closefd=False)  # noqa: SIM115
    while True:
        header = requests.readline(64).split()
        if len(header) != 2 or not header[0].isdigit() or not header[1].isdigit():
            os._exit(0)  # end of file: the session is over
        code = requests.read(int(header[1])).decode("utf-8", "surrogatepass")
        _reap_children()
        _cpu_budget(cpu)
        sys.stdout, sys.stderr = out, err
        result = _execute(code, limit, module, f"<cell {int(header[0])}>")
        if os.getpid() != pid:  # a child the code forked finished the cell: it is not the session
            os._exit(0)
        for stream in (out, err):
            try:
                stream.flush()
            except BaseException:  # noqa: BLE001 - e.g. the output file hit its size limit
                pass
        result["cell"] = header[0].decode("ascii")
        if not _write_all(result_fd, _pack(result)):
            os._exit(1)


def _reap_children() -> None:
    """Reap S's children that P killed after the last cell (they stay zombies while S is stopped)."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


# -- the protocol process P (holds the host's pipes and the nonces; never runs model code) --------------


def serve() -> None:
    """Set up isolation and limits, fork the session process, report ready, then serve requests."""
    config = dict(arg.split("=", 1) for arg in sys.argv[1:])
    req_fd, resp_fd = int(config["req_fd"]), int(config["resp_fd"])
    os.set_inheritable(req_fd, False)
    os.set_inheritable(resp_fd, False)
    sys.argv = ["<cell>"]
    if config["isolation"] != "bwrap":
        _prctl(PR_SET_PDEATHSIG, SIGKILL)  # die with the host (bwrap does this itself)
    isolation, dropped = _setup(config)  # first: everything after it, S included, is confined
    contained = isolation in ("bwrap", "net", "userns+net") and os.getpid() <= 2
    cpu, limit = int(config["cpu"]), int(config["chars"])
    _prctl(PR_SET_DUMPABLE, 0)  # S (same uid) cannot open /proc/<P>/fd, mem, environ ...
    code_r, code_w = os.pipe()
    result_r, result_w = os.pipe()
    parent = os.getpid()
    child = os.fork()
    if child == 0:
        for fd in (req_fd, resp_fd, code_w, result_r):
            os.close(fd)
        _session(parent, code_r, result_w, cpu, limit)
        os._exit(0)
    os.close(code_r)
    os.close(result_w)
    _ignore_signals()
    _send(resp_fd, {"nonce": "ready", "isolation": isolation, "dropped_uid": dropped})
    _Protocol(req_fd, resp_fd, child, code_w, result_r, contained, cpu, limit).serve()


def _ignore_signals() -> None:
    """P ignores every signal it can (S, same uid, may send them); not SIGCHLD: P waits for S."""
    import _signal

    for sig in range(1, _signal.NSIG):
        if sig != _signal.SIGCHLD:
            try:
                _signal.signal(sig, _signal.SIG_IGN)
            except (OSError, ValueError):  # SIGKILL, SIGSTOP, numbers without a signal
                pass


class _Protocol:
    """P's request loop: forward each cell to S, check S's answer, stop S and the strays, answer the host."""

    def __init__(self, req_fd: int, resp_fd: int, child: int, code_fd: int, result_fd: int, contained: bool,
                 cpu: int, limit: int) -> None:
        self.req_fd, self.resp_fd, self.child = req_fd, resp_fd, child
        self.code_fd, self.result_fd, self.pidfd = code_fd, result_fd, _pidfd(child)
        self.contained, self.cpu, self.cap = contained, cpu, 16 * limit + 4096
        self.requests, self.replies = bytearray(), bytearray()
        self.keep = {1, os.getpid(), child}
        os.set_blocking(result_fd, False)

    def serve(self) -> None:
        """Answer requests until the host closes the pipe (or S dies: then P ends the same way)."""
        cell = 0
        while True:
            nonce, code = self._next_request()
            cell += 1
            self._drain()  # whatever S wrote after its last answer is not an answer to this request
            os.kill(self.child, SIGCONT)
            sent = _write_all(self.code_fd, b"%d %d\n" % (cell, len(code)) + code)
            body = _receive(self.result_fd, self.child, self.pidfd, self.cap, self.replies) if sent else None
            result = _unpack(body) if body is not None else None
            if result is None or result.pop("cell", None) != str(cell):
                self._fail(nonce)
            status = self._stop()
            if self.contained:
                _kill_strays(self.keep)
            _cpu_budget(self.cpu)
            result["nonce"] = nonce
            _send(self.resp_fd, result)
            if status is not None:  # S died right after its answer: end the session the same way
                _mirror(status)

    def _next_request(self) -> tuple:
        """Wait for the host's next request: ``(nonce, code bytes)``; exit at end of file or if S dies."""
        import select

        poller = select.poll()
        poller.register(self.req_fd, select.POLLIN)
        if self.pidfd >= 0:
            poller.register(self.pidfd, select.POLLIN)
        buf = self.requests
        while True:
            newline = buf.find(b"\n", 0, 64)
            header = buf[:newline].split() if newline >= 0 else []
            if newline >= 0 and (len(header) != 2 or not header[1].isdigit()):
                os._exit(0)  # garbage: the session is over
            if header and len(buf) >= newline + 1 + int(header[1]):
                end = newline + 1 + int(header[1])
                code = bytes(buf[newline + 1 : end])
                del buf[:end]
                return header[0].decode("ascii", "replace"), code
            if newline < 0 and len(buf) >= 64:
                os._exit(0)
            ready = dict(poller.poll())
            if ready.get(self.req_fd):
                data = os.read(self.req_fd, 1 << 16)
                if not data:
                    os._exit(0)  # end of file: the host ended the session (S dies with P)
                buf += data
            elif self.pidfd >= 0 and ready.get(self.pidfd):
                _mirror(os.waitpid(self.child, 0)[1])  # S died between cells (killed from outside)

    def _drain(self) -> None:
        self.replies.clear()
        try:
            while os.read(self.result_fd, 1 << 16):
                pass
        except BlockingIOError:
            pass

    def _fail(self, nonce: str) -> None:
        """No valid answer: if S ended, end the same way; else kill it and tell the host (never returns)."""
        import select

        if self.pidfd >= 0:  # S may be on its way out (its pipe closes before it is reaped)
            select.select([self.pidfd], [], [], 0.2)
        if not _exited(self.child):
            os.kill(self.child, SIGKILL)
            _send(self.resp_fd, {"nonce": nonce, "failure": "garbled"})
            os.waitpid(self.child, 0)
            os._exit(0)
        _mirror(os.waitpid(self.child, 0)[1])

    def _stop(self):
        """SIGSTOP S and wait until it is stopped: ``None``, or its wait status if it died instead."""
        os.kill(self.child, SIGSTOP)
        while True:
            _, status = os.waitpid(self.child, os.WUNTRACED)
            if os.WIFSTOPPED(status):
                return None
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                return status


def _kill_strays(keep: set) -> None:
    """SIGKILL every process of the sandbox's pid namespace but those in ``keep`` (until none is left)."""
    own = os.readlink("/proc/self") == str(os.getpid())  # /proc is this pid namespace's (bwrap)
    skip = set(keep)
    for attempt in range(STRAY_ROUNDS):
        found = _namespace_pids(own, skip)
        if not found:
            return
        for pid in found:
            try:
                os.kill(pid, SIGKILL)
            except ProcessLookupError:
                skip.add(pid)  # listed in the host's /proc but not in this namespace
            except OSError:
                pass
        if attempt >= 2:
            import time

            time.sleep(0.001)


def _namespace_pids(own: bool, skip: set) -> list:
    """Live (not zombie) pids of this pid namespace, as seen from inside it, but those in ``skip``.

    With the namespace's own ``/proc`` (bwrap) that is ``/proc``'s listing. In ``unshare`` mode ``/proc``
    is the host's: a process's pid here is the last ``NSpid`` entry of its ``status``, taken from the
    processes of our uid that sit as deep as we do (the caller skips numbers that do not exist here).
    """
    depth, uid = (None, None) if own else _nspid_depth_and_uid("self")
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or (own and int(name) in skip):
            continue
        if own:
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    stat = fh.read()
            except OSError:
                continue
            end = stat.rfind(b")")
            if stat[end + 2 : end + 3] not in (b"Z", b"X"):
                pids.append(int(name))
        elif (pid := _nspid_depth_and_uid(name, depth, uid)) is not None and pid not in skip:
            pids.append(pid)
    return pids


def _nspid_depth_and_uid(name: str, depth=None, uid=None):
    """Read ``/proc/<name>/status``: for ``self`` its ``(NSpid depth, real uid)``.

    For another process: its pid in our namespace if it is alive and has that depth and uid, else ``None``.
    """
    try:
        with open(f"/proc/{name}/status", "rb") as fh:
            lines = dict(line.split(b":", 1) for line in fh.read().splitlines() if b":" in line)
    except OSError:
        return None
    nspids = lines.get(b"NSpid", b"").split()
    real_uid = lines.get(b"Uid", b"-1").split()[0]
    if depth is None:
        return len(nspids), real_uid
    if len(nspids) != depth or real_uid != uid or lines.get(b"State", b"").split()[:1] in ([b"Z"], [b"X"]):
        return None
    return int(nspids[-1])


if __name__ == "__main__":
    serve()
