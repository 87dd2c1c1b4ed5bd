"""The skip policy (tests/skip_policy.py) on small generated suites, and the real allowlist's entries."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import skip_policy
from allowed_skips import ALLOWED_SKIPS
from skip_policy import AllowedSkip, strict_from_env

REPO = Path(__file__).resolve().parent.parent

CONFTEST = '''
import pytest
import skip_policy

ALLOWED = [
    skip_policy.AllowedSkip("test_cases.py::test_allowed*", r"no API key here", "the test's own allowlist"),
    skip_policy.AllowedSkip("test_optional_module.py", r"could not import 'no_such_module_xyz': .*", "optional"),
]


def pytest_configure(config):
    skip_policy.install(config, ALLOWED)


@pytest.fixture
def needs_tool():
    pytest.skip("bubblewrap is not installed")
'''

CASES = '''
import pytest


def test_allowed():
    pytest.skip("no API key here")


@pytest.mark.parametrize("n", [1])
def test_allowed_with_params(n):
    pytest.skip("no API key here")


def test_allowed_name_other_reason():
    pytest.skip("no API key here, and also no network")


def test_other_name_allowed_reason():
    pytest.skip("no API key here")


@pytest.mark.skipif(True, reason="chromium is not installed")
def test_skipif_marker():
    pass


def test_skip_in_a_fixture(needs_tool):
    pass


@pytest.mark.xfail(reason="a known bug", strict=True)
def test_xfail_is_not_a_skip():
    assert False


def test_passes():
    pass
'''

MODULE_SKIP = '''
import pytest

pytest.importorskip("llama_cpp_not_installed_xyz", reason="llama-cpp-python is not installed")


def test_never_collected():
    pass
'''

OPTIONAL_MODULE = '''
import pytest

pytest.importorskip("no_such_module_xyz")


def test_never_collected():
    pass
'''


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_cases=CASES)
    return pytester


def _strict(monkeypatch: pytest.MonkeyPatch, on: bool) -> None:
    monkeypatch.setenv("PONDER_STRICT_SKIPS", "1" if on else "0")


UNEXPECTED = ["test_allowed_name_other_reason", "test_other_name_allowed_reason", "test_skipif_marker",
              "test_skip_in_a_fixture"]


def test_strict_mode_fails_unexpected_skips_with_their_reason(suite, monkeypatch):
    _strict(monkeypatch, True)
    result = suite.runpytest("-rA")
    result.assert_outcomes(passed=1, skipped=2, failed=2, errors=2, xfailed=1)
    outcomes = {r.head_line: r.outcome for r in result.reprec.getreports("pytest_runtest_logreport")
                if r.when == "call" or r.outcome != "passed"}
    assert outcomes["test_allowed"] == outcomes["test_allowed_with_params[1]"] == "skipped"
    for name in UNEXPECTED:
        assert outcomes[name] == "failed", name  # setup-phase skips become setup errors: failed reports
    for line in ["*unexpected skip in call (strict skip policy*): no API key here, and also no network*",
                 "*unexpected skip in setup (strict skip policy*): chromium is not installed*",
                 "*unexpected skip in setup (strict skip policy*): bubblewrap is not installed*",
                 "skips: 2 allowed, 4 unexpected (strict: unexpected skips fail*"]:
        result.stdout.fnmatch_lines([line])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_without_strict_mode_skips_are_only_counted_and_listed(suite, monkeypatch):
    _strict(monkeypatch, False)
    result = suite.runpytest()
    result.assert_outcomes(passed=1, skipped=6, xfailed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["skips: 2 allowed, 4 unexpected (not strict*"])
    listed = [line for line in result.outlines if line.startswith("unexpected skip: ")]
    assert [line.split("::")[1].split(":")[0] for line in listed] == UNEXPECTED


def test_module_level_importorskip_fails_at_collection_in_strict_mode(pytester, monkeypatch):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_llama_module=MODULE_SKIP, test_optional_module=OPTIONAL_MODULE)
    _strict(monkeypatch, True)
    result = pytester.runpytest()
    result.stdout.fnmatch_lines([
        "*ERROR collecting test_llama_module.py*",
        "unexpected skip at collection (strict skip policy*): llama-cpp-python is not installed",
        "skips: 1 allowed, 1 unexpected*",
    ])
    assert "ERROR collecting test_optional_module.py" not in result.stdout.str()  # on the test's allowlist
    assert result.ret == pytest.ExitCode.INTERRUPTED  # pytest stops after collection errors

    _strict(monkeypatch, False)
    relaxed = pytester.runpytest()
    relaxed.assert_outcomes(skipped=2)
    relaxed.stdout.fnmatch_lines(["skips: 1 allowed, 1 unexpected (not strict*",
                                  "unexpected skip: test_llama_module.py: llama-cpp-python is not installed"])
    assert relaxed.ret == pytest.ExitCode.NO_TESTS_COLLECTED


@pytest.mark.parametrize(("env", "strict"), [
    ({}, False),
    ({"CI": "true"}, True),
    ({"CI": "1"}, True),
    ({"CI": "false"}, False),
    ({"CI": ""}, False),
    ({"PONDER_STRICT_SKIPS": "1"}, True),
    ({"CI": "true", "PONDER_STRICT_SKIPS": "0"}, False),
    ({"CI": "true", "PONDER_STRICT_SKIPS": ""}, True),
])
def test_strictness_from_the_environment(env, strict):
    assert strict_from_env(env) is strict


def test_node_patterns_match_whole_ids_and_only_star_is_special():
    entry = AllowedSkip("tests/a.py::test_x[*]", r"no key", "why")
    assert entry.matches("tests/a.py::test_x[1-2]", "no key")
    assert not entry.matches("tests/a.py::test_xy", "no key")  # '[' is literal, not a character class
    assert not entry.matches("tests/a.py::test_x[1]", "no key at all")  # the reason must match in full
    assert not entry.matches("other/tests/a.py::test_x[1]", "no key")  # the node id too


def test_the_makefile_test_target_is_strict():
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert f"{skip_policy.STRICT_ENV}=1" in recipe and "pytest" in recipe


@pytest.mark.parametrize("entry", ALLOWED_SKIPS, ids=lambda e: e.node)
def test_every_allowlist_entry_names_existing_tests_and_a_reason(entry):
    path, _, pattern = entry.node.partition("::")
    source = (REPO / path).read_text()
    names = re.findall(r"^def (test_\w+)", source, flags=re.MULTILINE)
    glob = re.compile(".*".join(map(re.escape, pattern.split("*"))))
    assert any(glob.fullmatch(name) for name in names), f"no test matches {entry.node}"
    assert len(entry.why) > 40
