"""Attacks on the host's files: reading secrets and the project, writing outside the sandbox, other sessions."""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from pathlib import Path

import pytest

from ponder.core.settings import PACKAGE_DIR
from ponder.tools.sandbox.local import LocalSandbox

from .conftest import TIMEOUT, Guard

pytestmark = pytest.mark.security

HOME = Path.home()


def test_read_ssh_keys(guard: Guard) -> None:
    result = guard.attack(f"import os\nos.listdir({str(HOME / '.ssh')!r})")
    assert result.error_type == "FileNotFoundError", result
    key = guard.attack(f"open({str(HOME / '.ssh' / 'id_rsa')!r}).read()")
    assert key.error_type == "FileNotFoundError", key


def test_home_is_hidden(guard: Guard) -> None:
    result = guard.attack(f"import os\nos.listdir({str(HOME)!r})")
    if result.error_type is None:  # only the directory holding the interpreter may be bound back
        assert len(eval(result.value)) <= 1, result  # noqa: S307 - our own repr of a list of names
    else:
        assert result.error_type == "FileNotFoundError"


def test_read_project_files(guard: Guard) -> None:
    secret = PACKAGE_DIR / "pyproject.toml"
    assert secret.is_file()
    result = guard.attack(f"open({str(secret)!r}).read()")
    assert result.error_type == "FileNotFoundError", result
    listing = guard.attack(f"import os\nos.listdir({str(PACKAGE_DIR.parent)!r})")
    assert listing.error_type == "FileNotFoundError", listing


def test_read_etc_shadow(guard: Guard) -> None:
    result = guard.attack("open('/etc/shadow').read()")
    assert result.error_type in ("PermissionError", "FileNotFoundError"), result
    assert "root:" not in result.summary()


def test_memory_store_is_unreachable(guard: Guard, tmp_path: Path) -> None:
    store = tmp_path / "memory.jsonl"
    store.write_text('{"note": "host memory"}\n')
    targets = [str(store), str(HOME / ".local" / "share" / "ponder")]
    code = (f"out = []\nfor path in {targets!r}:\n    try:\n        open(path, 'a').write('poisoned')\n"
            f"        out.append('written')\n    except OSError as exc:\n        out.append(type(exc).__name__)\nout")
    result = guard.attack(code)
    assert "written" not in result.value, result
    assert store.read_text() == '{"note": "host memory"}\n'
    read = guard.attack(f"open({str(store)!r}).read()")
    assert read.error_type == "FileNotFoundError", read


def test_write_outside_the_temp_dir(guard: Guard, tmp_path: Path) -> None:
    name = f"ponder-sec-{uuid.uuid4().hex}"
    targets = [f"/etc/{name}", f"/usr/{name}", f"/{name}", str(PACKAGE_DIR / name), str(HOME / name),
               str(tmp_path / "deep" / name), f"/var/tmp/{name}"]
    code = (f"import os\nout = {{}}\nfor path in {targets!r}:\n    try:\n"
            f"        os.makedirs(os.path.dirname(path), exist_ok=True)\n"
            f"        open(path, 'w').write('pwned')\n        out[path] = 'written'\n"
            f"    except OSError as exc:\n        out[path] = type(exc).__name__\nout")
    result = guard.attack(code)
    assert result.ok, result
    for path in targets:
        assert not Path(path).exists(), f"{path} was created on the host"
    assert not (tmp_path / "deep").exists()


def test_huge_file_write(guard: Guard) -> None:
    before = shutil.disk_usage("/tmp").free
    code = ("chunk = b'x' * 2**20\nwith open('big.bin', 'wb') as fh:\n    for _ in range(10 * 1024):\n"
            "        fh.write(chunk)")
    result = guard.attack(code)
    assert result.error_type == "OSError" and "too large" in result.error_message.lower(), result
    many = guard.attack("chunk = b'x' * (2**20 - 1)\nfor i in range(10 * 1024):\n"
                        "    with open(f'part{i}.bin', 'wb') as fh:\n        fh.write(chunk)")
    assert many.error_type == "OSError" and "space" in many.error_message.lower(), many
    assert before - shutil.disk_usage("/tmp").free < 50 * 2**20


def test_chmod_and_chown_system_files(guard: Guard) -> None:
    targets = ["/etc/passwd", "/usr/bin/env", "/etc"]
    before = {p: os.stat(p) for p in targets}
    code = (f"import os\nout = []\nfor path in {targets!r}:\n"
            "    for call in (lambda: os.chmod(path, 0o777), lambda: os.chown(path, os.getuid(), os.getgid())):\n"
            "        try:\n            call()\n            out.append('changed')\n"
            "        except OSError as exc:\n            out.append(type(exc).__name__)\nout")
    result = guard.attack(code)
    assert "changed" not in result.value, result
    for path, st in before.items():
        now = os.stat(path)
        assert (stat.S_IMODE(now.st_mode), now.st_uid, now.st_gid) == (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)


def test_devices_and_kernel_settings(guard: Guard) -> None:
    code = ("import os, socket\nout = []\n"
            "for path, mode in (('/dev/mem', 'rb'), ('/dev/vda', 'rb'), ('/dev/sda', 'rb'), ('/dev/kmsg', 'rb'),\n"
            "                   ('/proc/sys/kernel/hostname', 'w'), ('/proc/sysrq-trigger', 'w')):\n"
            "    try:\n        open(path, mode).close()\n        out.append(path)\n"
            "    except OSError:\n        pass\n"
            "try:\n    socket.sethostname('pwned')\n    out.append('hostname')\nexcept OSError:\n    pass\nout")
    result = guard.attack(code)
    assert result.value == "[]", result


def test_dev_shm_and_tmp_are_private_to_a_session(guard: Guard) -> None:
    name = f"ponder-sec-{uuid.uuid4().hex}"
    wrote = guard.attack(f"import os\nout = []\nfor d in ('/dev/shm', '/tmp'):\n    try:\n"
                         f"        open(os.path.join(d, {name!r}), 'w').write('from session one')\n"
                         f"        out.append(d)\n    except OSError:\n        pass\nout")
    assert "/tmp" in wrote.value, wrote  # /dev/shm is not even writable
    with LocalSandbox(timeout=TIMEOUT, isolation="bwrap") as other:
        read = other.run(f"import os\n[os.path.exists(os.path.join(d, {name!r})) for d in ('/dev/shm', '/tmp')]")
        assert read.value == "[False, False]", read
    assert not Path("/dev/shm", name).exists() and not Path("/tmp", name).exists()


def test_another_sessions_temp_dir(guard: Guard) -> None:
    first = guard.attack("import os\nopen('notes.txt', 'w').write('private')\nos.path.abspath('notes.txt')")
    path = eval(first.value)  # noqa: S307 - our own repr of a str
    with LocalSandbox(timeout=TIMEOUT, isolation="bwrap") as other:
        peek = other.run(f"import os\nopen({path!r}).read()")
        assert peek.error_type == "FileNotFoundError", peek
        listing = other.run("import os\nos.listdir('/tmp'), os.getcwd()")
        names, cwd = eval(listing.value)  # noqa: S307 - our own repr
        assert names == [os.path.basename(cwd)], listing
    assert not Path(path).exists()  # the session's files never reach the host's disk
