"""Trusted grading (``tools/grading``): definitions kept, plain values, the strict verdict, sandbox runs."""

from __future__ import annotations

import math

import pytest

from ponder.tools.grading import SourceError, build_program, grade, keep_definitions, parse_verdict
from ponder.tools.grading._codec import PlainError, check_plain, decode_tokens, encode_tokens
from ponder.tools.sandbox.local import LocalSandbox

MARKER = "0123456789abcdef" * 2


# ---------------------------------------------------------------- definitions only

def test_keep_definitions_drops_top_level_statements():
    source = ("import sys\nfrom os import path\nX = 1\na, b = 2, 3\nY: int = 4\n"
              "def f(x):\n    return x\nasync def g():\n    pass\nclass C:\n    pass\n"
              "sys.exit(0)\nprint(f(1))\nif True:\n    raise SystemExit\nsys.modules['x'] = 1\nC.attr = 2\n"
              "try:\n    pass\nfinally:\n    exit()\nwith open('x'):\n    pass\nfor i in []:\n    pass\n")
    kept = keep_definitions(source)
    assert kept == ("import sys\nfrom os import path\nX = 1\na, b = (2, 3)\nY: int = 4\n\n"
                    "def f(x):\n    return x\n\nasync def g():\n    pass\n\nclass C:\n    pass\n")


@pytest.mark.parametrize(("source", "message"), [("def (", "SyntaxError"), ("print(1)\n", "defines nothing"),
                                                 ("x = 1\n" * 40_000, "too long")])
def test_keep_definitions_rejects(source, message):
    with pytest.raises(SourceError, match=message):
        keep_definitions(source)


# ---------------------------------------------------------------- plain values

PLAIN = [None, True, False, 0, -(10**40), 2.5, math.inf, -math.inf, 1 + 2j, "", "é\x00\ud800", b"\x00\xff",
         [], (), {}, set(), frozenset(), [1, (2, "3"), {"k": [None]}, {4}, frozenset({b"x"})], {(1, 2): {3: 4.0}}]


@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_plain_values_round_trip_with_exact_types(value):
    tokens: list = []
    encode_tokens(value, tokens)
    back = decode_tokens([t.encode("ascii") for t in tokens])
    assert back == value and type(back) is type(value)
    check_plain(value)


def test_nan_round_trips():
    tokens: list = []
    encode_tokens(math.nan, tokens)
    assert math.isnan(decode_tokens([t.encode() for t in tokens]))


class MyList(list):
    def __eq__(self, other):
        return True


class MyStr(str):
    pass


@pytest.mark.parametrize("value", [MyList(), MyStr("a"), True.__class__, object(), [MyStr("x")], {1: MyList()},
                                   range(3), iter([])], ids=repr)
def test_non_plain_values_are_refused(value):
    with pytest.raises(PlainError):
        encode_tokens(value, [])
    with pytest.raises(PlainError):
        check_plain(value)


def test_too_deep_values_are_refused():
    value: list = []
    for _ in range(100):
        value = [value]
    with pytest.raises(PlainError):
        check_plain(value)
    with pytest.raises(PlainError):
        decode_tokens([b"l1"] * 100 + [b"l0"])


@pytest.mark.parametrize("tokens", [[], [b"N", b"N"], [b"l2", b"N"], [b"i"], [b"ixyz"], [b"s0"], [b"q"],
                                    [b"d1", b"l0", b"N"], [b"f" + b"1" * 50], [b"l-1"], [b"T1"]])
def test_malformed_tokens_are_refused(tokens):
    with pytest.raises(PlainError):
        decode_tokens(tokens)


# ---------------------------------------------------------------- the verdict

