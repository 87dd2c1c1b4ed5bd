"""The E2B sandbox: real SDK paths that need no internet, the result mapping with the remote patched at the
boundary, and a live test that runs only when E2B_API_KEY is set."""

import os

import pytest

pytest.importorskip("e2b_code_interpreter", reason="pip install 'ponder[e2b]'")

from e2b_code_interpreter.models import Execution, ExecutionError, Logs, Result  # noqa: E402

from ponder.core.errors import ConfigError, SandboxError  # noqa: E402
from ponder.core.settings import load_settings  # noqa: E402
from ponder.tools.sandbox import open_sandbox  # noqa: E402
from ponder.tools.sandbox.e2b import E2BSandbox  # noqa: E402


class FakeRemote:
    """Stands in for e2b's Sandbox object: returns real e2b Execution objects."""

    def __init__(self, script):
        self.script = list(script)
        self.killed = False

    def run_code(self, code, timeout=None):
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def kill(self):
        self.killed = True


def test_no_key_fails_fast_with_one_message(monkeypatch):
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="needs E2B_API_KEY"):
        open_sandbox(load_settings(sandbox="e2b"))


def test_rejected_key_is_a_config_error():
    class AuthenticationException(Exception):
        pass

    def factory():
        raise AuthenticationException("Invalid API key")

    with pytest.raises(ConfigError, match="E2B rejected the API key"):
        E2BSandbox(factory=factory).run("1")


@pytest.mark.slow  # the real SDK's connection attempts take seconds
def test_no_network_is_one_clear_sandbox_error(monkeypatch):
    # E2B_DEBUG points the real SDK at localhost, where nothing listens: the same ConnectError path as offline
    monkeypatch.setenv("E2B_API_KEY", "e2b_not_a_real_key")
    monkeypatch.setenv("E2B_DEBUG", "true")
    sandbox = open_sandbox(load_settings(sandbox="e2b"))
    with pytest.raises(SandboxError, match="cannot reach E2B"):
        sandbox.run("1 + 1")
    sandbox.close()


def test_result_mapping():
    ok = Execution(results=[Result(text="42", is_main_result=True)], logs=Logs(stdout=["hi\n"], stderr=["w\n"]))
    tb = "Cell In[2], line 1\n----> 1 1/0\nZeroDivisionError: division by zero"
    err = Execution(error=ExecutionError(name="ZeroDivisionError", value="division by zero", traceback=tb))
    flood = Execution(logs=Logs(stdout=["x" * 5000]))
    remote = FakeRemote([ok, err, flood])
    sandbox = E2BSandbox(output_chars=100, factory=lambda: remote)
    r = sandbox.run("print('hi'); 42")
    assert (r.stdout, r.stderr, r.value, r.ok) == ("hi\n", "w\n", "42", True)
    r = sandbox.run("1/0")
    assert r.error_type == "ZeroDivisionError" and r.error_message == "division by zero" and not r.ok
    assert "----> 1 1/0" in r.traceback
    r = sandbox.run("print('x' * 5000)")
    assert r.truncated and len(r.stdout) < 200
    sandbox.close()
    assert remote.killed


def test_timeout_kills_and_next_run_gets_a_fresh_sandbox():
    class TimeoutException(Exception):
        pass

    remotes = [FakeRemote([TimeoutException("Execution timed out")]),
               FakeRemote([Execution(results=[Result(text="1", is_main_result=True)])])]
    created = []

    def factory():
        created.append(remotes[len(created)])
        return created[-1]

    sandbox = E2BSandbox(factory=factory)
    r = sandbox.run("while True: pass")
    assert r.killed and r.kill_reason == "timeout" and created[0].killed
    assert sandbox.run("1").value == "1" and len(created) == 2 and sandbox.restarts == 1


@pytest.mark.skipif(not os.environ.get("E2B_API_KEY") or os.environ.get("E2B_DEBUG"),
                    reason="live E2B test: needs E2B_API_KEY and the internet")
def test_live_e2b_session_keeps_state():
    with open_sandbox(load_settings(sandbox="e2b")) as sandbox:
        sandbox.run("x = 20")
        assert sandbox.run("x + 22").value == "42"
