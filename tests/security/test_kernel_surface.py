"""Attacks on the kernel's attack surface: nested namespaces, raw and exotic sockets, rarely needed syscalls.

Most kernel privilege escalations start from a nested user namespace (full capabilities there: mounts, raw
sockets, netfilter), io_uring, eBPF, perf, userfaultfd, keyrings or a rarely used socket family. Model code
needs none of them: each attempt must fail (``EPERM``/``ENOSYS``/``EAFNOSUPPORT``, or the attempting process is
killed), the session still works and nothing of it is left (the ``session`` fixture), and the host is fine.
Attacks that may kill their process run in a forked child, so that the report reaches the test.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from .conftest import SYSCALL_PRELUDE, Guard

pytestmark = pytest.mark.security

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
SIGCHLD = 17


def escaped(guard: Guard, code: str) -> object:
    """Run attack ``code`` (ending in an expression) and return its value, which must be a Python literal."""
    result = guard.attack(code)
    assert result.error_type is None and not result.killed, result
    return eval(result.value)  # noqa: S307 - the repr of lists/tuples/dicts of ints, strs and bools our code built


# -- nested namespaces ------------------------------------------------------------------------------------------

NESTED = {
    "unshare-call": SYSCALL_PRELUDE + (
        f"[libc.unshare(flags) for flags in ({CLONE_NEWUSER}, {CLONE_NEWUSER | CLONE_NEWNS}, "
        f"{CLONE_NEWUSER | CLONE_NEWNET})]\n"),
    "clone": SYSCALL_PRELUDE + (  # raw clone(2) without a stack: the child goes on like after fork()
        "out = []\n"
        f"for flags in ({CLONE_NEWUSER | CLONE_NEWNS}, {CLONE_NEWUSER}, {CLONE_NEWNS | CLONE_NEWNET}):\n"
        f"    pid = call('clone', flags | {SIGCHLD}, 0, 0, 0, 0)\n"
        "    if pid == 0:\n        os._exit(0)\n"
        "    if pid > 0:\n        os.waitpid(pid, 0)\n"
        "    out.append(pid)\nout\n"),
    "clone3": SYSCALL_PRELUDE + (  # struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal, ...
        "args = (ctypes.c_uint64 * 11)()\n"
        f"args[0], args[4] = {CLONE_NEWUSER | CLONE_NEWNS}, {SIGCHLD}\n"
        "pid = call('clone3', ctypes.byref(args), 88)\n"
        "if pid == 0:\n    os._exit(0)\n"
        "if pid > 0:\n    os.waitpid(pid, 0)\n[pid]\n"),
    "unshare-binary": (
        "import subprocess\n"
        "p = subprocess.run(['unshare', '-U', '-r', '-m', 'sh', '-c', 'mount -t tmpfs none /tmp && echo MOUNTED'],"
        " capture_output=True, text=True)\n"
        "[-1 if p.returncode else 0, -1 if 'MOUNTED' not in p.stdout else 1]\n"),
    "nested-bwrap": (  # the host's bwrap is visible in /usr/bin
        "import subprocess\n"
        "p = subprocess.run(['bwrap', '--unshare-user', '--uid', '0', '--bind', '/', '/', '--cap-add', 'ALL',"
        " 'sh', '-c', 'echo INSIDE; id -u'], capture_output=True, text=True)\n"
        "[-1 if p.returncode else 0, -1 if 'INSIDE' not in p.stdout else 1]\n"),
}


@pytest.mark.parametrize("name", list(NESTED))
def test_nested_user_namespace(session: Guard, name: str) -> None:
    ns, _ = session.identify()
    results = escaped(session, NESTED[name])
    assert results and all(r < 0 for r in results), results
    assert session.identify()[0] == ns


#: What an attacker does first in a new user namespace where it is root (run with ``unshare -U -r -m -n``).
IN_NAMESPACE = {
    "tmpfs-past-the-tmp-cap": "mount -t tmpfs -o size=4g none /tmp && echo DONE",
    "cgroup2-mount": "mkdir -p /tmp/cg && mount -t cgroup2 none /tmp/cg && echo DONE",
    "bind-over-etc": "mount --bind /tmp /etc && echo DONE",
    "raw-socket": "PY -I -S -c 'import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW); print(\"DONE\")'",
}


@pytest.mark.parametrize("name", list(IN_NAMESPACE))
def test_privileged_operations_in_a_nested_namespace(session: Guard, name: str) -> None:
    script = IN_NAMESPACE[name]
    code = ("import subprocess, sys\n"
            f"script = {script!r}.replace('PY', sys.executable)\n"
            "p = subprocess.run(['unshare', '-U', '-r', '-m', '-n', 'sh', '-c', script], capture_output=True,"
            " text=True)\n"
            "p.returncode, 'DONE' in p.stdout\n")
    mounts = Path("/proc/self/mountinfo").read_text()
    returncode, done = escaped(session, code)
    assert returncode != 0 and not done, (returncode, done)
    assert Path("/proc/self/mountinfo").read_text() == mounts


# -- sockets ----------------------------------------------------------------------------------------------------

AF_VSOCK, AF_PACKET, AF_NETLINK = 40, 17, 16
RAW = {
    "packet-raw": (AF_PACKET, socket.SOCK_RAW, 0x0300),
    "packet-dgram": (AF_PACKET, socket.SOCK_DGRAM, 0x0300),
    "inet-raw-icmp": (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
    "inet-raw-cloexec": (socket.AF_INET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.IPPROTO_TCP),
    "inet6-raw": (socket.AF_INET6, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.IPPROTO_ICMPV6),
    "inet-sock-packet": (socket.AF_INET, 10, 0x0300),  # SOCK_PACKET
    "vsock-stream": (AF_VSOCK, socket.SOCK_STREAM, 0),
    "vsock-dgram": (AF_VSOCK, socket.SOCK_DGRAM, 0),
    "vsock-seqpacket": (AF_VSOCK, socket.SOCK_SEQPACKET, 0),
}


def open_socket(family: int, kind: int, proto: int) -> str:
    """Code that tries ``socket(family, kind, proto)`` (raw syscall; upper bits kept) and never connects it."""
    return SYSCALL_PRELUDE + (
        f"fd = libc.syscall(41 if os.uname().machine == 'x86_64' else 198, ctypes.c_long({family}),"
        f" ctypes.c_long({kind}), ctypes.c_long({proto}))\n"
        "errno = ctypes.get_errno()\n"
        "if fd >= 0:\n    os.close(fd)\n"
        "[fd if fd >= 0 else -errno]\n")


@pytest.mark.parametrize("name", list(RAW))
def test_raw_packet_and_vsock_sockets(session: Guard, name: str) -> None:
    """AF_PACKET and raw sockets sniff or forge traffic; AF_VSOCK is not namespaced (it reaches the hypervisor)."""
    assert escaped(session, open_socket(*RAW[name]))[0] < 0


def test_socket_family_with_upper_bits(session: Guard) -> None:
    """The kernel reads ``socket``'s arguments as ``int``: upper bits must not slip AF_VSOCK/AF_PACKET/netlink past."""
    results = [escaped(session, open_socket(family | (1 << 32), kind, proto))[0]
               for family, kind, proto in ((AF_VSOCK, socket.SOCK_STREAM, 0), (AF_PACKET, socket.SOCK_RAW, 0x0300),
                                           (AF_NETLINK, socket.SOCK_RAW, 12 | (1 << 32)))]
    assert all(r < 0 for r in results), results


