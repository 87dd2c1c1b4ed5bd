"""The seccomp filter of every sandbox worker: kernel interfaces model-written code has no use for.

The filter is built on the host with libseccomp's Python bindings (``seccomp`` where the distribution's
``python3-seccomp`` is importable, else ``pyseccomp``, a ctypes binding of the same library with the same
API), exported once per process as classic BPF (:func:`filter_bpf`) and handed to the worker on an
inherited pipe (:func:`bpf_pipe`). The worker (``tools/_worker_setup.py``) installs it itself, as the last
step of its set-up (``prctl(PR_SET_NO_NEW_PRIVS)`` then ``prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER)``),
after it joined a fresh session keyring, unshared its namespaces (``unshare`` mode), set its rlimits and
dropped root. It is not bwrap's ``--seccomp``: bwrap would install the filter before the worker runs, so
the worker could not join its new keyring (``keyctl`` is denied) nor unshare; and one filter installed by
the worker covers the ``unshare`` and ``none`` modes, which have no bwrap, the same way.

Denied (``EPERM`` unless said otherwise), whatever the isolation mode:

* keyrings (``keyctl``, ``add_key``, ``request_key``), ``io_uring``, ``perf_event_open``, ``bpf``,
  ``userfaultfd``, ``ptrace`` and ``process_vm_readv/writev``, kernel modules and ``kexec``, ``acct``,
  ``swapon/swapoff``, ``reboot``, ``syslog``, ``quotactl``, ``lookup_dcookie``;
* namespaces and mounts: ``setns``, every ``unshare``, ``clone`` with any ``CLONE_NEW*`` flag,
  ``clone3`` (``ENOSYS``, so libc falls back to ``clone``, whose flags the filter can see), ``mount``,
  ``umount2``, ``pivot_root`` and the new mount API. As root bwrap runs without a user namespace (the
  worker drops to a fresh uid instead), so this rule, not ``--disable-userns``, is what stops nested user
  namespaces there;
* sockets: ``AF_VSOCK`` and ``AF_PACKET`` (``socket`` and ``socketpair``), every ``SOCK_RAW`` socket (the
  type is compared under ``SOCK_TYPE_MASK``, so ``SOCK_CLOEXEC``/``SOCK_NONBLOCK`` do not hide it) and
  ``SOCK_PACKET`` but netlink's, and ``AF_NETLINK`` with any protocol but ``NETLINK_ROUTE`` (what libc's
  ``getifaddrs`` uses; the network namespace holds only ``lo``);
* ``personality`` other than the default (``PER_LINUX``);
* syscalls of another ABI (i386, x32): the process is killed.

``int`` arguments are compared under a 32-bit mask: the kernel ignores the upper half of the register,
which an equality test on all 64 bits would let the caller use to slip past.
"""

from __future__ import annotations

import errno
import functools
import tempfile
from types import ModuleType

from ponder.core.errors import SandboxError
from ponder.tools.sandbox.data_pipe import PIPE_BYTES, data_pipe

INSTALL_HINT = ("libseccomp is needed to sandbox code (Debian/Ubuntu: apt-get install libseccomp2; "
                "Python bindings: pip install pyseccomp)")
DENIED = (
    "keyctl", "add_key", "request_key", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "perf_event_open", "bpf", "userfaultfd", "ptrace", "process_vm_readv", "process_vm_writev",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "mount", "umount2",
    "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "setns", "unshare", "acct", "swapon", "swapoff", "reboot", "syslog", "quotactl", "quotactl_fd",
    "lookup_dcookie",
)
CLONE_NEW_FLAGS = {  # CLONE_NEWTIME (0x80) is only accepted by unshare/clone3, both denied outright
    "CLONE_NEWNS": 0x00020000, "CLONE_NEWCGROUP": 0x02000000, "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000, "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
AF_NETLINK, AF_PACKET, AF_VSOCK = 16, 17, 40
SOCK_RAW, SOCK_PACKET, SOCK_TYPE_MASK = 3, 10, 0xF
NETLINK_ROUTE = 0
INT_MASK = 0xFFFFFFFF


def _bindings() -> ModuleType:
    """Return libseccomp's Python bindings (``seccomp``, else ``pyseccomp``); :class:`SandboxError` when absent."""
    try:
        import seccomp

        return seccomp
    except ImportError:
        pass
    try:
        import pyseccomp
    except (ImportError, OSError, RuntimeError) as exc:  # pyseccomp raises RuntimeError without libseccomp
        raise SandboxError(f"{INSTALL_HINT}: {exc}") from exc
    return pyseccomp


def build_filter(sc: ModuleType | None = None) -> object:
    """Build the filter described in the module docstring (a ``SyscallFilter``, not yet loaded).

    Raises:
        SandboxError: when libseccomp or a rule cannot be used.
    """
    sc = sc or _bindings()
    eperm = sc.ERRNO(errno.EPERM)
    try:
        flt = sc.SyscallFilter(sc.ALLOW)
        flt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
        for name in DENIED:
            flt.add_rule(eperm, name)
        flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
        for flag in CLONE_NEW_FLAGS.values():
            flt.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
        for family in (AF_VSOCK, AF_PACKET):
            for call in ("socket", "socketpair"):
                flt.add_rule(eperm, call, sc.Arg(0, sc.MASKED_EQ, INT_MASK, family))
        for kind in (SOCK_RAW, SOCK_PACKET):  # netlink sockets are SOCK_RAW: the protocol rule covers them
            for call in ("socket", "socketpair"):
                flt.add_rule(eperm, call, sc.Arg(0, sc.NE, AF_NETLINK), sc.Arg(1, sc.MASKED_EQ, SOCK_TYPE_MASK, kind))
        # any upper bits in the protocol count as "not NETLINK_ROUTE": refused, never let through
        flt.add_rule(eperm, "socket", sc.Arg(0, sc.MASKED_EQ, INT_MASK, AF_NETLINK),
                     sc.Arg(2, sc.NE, NETLINK_ROUTE))
        flt.add_rule(eperm, "personality", sc.Arg(0, sc.NE, 0))
    except (OSError, ValueError, RuntimeError) as exc:
        raise SandboxError(f"could not build the sandbox's seccomp filter: {exc}") from exc
    return flt


@functools.cache
def filter_bpf() -> bytes:
    """The filter as classic BPF (``struct sock_filter`` array), built once per process.

    Raises:
        SandboxError: when libseccomp is missing or the filter cannot be built.
    """
    flt = build_filter()
    with tempfile.TemporaryFile() as fh:
        try:
            flt.export_bpf(fh)
        except OSError as exc:
            raise SandboxError(f"could not export the seccomp filter: {exc}") from exc
        fh.seek(0)
        data = fh.read()
    if not data or len(data) % 8:
        raise SandboxError(f"libseccomp exported a malformed filter ({len(data)} bytes)")
    return data


def bpf_pipe() -> int:
    """A pipe's read end holding :func:`filter_bpf` then end of file; the caller passes it on and closes it.

    Raises:
        SandboxError: when libseccomp is missing or the filter cannot be built.
    """
    data = filter_bpf()
    if len(data) > PIPE_BYTES:  # pragma: no cover - a few KiB
        raise SandboxError("the seccomp filter does not fit in a pipe")
    return data_pipe(data)
