from __future__ import annotations

import re
import time

import pytest

from ponder.tools.base import Tool, ToolBox, ToolInputError
from ponder.tools.calculator import calculate, calculator_tool

EXACT = [
    # basic arithmetic and precedence
    ("2+2", "4"),
    ("3 * 12 - 5", "31"),
    ("2 + 3 * 4", "14"),
    ("(2 + 3) * 4", "20"),
    ("-2**2", "-4"),
    ("2**-1", "0.5"),
    ("--3", "3"),
    ("+5", "5"),
    ("10/4", "2.5"),
    ("8/2", "4"),
    ("7//2", "3"),
    ("-7//2", "-4"),
    ("-7 % 3", "2"),
    ("17 % 5", "2"),
    ("5.5 % 2", "1.5"),
    ("2^10", "1024"),
    ("2^3^2", "512"),
    ("2**100", "1267650600228229401496703205376"),
    # exact fractions and decimals
    ("1/3+1/6", "0.5"),
    ("0.1+0.2", "0.3"),
    ("0.1*3", "0.3"),
    ("1/3*3", "1"),
    ("1/3", "1/3 ≈ 0.333333333333"),
    ("-1/3", "-1/3 ≈ -0.333333333333"),
    ("22/7", "22/7 ≈ 3.14285714286"),
    ("(1/3)**2", "1/9 ≈ 0.111111111111"),
    ("0.1**3", "0.001"),
    ("1e5", "100000"),
    ("1e-5", "0.00001"),
    ("1.50", "1.5"),
    ("10.0**3", "1000"),
    ("1e308 * 10", "1" + "0" * 309),
    ("-0.5", "-0.5"),
    ("0.0", "0"),
    ("1_000 + 1", "1001"),
    # thousands separators
    ("1,234*2", "2468"),
    ("1,000,000 / 4", "250000"),
    ("sqrt(1,000,000)", "1000"),
    ("max(1,234)", "234"),  # ambiguous inside a multi-argument call: kept as two arguments
    # unicode operators and wrappers small models add
    ("3×4÷2", "6"),
    ("6 − 2", "4"),
    ("2 · 3", "6"),
    ("5²", "25"),
    ("√16", "4"),
    ("2 x 3", "6"),
    ("= 2+3", "5"),
    ("2+3 =", "5"),
    ("2+3?", "5"),
    ("`5*5`", "25"),
    ('"7-2"', "5"),
    ("'7-2'", "5"),
    ("$1,200 * 3", "3600"),
    # roots and powers
    ("sqrt(16)", "4"),
    ("sqrt(1/4)", "0.5"),
    ("sqrt(0.25)", "0.5"),
    ("4**0.5", "2"),
    ("8**(2/3)", "4"),
    ("(-8)**(1/3)", "-2"),
    ("cbrt(27)", "3"),
    ("cbrt(-8)", "-2"),
    ("pow(2, 10)", "1024"),
    # functions
    ("abs(-5)", "5"),
    ("round(2.5)", "3"),
    ("round(-2.5)", "-3"),
    ("round(2.675, 2)", "2.68"),
    ("round(1234.5, -2)", "1200"),
    ("round(sqrt(2), 3)", "1.414"),
    ("floor(-2.5)", "-3"),
    ("ceil(2.1)", "3"),
    ("min(3, 1, 2)", "1"),
    ("max(3, 1.5, 2)", "3"),
    ("sum(1, 2, 3.5)", "6.5"),
    ("max(5)", "5"),
    ("min(1/4)", "0.25"),
    ("factorial(5)", "120"),
    ("factorial(20)", "2432902008176640000"),
    ("gcd(12, 18)", "6"),
    ("lcm(4, 6)", "12"),
    ("comb(52, 5)", "2598960"),
    ("perm(10, 3)", "720"),
    ("hypot(3, 4)", "5"),
    ("log(8, 2)", "3"),
    ("log(1000, 10)", "3"),
    ("log10(1000)", "3"),
    ("log2(1024)", "10"),
    ("ln(e)", "1"),
    ("log(1)", "0"),
    ("exp(0)", "1"),
    ("sin(0)", "0"),
    ("sin(pi)", "0"),
    ("cos(pi)", "-1"),
    ("cos(pi/2)", "0"),
    ("tan(pi/4)", "1"),
    ("degrees(pi)", "180"),
    ("Sqrt(9)", "3"),
    # constants
    ("pi", "3.14159265359"),
    ("e", "2.71828182846"),
    ("tau", "6.28318530718"),
    ("PI * 2", "6.28318530718"),
    ("2*π", "6.28318530718"),
]