NETLINK = {"netfilter": 12, "xfrm": 6, "audit": 9, "kobject-uevent": 15, "sock-diag": 4, "generic": 16,
           "connector": 11, "crypto": 21, "selinux": 7, "nflog": 5, "fib-lookup": 10, "rdma": 20}


@pytest.mark.parametrize("name", list(NETLINK))
def test_netlink_beyond_route(session: Guard, name: str) -> None:
    proto = NETLINK[name]
    code = ("import socket\nout = []\nfor kind in (socket.SOCK_RAW, socket.SOCK_DGRAM):\n    try:\n"
            f"        socket.socket(socket.AF_NETLINK, kind, {proto}).close()\n        out.append('opened')\n"
            "    except OSError as exc:\n        out.append(exc.errno)\n"
            "socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close()\nout\n")  # route stays usable
    results = escaped(session, code)
    assert "opened" not in results, results


#: Socket families model code has no use for (a common source of kernel bugs; some load modules on demand).
EXOTIC = {"AF_AX25": 3, "AF_IPX": 4, "AF_APPLETALK": 5, "AF_X25": 9, "AF_KEY": 15, "AF_RDS": 21, "AF_PPPOX": 24,
          "AF_LLC": 26, "AF_CAN": 29, "AF_TIPC": 30, "AF_BLUETOOTH": 31, "AF_RXRPC": 33, "AF_PHONET": 35,
          "AF_IEEE802154": 36, "AF_CAIF": 37, "AF_ALG": 38, "AF_NFC": 39, "AF_KCM": 41, "AF_QIPCRTR": 42,
          "AF_SMC": 43, "AF_XDP": 44, "AF_MCTP": 45}


