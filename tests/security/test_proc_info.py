"""Attacks through ``/proc`` (and ``/sys``): what the kernel tells about the host, and what it lets the code change.

The sandbox has its own ``/proc`` (its pid namespace), but many files there describe the whole machine: the
kernel's command line and configuration, other users' keys, kernel addresses, the kernel log. And bwrap's
command line (``/proc/1/cmdline``) or the mount table can name the host's paths (the checkout, its virtual
environment, the host-side folders of a session). Each file must be unreadable or empty or show nothing of
the host, no write under ``/proc/sys`` may succeed, and the host's values stay as they were.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import pytest

from ponder.core.settings import PACKAGE_DIR

from .conftest import Guard

pytestmark = pytest.mark.security

#: Host paths the sandbox must not learn: the checkout, its venv, the host-side folders of sessions and runs.
HOST_PATHS = (str(PACKAGE_DIR), sys.prefix, "ponder-session-io", "ponder-exec-io", "/work", "pytest-of")


def read_in_sandbox(guard: Guard, path: str, needles: tuple[str, ...] = ()) -> tuple[int | None, list[str]]:
    """How many bytes of ``path`` the sandbox reads (``None``: it cannot open it) and which ``needles`` are in them.

    The search runs in the sandbox: a run's value is cut to the session's output limit.
    """
    code = (f"import os\ntry:\n    with open(os.open({path!r}, os.O_RDONLY | os.O_NONBLOCK), 'rb') as fh:\n"
            "        data = fh.read(1 << 20)\n"
            "    if data[:2] == b'\\x1f\\x8b':\n        import gzip\n        data = gzip.decompress(data)\n"
            "    text = data.decode('latin-1')\n"
            f"    out = len(data), [n for n in {needles!r} if n in text]\n"
            "except OSError:\n    out = None, []\nout\n")
    result = guard.attack(code)
    assert result.error_type is None and result.value is not None, result
    return eval(result.value)  # noqa: S307 - the repr of (int | None, list[str]) our code built


def host_text(path: str) -> str:
    """The host's view of ``path`` (empty when the host cannot read it either, or must not: see ``UNREAD``)."""
    if path in UNREAD:
        return ""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return ""
    return gzip.decompress(data).decode("latin-1") if data[:2] == b"\x1f\x8b" else data.decode("latin-1")


#: Files the host side never reads: /proc/kmsg blocks and consumes the kernel log, /proc/kcore is all of memory.
UNREAD = ("/proc/kmsg", "/proc/kcore")
MACHINE_FILES = ["/proc/cmdline", "/proc/config.gz", "/proc/key-users", "/proc/keys", "/proc/modules",
                 "/proc/timer_list", "/proc/sched_debug", "/proc/iomem", "/proc/vmallocinfo", "/proc/slabinfo",
                 "/proc/kmsg", "/proc/kcore", "/proc/bootconfig"]


@pytest.mark.parametrize("path", MACHINE_FILES, ids=lambda p: p.removeprefix("/proc/"))
def test_files_about_the_machine(session: Guard, path: str) -> None:
    secret = host_text(path).strip()
    size, found = read_in_sandbox(session, path, (secret[:100],) if secret else ())
    assert not size and not found, f"{path}: the sandbox reads {size} bytes"


def test_kernel_symbol_addresses(session: Guard) -> None:
    """``/proc/kallsyms``: unreadable, or every address hidden (``kptr_restrict``), never the kernel's layout."""
    code = ("import os\ntry:\n    lines = open('/proc/kallsyms').read(1 << 20).splitlines()\n"
            "except OSError:\n    lines = []\n"
            "sorted({line.split()[0] for line in lines if line.strip()} - {'0000000000000000', '00000000'})[:5]\n")
    result = session.attack(code)
    assert result.value == "[]", result


