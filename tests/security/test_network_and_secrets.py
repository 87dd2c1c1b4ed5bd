"""Attacks on the network, the environment and the host's Python packages."""

from __future__ import annotations

import os
import socket
import time
import uuid

import pytest

from ponder.core.settings import PACKAGE_DIR

from .conftest import Guard, wait_until

pytestmark = pytest.mark.security

SECRETS = {"OPENAI_API_KEY": "sk-ponder-sec-openai", "E2B_API_KEY": "e2b-ponder-sec-key",
           "AWS_SECRET_ACCESS_KEY": "aws-ponder-sec-secret"}


def assert_no_connection(listener: socket.socket) -> None:
    listener.setblocking(False)
    with pytest.raises(BlockingIOError):
        listener.accept()


def test_tcp_to_a_host_listener(guard: Guard) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = guard.attack(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)")
        assert result.error_type in ("ConnectionRefusedError", "OSError", "TimeoutError"), result
        assert_no_connection(listener)


def test_tcp_to_the_hosts_other_addresses(guard: Guard) -> None:
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        port = listener.getsockname()[1]
        addresses = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
        code = ("import socket\nok = []\n"
                f"for host in {sorted(addresses | {'10.0.2.2', '172.17.0.1'})!r}:\n"
                "    try:\n"
                f"        socket.create_connection((host, {port}), timeout=0.3).close()\n"
                "        ok.append(host)\n    except OSError:\n        pass\n"
                "ok, [name for _, name in socket.if_nameindex()]")
        result = guard.attack(code)
        assert result.value == "([], ['lo'])", result
        assert_no_connection(listener)


def test_udp_to_a_host_socket(guard: Guard) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        port = receiver.getsockname()[1]
        guard.attack(f"import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                     f"try:\n    s.sendto(b'leak', ('127.0.0.1', {port}))\nexcept OSError:\n    pass")
        time.sleep(0.1)
        receiver.setblocking(False)
        with pytest.raises(BlockingIOError):
            receiver.recv(10)


def test_dns_lookup(guard: Guard) -> None:
    result = guard.attack("import socket\nsocket.getaddrinfo('example.com', 443)")
    assert result.error_type == "gaierror", result


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_unix_socket_of_the_host(guard: Guard, abstract: bool) -> None:
    name = f"\0ponder-sec-{uuid.uuid4().hex}" if abstract else f"/tmp/ponder-sec-{uuid.uuid4().hex}.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(name)
        listener.listen()
        try:
            result = guard.attack(f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({name!r})")
            assert result.error_type in ("FileNotFoundError", "ConnectionRefusedError"), result
            assert_no_connection(listener)
        finally:
            if not abstract:
                os.unlink(name)


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    return SECRETS


def test_environment_secrets(secret_env: dict[str, str], guard: Guard) -> None:
    worker = guard.sandbox._worker
    worker.kill()  # make sure the session in use started with the secrets in our environment
    assert wait_until(lambda: not worker.alive())
    code = ("import os\nseen = [repr(dict(os.environ))]\n"
            "for pid in [p for p in os.listdir('/proc') if p.isdigit()] + ['self', 'thread-self']:\n"
            "    try:\n        seen.append(open(f'/proc/{pid}/environ', 'rb').read().decode('latin-1'))\n"
            "    except OSError:\n        pass\n"
            "'\\n'.join(seen)")
    result = guard.attack(code)
    guard.identify()
    assert result.ok and result.value, result
    for key, value in secret_env.items():
        assert key not in result.value and value not in result.value


def test_host_init_and_test_process_environ(secret_env: dict[str, str], guard: Guard) -> None:
    code = (f"out = []\nfor pid in (1, {os.getpid()}):\n    try:\n"
            f"        out.append(open(f'/proc/{{pid}}/environ', 'rb').read())\n"
            f"    except OSError as exc:\n        out.append(type(exc).__name__)\nout")
    result = guard.attack(code)
    assert result.value == "['PermissionError', 'FileNotFoundError']", result
    assert all(value not in result.summary() for value in secret_env.values())


def test_import_host_ponder_and_venv_packages(guard: Guard) -> None:
    code = (f"import sys\nsys.path[:0] = [{str(PACKAGE_DIR.parent)!r}, {str(PACKAGE_DIR)!r}]\n"
            "errors = []\nfor name in ('ponder', 'pydantic', 'langgraph'):\n    try:\n        __import__(name)\n"
            "    except ImportError as exc:\n        errors.append(type(exc).__name__)\nerrors")
    result = guard.attack(code)
    assert result.value == "['ModuleNotFoundError', 'ModuleNotFoundError', 'ModuleNotFoundError']", result


def test_host_processes_are_invisible(guard: Guard) -> None:
    result = guard.attack("import os\nsorted(int(p) for p in os.listdir('/proc') if p.isdigit())")
    visible = eval(result.value)  # noqa: S307 - our own repr of a list of ints
    assert os.getpid() not in visible and len(visible) <= 3, visible