def test_exotic_socket_families(session: Guard) -> None:
    code = (f"import socket\nopened = []\nfor name, family in {EXOTIC!r}.items():\n"
            "    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET, socket.SOCK_RAW):\n"
            "        try:\n            socket.socket(family, kind, 0).close()\n            opened.append(name)\n"
            "        except OSError:\n            pass\nopened\n")
    assert escaped(session, code) == []


# -- syscalls ---------------------------------------------------------------------------------------------------

SYSCALL_ATTACKS = {
    "io_uring_setup": "params = (ctypes.c_uint8 * 120)()\nr = call('io_uring_setup', 8, params)\n",
    "perf_event_open": ("attr = (ctypes.c_uint32 * 32)()\nattr[0], attr[1] = 1, 128\n"  # PERF_TYPE_SOFTWARE, size
                        "attr[10] = 0x60\n"  # exclude_kernel, exclude_hv: allowed at perf_event_paranoid 2
                        "r = call('perf_event_open', attr, 0, -1, -1, 0)\n"),
    "bpf-map": ("attr = (ctypes.c_uint32 * 32)()\nattr[0], attr[1], attr[2], attr[3] = 2, 4, 4, 1\n"  # ARRAY map
                "r = call('bpf', 0, attr, 128)\n"),
    "bpf-socket-filter": ("insns = (ctypes.c_uint64 * 2)(0xb7, 0x95)\n"  # r0 = 0; exit
                          "attr = (ctypes.c_uint64 * 16)()\nattr[0] = 1 | (2 << 32)\n"  # SOCKET_FILTER, 2 insns
                          "attr[1], attr[2] = ctypes.addressof(insns), ctypes.addressof(lic)\n"
                          "r = call('bpf', 5, attr, 128)\n"),
    "userfaultfd": "r = call('userfaultfd', 0o2000000)\n",
    "userfaultfd-user-mode": "r = call('userfaultfd', 0o2000000 | 1)\n",  # UFFD_USER_MODE_ONLY: no privilege needed
    "dev-userfaultfd": ("try:\n    r = os.open('/dev/userfaultfd', os.O_RDWR)\nexcept OSError as exc:\n"
                        "    r = -exc.errno\n"),
    "keyctl": "r = call('keyctl', 0, -3, 1)\n",  # KEYCTL_GET_KEYRING_ID of a new session keyring
    "add_key": "r = call('add_key', b'user', b'ponder-sec-planted', b'x', 1, -3)\n",
    "request_key": "r = call('request_key', b'user', b'ponder-sec-planted', None, 0)\n",
    "fsopen": "r = call('fsopen', b'tmpfs', 0)\n",  # the new mount API
    "open_tree": "r = call('open_tree', -100, b'/tmp', 1 | 0o2000000)\n",  # OPEN_TREE_CLONE
    "syslog": "buf = ctypes.create_string_buffer(4096)\nr = call('syslog', 3, buf, 4096)\n",  # read the kernel log
}


@pytest.mark.parametrize("name", list(SYSCALL_ATTACKS))
def test_syscalls_a_sandbox_does_not_need(session: Guard, name: str) -> None:
    code = SYSCALL_PRELUDE + "lic = ctypes.create_string_buffer(b'GPL')\n" + SYSCALL_ATTACKS[name] + (
        "if r > 2:\n    os.close(r)\n[r]\n")  # a new fd: the attack worked
    assert escaped(session, code)[0] < 0


