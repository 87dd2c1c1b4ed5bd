r"""The persistent worker behind :class:`~ponder.tools.sandbox.local.LocalSandbox` (stdlib only).

The host runs ``python -I -S -B -X utf8 -c SOURCE KEY=VALUE...`` where ``SOURCE`` is the one-shot
worker's source (``tools/_exec_worker.py``, without its ``main()`` call) followed by this file, so the
isolation, limit and execution helpers are shared. Keys: those of ``_exec_worker.main`` (``chars``,
``cpu``, ``as``, ``fsize``, ``core``, ``nproc``, ``drop_uid``, ``isolation``, ``userns``) plus ``cpu_hard``
(the session's hard CPU limit), ``req_fd`` and ``resp_fd`` (the protocol pipes).

Protocol, one request at a time:

* host -> worker (``req_fd``): ``b"<nonce> <length>\n"`` then ``length`` bytes of UTF-8 code; end of file
  ends the session;
* worker -> host (``resp_fd``): ``b"<length>\n"`` then a JSON object: first ``{"nonce": "ready",
  "isolation": ..., "dropped_uid": ...}``, then per request ``nonce``, ``value``, ``error_type``,
  ``error_message``, ``traceback`` and ``value_truncated``.

Per request the worker: gives the code ``cpu`` more seconds of CPU (``RLIMIT_CPU`` is cumulative per
process, so the soft limit is moved to "used so far + cpu"; the hard limit stays at ``cpu_hard``, which
an unprivileged process cannot raise again), restores ``sys.stdout``/``sys.stderr`` (line-buffered,
on fds 1 and 2: files the host truncates before each request and ``RLIMIT_FSIZE`` caps), runs the code
in the session's one ``__main__`` module (cell ``n`` is named ``<cell n>`` in tracebacks), then
SIGKILLs every other process of the sandbox (``kill(-1)``; only inside a pid namespace) so no process
the code started outlives its run. Model code shares the process: it can only falsify its own results.
"""

import os
import sys

if "_execute" not in globals():  # on the host (tests, linters); in the sandbox the helpers precede this file
    from ponder.tools._exec_worker import _execute, _json, _setup

PR_SET_PDEATHSIG = 1


def _send(fd: int, result: dict) -> None:
    """Write one frame; a host that went away ends the session."""
    data = _json(result)
    data = b"%d\n" % len(data) + data
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError:
        os._exit(0)


def _cpu_budget(seconds: int) -> None:
    """Let the next run use ``seconds`` more CPU seconds (soft limit), never above the hard limit."""
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


def _reap_strays(contained: bool) -> None:
    """SIGKILL every other process in the sandbox's pid namespace and reap our own children."""
    if not contained:  # without a pid namespace kill(-1) would reach the host's processes
        return
    try:
        os.kill(-1, 9)
    except OSError:  # ESRCH: nothing else is running
        pass
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return
        except InterruptedError:
            continue


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL us when the host goes away (bwrap does this itself)."""
    import ctypes

    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, 9)


def serve() -> None:
    """Set up isolation and limits, report ready, then run requests until the host closes the pipe."""
    config = dict(arg.split("=", 1) for arg in sys.argv[1:])
    req_fd, resp_fd = int(config["req_fd"]), int(config["resp_fd"])
    os.set_inheritable(req_fd, False)
    os.set_inheritable(resp_fd, False)
    sys.argv = ["<cell>"]
    if config["isolation"] != "bwrap":
        _die_with_parent()
    isolation, dropped = _setup(config)
    contained = isolation in ("bwrap", "net", "userns+net") and os.getpid() <= 2
    cpu, limit = int(config["cpu"]), int(config["chars"])
    out = open(1, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    err = open(2, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    sys.stdout = sys.__stdout__ = out
    sys.stderr = sys.__stderr__ = err
    module = type(sys)("__main__")
    module.__dict__["__builtins__"] = __builtins__
    pid = os.getpid()
    requests = open(req_fd, "rb", closefd=False)  # noqa: SIM115
    _send(resp_fd, {"nonce": "ready", "isolation": isolation, "dropped_uid": dropped})
    count = 0
    while True:
        header = requests.readline(64).split()
        if len(header) != 2 or not header[1].isdigit():
            os._exit(0)  # end of file (or garbage): the session is over
        code = requests.read(int(header[1])).decode("utf-8", "surrogatepass")
        count += 1
        _cpu_budget(cpu)
        sys.stdout, sys.stderr = out, err
        result = _execute(code, limit, module, f"<cell {count}>")
        if os.getpid() != pid:  # a child the code forked finished the cell: it is not the session
            os._exit(0)
        for stream in (out, err):
            try:
                stream.flush()
            except BaseException:  # noqa: BLE001 - e.g. the output file hit its size limit
                pass
        _reap_strays(contained)
        result["nonce"] = header[0].decode("ascii", "replace")
        _send(resp_fd, result)


if __name__ == "__main__":
    serve()
