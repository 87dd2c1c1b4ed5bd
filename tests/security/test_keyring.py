"""Attacks on the host's kernel keyrings: secrets in a login session keyring, keys planted for the host or later runs.

Each test starts a host process that joins a login-style session keyring (``KEYCTL_JOIN_SESSION_KEYRING``, what
``pam_keyinit`` sets up for every ssh/PAM login) holding a secret ``user`` key, and runs sandboxes from there:
the sandbox inherits that keyring unless the worker replaces it. The attacks know the key's serial and
description (the strongest attacker: ``/proc/keys`` may leak both). Host unharmed: the secret is intact, the
host's keyrings hold nothing the sandbox added, and the test's own key in root's user keyring is removed.
"""

from __future__ import annotations

import json
import uuid

import pytest

from .conftest import SYSCALL_PRELUDE, SYSCALLS, run_host

pytestmark = pytest.mark.security

KEY_SPEC_SESSION, KEY_SPEC_USER, KEY_SPEC_USER_SESSION = -3, -4, -5

#: The host side, run in a fresh process: join a named session keyring, store the secret, run each program of
#: the spec in its own sandbox (``LocalSandbox`` or ``ponder sandbox exec``), then report what the host's keyrings hold.
HOST = r'''
import ctypes, json, os, subprocess, sys
from ponder.tools.sandbox.local import LocalSandbox

spec = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = spec["nr"]

def keyctl(*args):
    res = libc.syscall(NR["keyctl"], *args)
    if res < 0:
        raise OSError(ctypes.get_errno(), f"keyctl{args[:1]}")
    return res

def describe(serial):
    buf = ctypes.create_string_buffer(512)
    return buf.value.decode() if keyctl(6, serial, buf, 512) >= 0 else ""  # KEYCTL_DESCRIBE

def members(ring):
    buf = (ctypes.c_int32 * 512)()
    n = keyctl(11, ring, buf, ctypes.sizeof(buf))  # KEYCTL_READ of a keyring: its keys' serials
    return [buf[i] for i in range(min(n // 4, 512))]

def read(serial):
    buf = ctypes.create_string_buffer(512)
    size = keyctl(11, serial, buf, 512)
    return buf.raw[:size].decode()

session = keyctl(1, spec["ring"].encode())  # KEYCTL_JOIN_SESSION_KEYRING: a named login-style keyring
if spec["link_user"]:
    keyctl(8, -4, -3)  # KEYCTL_LINK @u into @s, as pam_keyinit does
secret = spec["secret"].encode()
key = libc.syscall(NR["add_key"], b"user", spec["desc"].encode(), secret, len(secret), spec["where"])
if key < 0:
    raise OSError(ctypes.get_errno(), "add_key")
if spec["perm"]:
    keyctl(5, key, spec["perm"])  # KEYCTL_SETPERM
out = {"runs": []}
try:
    for code in spec["codes"]:
        code = code.replace("SESSION_SERIAL", str(session)).replace("KEY_SERIAL", str(key))
        if spec["executor"] == "cli":  # a separate `ponder sandbox exec` process in the same login session
            env = {**os.environ, "PONDER_SANDBOX_ISOLATION": "bwrap", "PONDER_CONFIG": "/nonexistent.toml"}
            cli = subprocess.run([os.path.join(sys.prefix, "bin", "ponder"), "sandbox", "exec", "--json", code],
                                 capture_output=True, text=True, timeout=60, env=env)
            out["runs"].append(json.loads(cli.stdout.strip().splitlines()[-1]))
            out["isolation"] = "bwrap"  # asked for by name: anything else would have been an error
            continue
        box = LocalSandbox(timeout=5, memory_mb=256, output_chars=4000, isolation=spec["isolation"])
        try:
            out["runs"].append(box.run(code).model_dump(mode="json"))
        finally:
            box.close()
        out["isolation"] = box.isolation_in_use
    out["secret_intact"] = read(key) == spec["secret"]
    rings = {"session": -3, "user": -4, "user-session": -5}
    out["host_keys"] = {name: [describe(k) for k in members(ring)] for name, ring in rings.items()}
finally:
    for ring in (-4, -5):  # never leave the test's or a planted key in root's persistent keyrings
        for k in members(ring):
            if "ponder-sec" in describe(k):
                keyctl(21, k)  # KEYCTL_INVALIDATE
print(json.dumps(out))
'''