def test_parse_verdict_is_strict():
    good = f"'ponder-grade:{MARKER}:PF:3:.{b'why'.hex()}'"
    outcomes, calls = parse_verdict(good, MARKER, 2)
    assert [o.passed for o in outcomes] == [True, False] and outcomes[1].detail == "why" and calls == 3
    for bad in (None, "", good[1:-1], good.replace("PF", "PP")[:-1] + "x'", good + " ", good.replace(MARKER, "f" * 32),
                f"'ponder-grade:{MARKER}:PF:3:'", f'"ponder-grade:{MARKER}:PF:3:."', "'x' " + good):
        assert parse_verdict(bad, MARKER, 2) is None, bad
    assert parse_verdict(good, MARKER, 3) is None


def test_build_program_embeds_everything_as_literals():
    program = build_program(MARKER, "def f():\n    return 1\n", ["assert f() == 1"], "import math\n", ["f"])
    assert program.rstrip().splitlines()[-1].startswith(f"grade({MARKER!r}, ")
    compile(program, "<program>", "exec")


def test_grade_needs_tests(executor):
    with pytest.raises(ValueError, match="at least one test"):
        grade(executor, "def f(): pass", [])


# ---------------------------------------------------------------- in a sandbox

@pytest.fixture(scope="module")
def executor():
    ex = LocalSandbox(timeout=5.0)
    yield ex
    ex.close()


def test_grade_right_wrong_and_error(executor):
    tests = ["assert f(1) == 2", "assert f(-1) == 0", "assert f([1]) == [1, 1]"]
    right = grade(executor, "def f(x):\n    return x * 2 if isinstance(x, list) else x + 1\n", tests)
    assert right.passed and right.signature == "PPP" and right.calls == 3 and right.error is None
    wrong = grade(executor, "def f(x):\n    return abs(x) + 1\n", tests)
    assert wrong.signature == "PFF" and not wrong.passed
    assert "assert f(-1) == 0" in wrong.outcomes[1].detail and wrong.outcomes[1].detail.endswith("AssertionError")
    assert "TypeError" in wrong.outcomes[2].detail  # abs([1]) raised in the candidate, re-raised here
    broken = grade(executor, "def f(x):\n    return x\nY = 1 / 0\n", tests)
    assert broken.signature == "FFF" and "ZeroDivisionError" in broken.summary()


def test_exceptions_the_tests_expect_are_re_raised(executor):
    test = "try:\n    f(0)\nexcept ValueError as e:\n    assert str(e) == 'zero'\nelse:\n    raise AssertionError"
    assert grade(executor, "def f(x):\n    raise ValueError('zero')\n", [test]).passed
    assert not grade(executor, "def f(x):\n    raise KeyError('zero')\n", [test]).passed


def test_each_test_gets_a_fresh_candidate(executor):
    code = "STATE = []\ndef f():\n    STATE.append(1)\n    return len(STATE)\n"
    assert grade(executor, code, ["assert f() == 1", "assert f() == 1"]).signature == "PP"


def test_a_syntax_error_fails_without_running(executor):
    report = grade(executor, "def f(:\n", ["assert f()"])
    assert not report.passed and report.result is None and "SyntaxError" in report.error


@pytest.mark.slow  # waits out two 1 s sandbox timeouts
def test_a_hanging_test_fails_alone_in_self_consistency_keys():
    from ponder.graphs.self_consistency.normalize import NormalizeContext, answer_key

    ctx = NormalizeContext(tests=["assert f(1) == 2", "assert f(-1) == 0"],
                           executor_factory=lambda: LocalSandbox(timeout=1.0))
    code = "def f(x):\n    while x < 0:\n        pass\n    return x + 1\n"
    assert answer_key(code, "code", ctx) == "tests:PF"


def test_the_candidate_cannot_replace_the_setups_names(executor):
    setup = "def check(f):\n    assert f(1) == 2\n"
    cheat = "def check(f):\n    return None\ndef helper():\n    return 1\ndef f(x):\n    return 0\n"
    report = grade(executor, cheat, ["check(f)"], setup=setup)
    assert not report.passed and "assert f(1) == 2" in report.summary()
    assert grade(executor, "def f(x):\n    return x + 1\n", ["check(f)"], setup=setup).passed