APPROX = [
    ("sqrt(2)", 1.41421356237),
    ("2**0.5", 1.41421356237),
    ("exp(1)", 2.71828182846),
    ("log(10)", 2.302585093),
    ("sin(1)", 0.841470984808),
    ("atan(1)*4", 3.14159265359),
    ("cbrt(2)", 1.25992104989),
    ("0.1 + sqrt(2)", 1.51421356237),
    # operands out of float range whose results fit one
    ("sqrt(3 * 10**400)", 1.73205080757e200),
    ("sqrt(1 / 3**1001)", 3 ** -500.5),
    ("cbrt(-3 * 10**400)", -3.10723250595e133),
    ("(2**5000) ** 0.01", 2.0**50),
    ("(1/2**2000) ** 0.001", 2.0**-2),
]

REJECTED = [
    ("1/0", "division by zero"),
    ("5 // 0", "division by zero"),
    ("5 % 0", "division by zero"),
    ("0**-1", "division by zero"),
    ("0 ** -0.7", "division by zero"),
    ("1/(1-1)", "division by zero"),
    ("x + 1", "unknown name 'x'"),
    ("foo(2)", "unknown function 'foo'"),
    ("__import__('os')", "unknown function '__import__'"),
    ("(1).__class__", "attribute access"),
    ("math.sqrt(4)", "attribute access"),
    ("(lambda: 1)()", "lambda"),
    ("[1, 2][0]", "indexing"),
    ("[x for x in (1, 2)]", "comprehensions"),
    ("'abc' * 3", "strings are not supported"),
    ("b'a' + 1", "strings are not supported"),
    ("f'{1}' + 1", "strings"),
    ("1 < 2", "comparisons"),
    ("1 and 2", "and/or"),
    ("1 if 1 else 2", "if/else"),
    ("True + 1", "is not a number"),
    ("None", "is not a number"),
    ("1j", "complex numbers"),
    ("1 << 3", "operator << is not supported"),
    ("5 & 3", "operator & is not supported"),
    ("~5", "operator ~ is not supported"),
    ("round(2.5, ndigits=1)", "keyword arguments"),
    ("max(*(1, 2))", "unpacking"),
    ("1,5", "commas"),
    ("2(3+4)", "implicit multiplication"),
    ("pi(2)", "constant, not a function"),
    ("sqrt", "is a function"),
    ("sqrt(1, 2)", "takes 1 argument"),
    ("round()", "takes 1 or 2 argument"),
    ("", "empty expression"),
    ("   ", "empty expression"),
    ("``", "empty expression"),
    ("2 +* 3", "could not parse"),
    ("(2 + 3", "could not parse"),
    ("2 +", "could not parse"),
    ("what is 2 + 2", "does not support comparisons"),
    ("two plus two", "could not parse"),
    ("x = 5", "could not parse"),
    ("\x00", "could not parse"),
    ("sqrt(-1)", "not a real number"),
    ("(-8)**0.5", "not a real number"),
    ("log(0)", "positive numbers"),
    ("log(-1)", "positive numbers"),
    ("log(8, 1)", "base of a logarithm"),
    ("asin(2)", "domain"),
    ("factorial(-1)", "negative"),
    ("factorial(2.5)", "whole numbers"),
    ("gcd(2.5, 5)", "whole numbers"),
    ("exp(1000)", "too large"),
    ("sqrt(2) * 10**400", "too large"),
    ("exp(700) * exp(700)", "too large"),
    ("1.5 ** 1e6", "too large"),
]

DOS = [
    "10**10**10",
    "9**9**9**9",
    "2**100000000",
    "2**-100000000",
    "(10**100)**(10**100)",
    "99999999999**99999999",
    "factorial(10**6)",
    "factorial(100000)",
    "factorial(factorial(20))",
    "comb(10**9, 10**5)",
    "perm(10**9, 10**5)",
    "comb(10**400, 10**200)",
    "(" * 10000 + "1" + ")" * 10000,
    "(" * 100 + "1" + ")" * 100,  # short enough for the length cap, too deep for the parser
    "[" * 100 + "1" + "]" * 100,
    "-" * 450 + "1",
    "1" * 100_000,
    "-1" * 50_000,
    "1+" * 200_000 + "1",
    "1e999999999",
    "1e-999999999",
    "2**39999 * 2**39999",
    "factorial(1000) ** 10",
    "(2**20000 - 1) / (3**12000 + 1) + (5**8000 - 1) / (7**6000 + 1)",
    "1.0000001 ** 10000000000",
    "(1/3) ** 100000",
    "sqrt(10**100000)",
    "exp(10**400)",
    "lcm(2**20000 - 1, 3**13000 - 1)",
]