def attack(codes: list[str], executor: str = "session", where: int = KEY_SPEC_SESSION, perm: int = 0,
           link_user: bool = False, isolation: str = "bwrap") -> tuple[dict, str]:
    """Run each of ``codes`` in its own sandbox from a host process in a login keyring: ``(report, desc)``.

    In the codes ``DESC``, ``RING`` and ``PLANTED`` become the secret key's description, the host keyring's
    name and a description for keys the sandbox plants (bytes literals); the host process fills in
    ``KEY_SERIAL`` and ``SESSION_SERIAL``. Checks that the run used bwrap, that the secret is intact and
    that it appears in no run's result.
    """
    tag = uuid.uuid4().hex[:12]
    desc, secret, ring = f"ponder-sec-login-{tag}", f"krb5-ticket-{uuid.uuid4().hex}", f"ponder-sec-ring-{tag}"
    names = {"DESC": desc, "RING": ring, "PLANTED": f"ponder-sec-planted-{tag}"}
    for name, value in names.items():
        codes = [c.replace(name, repr(value.encode())) for c in codes]
    spec = {"nr": SYSCALLS, "ring": ring, "desc": desc, "secret": secret, "where": where, "perm": perm,
            "link_user": link_user, "executor": executor, "codes": codes, "isolation": isolation}
    proc = run_host(HOST, json.dumps(spec))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["isolation"] == isolation, report
    assert report["secret_intact"], report
    for run in report["runs"]:
        assert secret not in json.dumps(run), run  # the secret reached the sandbox
        assert run["error_type"] is None and not run["killed"], run  # the attack code itself ran to its end
    return report, desc


def host_holds_only_its_secret(report: dict, desc: str) -> None:
    """The host's keyrings hold the test's secret and nothing the sandbox added."""
    everything = [d for ring in report["host_keys"].values() for d in ring]
    assert not [d for d in everything if "ponder-sec-planted" in d], report["host_keys"]
    assert any(desc in d for d in everything), report["host_keys"]  # the check itself can see keys


def all_failed(value: str) -> None:
    """Every syscall result in ``value`` failed (a negative errno, ``None``, ``False`` or empty bytes)."""
    parsed = eval(value)  # noqa: S307 - the repr of tuples/lists of ints, bools, bytes and None our code built
    flat, todo = [], [parsed]
    while todo:
        item = todo.pop()
        if isinstance(item, (list, tuple)):
            todo.extend(item)
        else:
            flat.append(item)
    assert all(x is None or x is False or (isinstance(x, int) and x < 0) or x == b"" for x in flat), parsed


def read(serial: str) -> str:
    """Code that reads key ``serial`` (``KEYCTL_READ``) when it is a key: ``(result, payload)``."""
    return (f"buf = ctypes.create_string_buffer(512)\n"
            f"n = call('keyctl', 11, {serial}, buf, 512) if {serial} > 0 else None\n"
            f"found = found + [n, buf.raw[:max(n or 0, 0)]]\n")