def test_bwrap_and_worker_command_lines(session: Guard) -> None:
    code = (f"import os\nout = {{}}\nfor pid in [p for p in os.listdir('/proc') if p.isdigit()]:\n    try:\n"
            "        text = open(f'/proc/{pid}/cmdline', 'rb').read().decode('latin-1')\n"
            f"        out[pid] = [p for p in {HOST_PATHS!r} if p in text], text[:40]\n"
            "        for p in out[pid][0]:\n            at = text.index(p)\n"
            "            out[pid] += (text[max(0, at - 60):at + 60],)\n"
            "    except OSError as exc:\n        out[pid] = [], type(exc).__name__\nout\n")
    result = session.attack(code)
    seen = eval(result.value)  # noqa: S307 - the repr of a dict of tuples our code built
    assert "1" in seen and "bwrap" in seen["1"][1], seen  # bwrap's own argv is there to read
    assert all(found[0] == [] for found in seen.values()), seen


@pytest.mark.parametrize("path", ["/proc/self/mountinfo", "/proc/self/mounts", "/proc/1/mountinfo"])
def test_mount_table(session: Guard, path: str) -> None:
    size, found = read_in_sandbox(session, path, HOST_PATHS)
    assert size and found == [], (size, found)  # the table is there to read, and shows nothing of the host


def test_host_filesystem_through_proc_pid_root(session: Guard) -> None:
    """``/proc/1/root`` and ``/proc/1/cwd`` of bwrap's init: the sandbox's own tree at most, never the host's."""
    code = ("import os\nout = []\nfor link in ('/proc/1/root', '/proc/1/cwd', '/proc/2/root', '/proc/2/cwd'):\n"
            f"    out.append(os.path.exists(link + {str(PACKAGE_DIR / 'pyproject.toml')!r}))\n"
            "    try:\n        out.append(os.readlink(link))\n    except OSError as exc:\n"
            "        out.append(type(exc).__name__)\nout\n")
    result = session.attack(code)
    seen = eval(result.value)  # noqa: S307 - the repr of a list of bools and strs our code built
    assert True not in seen and not [p for p in HOST_PATHS if p in repr(seen)], seen


def test_sysfs(session: Guard) -> None:
    """``/sys`` would show the machine's devices, cgroups and kernel settings: it is not there."""
    code = ("import os\nout = []\nfor path in ('/sys', '/sys/kernel', '/sys/fs/cgroup', '/sys/class/net',"
            " '/sys/firmware'):\n    try:\n        out.append(os.listdir(path))\n"
            "    except OSError as exc:\n        out.append(type(exc).__name__)\nout\n")
    result = session.attack(code)
    seen = eval(result.value)  # noqa: S307 - the repr of a list our code built
    assert all(not isinstance(x, list) or x == [] for x in seen), seen


SYSCTLS = ["/proc/sys/kernel/core_pattern", "/proc/sys/kernel/hostname", "/proc/sys/vm/drop_caches",
           "/proc/sys/kernel/modprobe", "/proc/sys/kernel/sysrq", "/proc/sys/vm/overcommit_memory",
           "/proc/sys/fs/suid_dumpable", "/proc/sys/kernel/randomize_va_space", "/proc/sysrq-trigger",
           "/proc/sys/net/ipv4/ip_forward"]
VALUES = {"core_pattern": "|/tmp/pwn %p", "hostname": "pwned", "drop_caches": "3", "modprobe": "/tmp/pwn",
          "sysrq": "1", "overcommit_memory": "1", "suid_dumpable": "2", "randomize_va_space": "0",
          "sysrq-trigger": "h", "ip_forward": "1"}


@pytest.mark.parametrize("path", SYSCTLS, ids=lambda p: p.rsplit("/", 1)[-1])
def test_proc_sys_writes(session: Guard, path: str) -> None:
    before = host_text(path)
    value = VALUES[path.rsplit("/", 1)[-1]]
    code = (f"import os\ntry:\n    fd = os.open({path!r}, os.O_WRONLY)\n    try:\n"
            f"        out = os.write(fd, {value.encode()!r})\n    finally:\n        os.close(fd)\n"
            "except OSError as exc:\n    out = type(exc).__name__\nout\n")
    result = session.attack(code)
    assert result.error_type is None and not result.value.isdigit(), result  # no byte was written
    assert host_text(path) == before