#: Every other process of the sandbox (the worker holding the protocol pipes, bwrap's init) from the code's own.
NEIGHBOURS = SYSCALL_PRELUDE + (
    "me = os.getpid()\n"
    "pids = [int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) != me]\n"
    "got = []\n"
    "def address(pid):\n    try:\n        return int(open(f'/proc/{pid}/maps').readline().split('-')[0], 16)\n"
    "    except (OSError, ValueError):\n        return 0x400000\n"
)
NEIGHBOUR_ATTACKS = {
    "ptrace-attach": ("for pid in pids:\n    if libc.ptrace(16, pid, None, None) == 0:\n        got.append(pid)\n"
                      "        libc.ptrace(17, pid, None, None)\n"),  # PTRACE_DETACH: do not leave it stopped
    "ptrace-seize": ("for pid in pids:\n    if libc.ptrace(0x4206, pid, None, None) == 0:\n        got.append(pid)\n"
                     "        libc.ptrace(17, pid, None, None)\n"),
    "process_vm_readv": (
        "class Iov(ctypes.Structure):\n    _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]\n"
        "buf = ctypes.create_string_buffer(64)\n"
        "for pid in pids:\n    local, remote = Iov(ctypes.addressof(buf), 64), Iov(address(pid), 64)\n"
        "    if call('process_vm_readv', pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) > 0:\n"
        "        got.append(pid)\n"),
    "proc-mem": ("for pid in pids:\n    try:\n        with open(f'/proc/{pid}/mem', 'rb') as fh:\n"
                 "            fh.seek(address(pid))\n            if fh.read(64):\n                got.append(pid)\n"
                 "    except (OSError, ValueError, OverflowError):\n        pass\n"),
    "pidfd_getfd": ("for pid in pids:\n    pidfd = call('pidfd_open', pid, 0)\n    if pidfd < 0:\n        continue\n"
                    "    for fd in range(32):\n        stolen = call('pidfd_getfd', pidfd, fd, 0)\n"
                    "        if stolen >= 0:\n            got.append((pid, fd))\n            os.close(stolen)\n"
                    "    os.close(pidfd)\n"),
}


@pytest.mark.parametrize("name", list(NEIGHBOUR_ATTACKS))
def test_other_processes_of_the_sandbox(session: Guard, name: str) -> None:
    """Reading the worker's memory or stealing its fds would let the code forge results or read the nonce."""
    got = escaped(session, NEIGHBOURS + NEIGHBOUR_ATTACKS[name] + "got, len(pids)\n")
    assert got[0] == [] and got[1] >= 1, got
    os.kill(os.getpid(), 0)


PERSONALITY = {"addr-no-randomize": 0x0040000, "read-implies-exec": 0x0400000, "uname26": 0x0020000,
               "linux32": 0x0008, "mmap-page-zero": 0x0100000}


@pytest.mark.parametrize("name", list(PERSONALITY))
def test_personality_tricks(session: Guard, name: str) -> None:
    code = (SYSCALL_PRELUDE + f"r = libc.personality({PERSONALITY[name]})\n"
            "import subprocess\n"  # a personality is inherited across exec: a child shows it
            "def child(*argv):\n    return subprocess.run(argv, capture_output=True, text=True).stdout.strip()\n"
            "r, child('cat', '/proc/self/personality'), child('uname', '-r')\n")
    result, now, release = escaped(session, code)
    assert result < 0, (result, now, release)  # refused, not merely cleared again by exec
    assert int(now, 16) == 0 and not release.startswith("2.6."), (result, now, release)
    assert release == os.uname().release


#: Syscalls of another ABI (i386 via ``int 0x80``; x32 via the x32 bit): ``keyctl(KEYCTL_GET_KEYRING_ID, @s)``.
OTHER_ABI = {
    "i386-int80": (  # push rbx; mov eax, 288 (i386 keyctl); xor ebx, ebx; mov ecx, -3; int 0x80; pop rbx;
        "code = bytes.fromhex('53b82001000031dbb9fdffffffcd805b4863c0c3')\n"  # movsxd rax, eax; ret
        "libc.mmap.restype = ctypes.c_void_p\n"
        "libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,"
        " ctypes.c_long]\n"
        "mem = libc.mmap(None, 4096, 7, 0x22, -1, 0)\n"
        "ctypes.memmove(mem, code, len(code))\n"
        "r = ctypes.CFUNCTYPE(ctypes.c_long)(mem)()\n"),
    "x32-bit": "r = call(0x40000000 | 250, 0, -3, 0)\n",
}


@pytest.mark.parametrize("name", list(OTHER_ABI))
def test_syscalls_of_another_abi(session: Guard, name: str) -> None:
    if os.uname().machine != "x86_64":
        pytest.fail("this attack is written for x86_64")
    code = SYSCALL_PRELUDE + (
        "r_fd, w_fd = os.pipe()\npid = os.fork()\nif pid == 0:\n    try:\n"
        + "".join("        " + line + "\n" for line in OTHER_ABI[name].splitlines())
        + "        os.write(w_fd, str(r).encode())\n    finally:\n        os._exit(0)\n"
        "os.close(w_fd)\n_, status = os.waitpid(pid, 0)\nreport = os.read(r_fd, 64).decode()\n"
        "int(report) if report else None, os.WIFSIGNALED(status) and os.WTERMSIG(status)\n")
    result, signal = escaped(session, code)
    assert (result is None and signal) or (result is not None and result < 0), (result, signal)