ATTACKS = {
    "read-by-serial": "found = []\n" + read("KEY_SERIAL"),
    "describe": ("found = []\nfor serial in (KEY_SERIAL, SESSION_SERIAL, -3):\n"
                 "    buf = ctypes.create_string_buffer(512)\n"
                 "    n = call('keyctl', 6, serial, buf, 512)\n"  # KEYCTL_DESCRIBE
                 "    found += [n, buf.raw[:max(n, 0)]]\n"),
    "request_key": "found = []\nserial = call('request_key', b'user', DESC, None, 0)\n" + read("serial"),
    "search": ("found = []\nfor ring in (-3, -4, -5, SESSION_SERIAL):\n"
               "    serial = call('keyctl', 10, ring, b'user', DESC, 0)\n"  # KEYCTL_SEARCH
               + "".join("    " + line + "\n" for line in read("serial").splitlines())),
    "join-by-name": ("found = [call('keyctl', 1, RING)]\n"  # KEYCTL_JOIN_SESSION_KEYRING by the host's name
                     "serial = call('keyctl', 10, -3, b'user', DESC, 0)\n" + read("serial")),
    "session-serial": ("found = []\nring = SESSION_SERIAL\nbuf = (ctypes.c_int32 * 64)()\n"  # list the host ring
                       "n = call('keyctl', 11, ring, buf, 256)\nfound += [n]\n"
                       "for serial in list(buf)[:max(n, 0) // 4]:\n"
                       + "".join("    " + line + "\n" for line in read("serial").splitlines())),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_secret_of_the_login_session_keyring(name: str) -> None:
    report, desc = attack([SYSCALL_PRELUDE + ATTACKS[name] + "found\n"])
    all_failed(report["runs"][0]["value"])
    host_holds_only_its_secret(report, desc)


def test_proc_keys_show_nothing_of_the_host() -> None:
    code = ("out = []\nfor name in ('/proc/keys', '/proc/key-users'):\n    try:\n"
            "        out.append(open(name).read())\n    except OSError as exc:\n"
            "        out.append(type(exc).__name__)\nout\n")
    report, desc = attack([code])
    value = report["runs"][0]["value"]
    assert "ponder-sec" not in value and "_uid" not in value and "keyring" not in value, value
    host_holds_only_its_secret(report, desc)


def test_secret_through_ponder_sandbox_exec() -> None:
    report, desc = attack([SYSCALL_PRELUDE + ATTACKS["search"] + "found\n"], executor="cli")
    all_failed(report["runs"][0]["value"])
    host_holds_only_its_secret(report, desc)


def test_world_readable_secret() -> None:
    """A key any uid may read (``0x3f3f3f3f``): a fresh keyring alone does not protect it, denying keyctl does."""
    report, desc = attack([SYSCALL_PRELUDE + ATTACKS["read-by-serial"] + "found\n"], perm=0x3F3F3F3F)
    all_failed(report["runs"][0]["value"])
    host_holds_only_its_secret(report, desc)


def test_secret_in_the_user_keyring_linked_from_the_login_session() -> None:
    """pam_keyinit links root's user keyring (``@u``) into the session keyring: possessing one reaches both."""
    report, desc = attack([SYSCALL_PRELUDE + ATTACKS["search"] + "found\n"], where=KEY_SPEC_USER, link_user=True)
    all_failed(report["runs"][0]["value"])
    host_holds_only_its_secret(report, desc)


PLANT = SYSCALL_PRELUDE + (
    "found = [call('add_key', b'user', PLANTED, b'from the sandbox', 16, ring)\n"
    "         for ring in (-3, -4, -5, SESSION_SERIAL)]\n"  # session, user, user-session, the host's by serial
    "mine = call('add_key', b'user', PLANTED, b'x', 1, -2)\n"  # the process keyring, then linked to the host's
    "found += [mine, call('keyctl', 8, mine, SESSION_SERIAL) if mine > 0 else None]\n"  # KEYCTL_LINK
    "persistent = call('keyctl', 22, -1, -3)\n"  # KEYCTL_GET_PERSISTENT: a keyring that outlives the session
    "found += [persistent, call('add_key', b'user', PLANTED, b'x', 1, persistent) if persistent > 0 else None]\n"
    "found\n")
FIND = SYSCALL_PRELUDE + (
    "found = [call('keyctl', 10, ring, b'user', PLANTED, 0) for ring in (-3, -4, -5)]\n"
    "found.append(call('request_key', b'user', PLANTED, None, 0))\n"
    "persistent = call('keyctl', 22, -1, -3)\n"
    "found.append(call('keyctl', 10, persistent, b'user', PLANTED, 0) if persistent > 0 else None)\n"
    "try:\n    text = open('/proc/keys').read()\nexcept OSError:\n    text = ''\n"
    "found, PLANTED.decode() in text\n")


def test_planted_keys_do_not_reach_the_host() -> None:
    report, desc = attack([PLANT])
    all_failed(report["runs"][0]["value"])
    host_holds_only_its_secret(report, desc)


def test_planted_keys_do_not_reach_a_later_sandbox() -> None:
    report, desc = attack([PLANT, FIND])
    all_failed(report["runs"][0]["value"])
    all_failed(report["runs"][1]["value"])
    host_holds_only_its_secret(report, desc)


@pytest.mark.parametrize("isolation", ["unshare", "none"])
def test_secret_under_the_weak_modes(isolation: str) -> None:
    """Asked for by name, ``unshare``/``none`` isolate less, but the worker still leaves the login keyring."""
    report, desc = attack([SYSCALL_PRELUDE + ATTACKS["search"] + "found\n"], isolation=isolation)
    all_failed(report["runs"][0]["value"])
    host_holds_only_its_secret(report, desc)
