"""The server processes of stdio connections: found right after the SDK spawns them, killed if a close hangs.

The SDK starts each stdio server in a session (and process group) of its own and, on a normal close, ends it
with the whole group. These helpers are the fallback for a close that does not finish in time (a wedged event
loop, a close at interpreter exit): the recorded group is killed outright.
"""

from __future__ import annotations

import contextlib
import os
import signal

import psutil


def child_pids() -> set[int]:
    """The pids of this process's direct children now."""
    with contextlib.suppress(psutil.Error):
        return {p.pid for p in psutil.Process().children()}
    return set()


def new_group_leaders(before: set[int], args: list[str]) -> list[psutil.Process]:
    """Children started since ``before`` that lead their own process group and were given ``args``.

    Args:
        before: :func:`child_pids` taken just before the spawn.
        args: The server's arguments (its command line must end with them), to leave out processes that
            other threads of ours started meanwhile.
    """
    found = []
    for proc in _children():
        if proc.pid in before:
            continue
        with contextlib.suppress(psutil.Error, OSError):
            cmdline = proc.cmdline()
            if os.getpgid(proc.pid) == proc.pid and (not args or cmdline[-len(args):] == args):
                found.append(proc)
    return found


def kill_groups(procs: list[psutil.Process]) -> None:
    """SIGKILL the process group of each process that is still the same running process (pid reuse is checked)."""
    for proc in procs:
        with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
            if proc.is_running():
                os.killpg(proc.pid, signal.SIGKILL)


def _children() -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        return psutil.Process().children()
    return []
