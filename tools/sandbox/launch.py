"""Starting a sandbox worker: the sources the host runs and the command line that starts one.

The worker is never imported in the sandbox: the host runs ``python -I -S -B -X utf8 -c SOURCE
KEY=VALUE...`` where ``SOURCE`` (:data:`KERNEL_SOURCE`) is stdlib-only files concatenated:
``tools/_worker_setup.py``, ``tools/_exec_worker.py`` and ``tools/sandbox/_kernel_worker.py``.
:func:`start_worker` adds the keys every worker needs (isolation mode, uid to drop to, the seccomp filter
on a pipe, under bwrap the self-check keys), puts bwrap's prefix (its options on a pipe) and the cgroup's
in front, and starts the process in a new session.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ponder.tools.sandbox.cgroups import SessionCgroup
from ponder.tools.sandbox.isolation import bwrap_checks, bwrap_prefix, interpreter_for, sandbox_env
from ponder.tools.sandbox.seccomp import bpf_pipe

_TOOLS = Path(__file__).resolve().parent.parent


def _read(*names: str) -> str:
    return "\n".join((_TOOLS / name).read_text(encoding="utf-8") for name in names)


KERNEL_SOURCE = _read("_worker_setup.py", "_exec_worker.py", "sandbox/_kernel_worker.py")


def start_worker(source: str, mode: str, workdir: str, config: dict[str, Any], *, drop_uid: int | None,
                 cgroup: SessionCgroup | None, pass_fds: Sequence[int] = (),
                 popen: Callable[..., subprocess.Popen] = subprocess.Popen, **streams: Any) -> subprocess.Popen:
    """Start ``python -I -S -B -X utf8 -c source KEY=VALUE...`` isolated in ``mode``, in ``cgroup``.

    Args:
        source: The worker's source (:data:`KERNEL_SOURCE`).
        mode: The isolation mode: ``bwrap``, ``unshare`` or ``none``.
        workdir: The worker's working dir (its private ``/tmp`` under bwrap); also its ``HOME``.
        config: The worker's own keys (limits, its fds); ``drop_uid``, ``isolation``, ``userns``,
            ``seccomp_fd`` and bwrap's self-check keys are added.
        drop_uid: The uid the worker drops root to (:func:`~ponder.tools.sandbox.isolation.drop_uid_for`).
        cgroup: The session's or run's cgroup, or ``None``.
        pass_fds: The caller's fds the worker inherits (the caller closes them).
        popen: What starts the process (``subprocess.Popen`` or the sandbox's spawner thread).
        **streams: ``stdin``, ``stdout``, ``stderr`` for ``popen``.

    Raises:
        OSError: when a pipe or the process cannot be made.
        SandboxError: when the seccomp filter cannot be built.
    """
    opened: list[int] = []  # our pipes' read ends: closed once the worker started
    try:
        opened.append(bpf_pipe())
        config = {**config, "drop_uid": -1 if drop_uid is None else drop_uid, "isolation": mode,
                  "userns": int(mode == "bwrap" and os.geteuid() != 0), "seccomp_fd": opened[-1],
                  **(bwrap_checks() if mode == "bwrap" else {})}
        argv = [str(interpreter_for(mode)), "-I", "-S", "-B", "-X", "utf8", "-c", source,
                *(f"{key}={value}" for key, value in config.items())]
        if mode == "bwrap":
            prefix, args_fd = bwrap_prefix(workdir)
            opened.append(args_fd)
            argv = prefix + argv
        if cgroup is not None:
            argv = cgroup.wrap(argv)
        return popen(argv, cwd=workdir, env=sandbox_env(workdir), pass_fds=(*pass_fds, *opened),
                     start_new_session=True, **streams)
    finally:
        for fd in opened:
            os.close(fd)