@pytest.mark.parametrize(("expression", "expected"), EXACT)
def test_results(expression: str, expected: str) -> None:
    assert calculate(expression) == expected


@pytest.mark.parametrize(("expression", "expected"), APPROX)
def test_float_results(expression: str, expected: float) -> None:
    text = calculate(expression)
    assert float(text) == pytest.approx(expected, rel=1e-10)
    mantissa = text.split("e")[0].replace("-", "").replace(".", "").lstrip("0")
    assert len(mantissa) <= 12  # 12 significant digits, no float noise


@pytest.mark.parametrize(("expression", "message"), REJECTED)
def test_rejected(expression: str, message: str) -> None:
    with pytest.raises(ToolInputError) as info:
        calculate(expression)
    assert message in str(info.value)


#: The messages of the calculator's size guards (input length, nesting, bits of a result, factorial argument, ...).
GUARD = re.compile(r"too (large|small|long|deeply nested|complex)")
#: CPU seconds (of this thread: other processes on a loaded machine do not count) far above what a refusal
#: costs (milliseconds) and far below what computing any of these would (minutes to forever).
CPU_BOUND = 0.5


@pytest.mark.parametrize("expression", DOS, ids=lambda s: s[:40])
def test_denial_of_service_is_refused_by_a_guard_not_computed(expression: str) -> None:
    cpu = time.thread_time()
    with pytest.raises(ToolInputError) as info:
        calculate(expression)
    used = time.thread_time() - cpu
    assert GUARD.search(str(info.value)), info.value  # a size guard refused it, not some error on the way
    assert used < CPU_BOUND, f"{used:.2f} CPU s: the expression was computed, not refused"


def test_big_but_allowed_results_are_computed_and_summarised() -> None:
    cpu = time.thread_time()
    assert calculate("factorial(1000)") == "≈ 4.02387260077e+2567 (2568 digits)"
    assert calculate("2**39999 // 2**39990") == "512"
    assert calculate("factorial(1000) / factorial(998)") == "999000"
    assert calculate("1e10000") == "≈ 1e+10000 (10001 digits)"
    assert calculate("2**-100") == "≈ 7.88860905221e-31"
    assert calculate("1/7") == "1/7 ≈ 0.142857142857"
    assert calculate("(2**70 + 1) / 3") == "≈ 3.93530540239e+20"
    assert time.thread_time() - cpu < CPU_BOUND


def test_long_sums_within_the_length_limit_work() -> None:
    assert calculate("+".join(["1"] * 200)) == "200"
    assert calculate("-" * 200 + "1") == "1"


def test_too_long_and_too_deep_messages() -> None:
    with pytest.raises(ToolInputError, match="too long"):
        calculate("1+" * 300 + "1")
    with pytest.raises(ToolInputError, match="too deeply nested"):
        calculate("(" * 41 + "1" + ")" * 41)
    assert calculate("(" * 40 + "1" + ")" * 40) == "1"
    with pytest.raises(ToolInputError, match="too large"):
        calculate("2**100000000")
    with pytest.raises(ToolInputError, match="factorial argument too large"):
        calculate("factorial(100000)")


def test_rejects_non_text() -> None:
    with pytest.raises(ToolInputError):
        calculate(42)  # type: ignore[arg-type]


def test_tool_object() -> None:
    t = calculator_tool()
    assert isinstance(t, Tool)
    assert t.name == "calculator"
    assert "sqrt" in t.description and "^" in t.description
    assert list(t.args_schema.model_fields) == ["expression"]
    assert t.run(t.args_schema(expression="6*7")) == "42"


def test_through_toolbox() -> None:
    box = ToolBox([calculator_tool()])
    result = box.call("calculator", "2+2")
    assert (result.observation, result.ok) == ("4", True)
    assert box.call("calculator", '{"expression": "3 * 12 - 5"}').observation == "31"
    bad = box.call("calculator", "1/0")
    assert not bad.ok
    assert bad.observation.startswith("Error:")
    assert "division by zero" in bad.observation
    hostile = box.call("calculator", "__import__('os').system('echo hi')")
    assert not hostile.ok and hostile.observation.startswith("Error:")
    assert "calculator: " in box.describe()
