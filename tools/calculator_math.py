"""The calculator's numbers: exact arithmetic, the function table and how results are rendered.

Values are ``int`` and :class:`~fractions.Fraction` where possible, falling back to ``float`` for
irrational functions. Every operation is bounded *before* it computes (bits of any exact value, powers,
roots, factorials, products), so hostile input is refused within milliseconds; math errors surface as
:class:`~ponder.tools.base.ToolInputError`. Parsing the expression and walking its syntax tree live in
:mod:`ponder.tools.calculator`.

Output format: integers in full (``1024``; beyond 1000 digits ``≈ 4.02387260077e+2567 (2568 digits)``),
exact terminating decimals exactly (``0.3``, ``-2.125``), other fractions as ``1/3 ≈ 0.333333333333``
(only ``≈ ...`` when its terms are huge), floats with 12 significant digits (``1.41421356237``).
"""

from __future__ import annotations

import ast
import functools
import math
import operator
from collections.abc import Callable
from fractions import Fraction

from ponder.tools.base import ToolInputError

__all__ = [
    "BINARY_OPS", "CONSTANTS", "FUNCTIONS", "MAX_BITS", "MAX_FACTORIAL", "MAX_FULL_DIGITS", "MAX_ROOT",
    "MULTI_ARG_FUNCTIONS", "SIG_DIGITS", "TOO_LARGE", "Number", "binary_op", "format_number", "normalize",
]

Number = int | Fraction | float

MAX_BITS = 40_000  # numerator + denominator bits of any exact value (~12,000 digits)
MAX_FACTORIAL = 1000
MAX_ROOT = 64  # largest q tried for an exact a ** (p/q)
MAX_FULL_DIGITS = 1000  # longer integers print in scientific notation
SIG_DIGITS = 12
TOO_LARGE = "the result is too large (more than about 12,000 digits)"

CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}


def _bits(x: Number) -> int:
    if isinstance(x, Fraction):
        return x.numerator.bit_length() + x.denominator.bit_length()
    return x.bit_length() if isinstance(x, int) else 0


def normalize(x: Number) -> Number:
    """Collapse whole fractions to int; refuse oversized or non-finite results.

    Args:
        x: A freshly computed value.

    Returns:
        ``x``, with a whole :class:`~fractions.Fraction` turned into an ``int``.

    Raises:
        ToolInputError: If ``x`` is NaN or infinite, or an exact value over ``MAX_BITS`` bits.
    """
    if isinstance(x, float):
        if math.isnan(x):
            raise ToolInputError("the result is undefined (not a number)")
        if math.isinf(x):
            raise ToolInputError("the result is too large (overflow)")
        return x
    if isinstance(x, Fraction) and x.denominator == 1:
        x = x.numerator
    if _bits(x) > MAX_BITS:
        raise ToolInputError(TOO_LARGE)
    return x


def _iroot(n: int, q: int) -> int:
    """Return the floor of the q-th root of ``n >= 0`` (Newton's method)."""
    if n < 2:
        return n
    shift = max(0, (n.bit_length() - 900) // q)  # a float estimate from the top bits, rounded up
    x = (int((n >> (q * shift)) ** (1 / q) * (1 + 1e-12)) + 2) << shift
    while True:
        y = ((q - 1) * x + n // x ** (q - 1)) // q
        if y >= x:
            return x
        x = y


def _exact_root(x: Fraction, q: int) -> Fraction | None:
    """Return the q-th root of x when it is rational, else None."""
    if q > MAX_ROOT or (x < 0 and q % 2 == 0):
        return None
    sign, a = (-1, -x) if x < 0 else (1, x)
    num, den = _iroot(a.numerator, q), _iroot(a.denominator, q)
    return sign * Fraction(num, den) if num**q == a.numerator and den**q == a.denominator else None


def _as_int(name: str, x: Number) -> int:
    if isinstance(x, float) and x.is_integer():
        return int(x)
    if isinstance(x, int):
        return x
    raise ToolInputError(f"{name} needs whole numbers, got {format_number(x)}")


def _float(x: Number) -> float:
    try:
        return float(x)
    except OverflowError:
        raise ToolInputError("a number is too large to compute with") from None


def _float_power(a: Number, b: Number) -> float:
    exp = _float(b)
    if a < 0 and not exp.is_integer():
        raise ToolInputError("a negative number to a fractional power is not a real number")
    if a == 0 and exp < 0:
        raise ToolInputError("division by zero (0 to a negative power)")
    if isinstance(a, float) or a == 0 or 1e-300 < abs(a) < 1e300:
        result = math.pow(float(a), exp)
    else:  # a is out of float range, but the result may fit one: (2**5000)**0.01
        result = math.exp(_log(abs(a)) * exp) * (-1 if a < 0 and exp % 2 else 1)
    if result == 0 and a != 0:
        raise ToolInputError("the result is too small to compute (underflow)")
    return normalize(result)


def _power(a: Number, b: Number) -> Number:
    if isinstance(a, float):
        return _float_power(a, b)
    fa = Fraction(a)
    if isinstance(b, int):
        if b == 0 or fa in (0, 1):
            return normalize(fa**b)
        if fa == -1:
            return 1 if b % 2 == 0 else -1
        # |num| or den is >= 2, so the result has at least |b| bits: estimate before computing.
        if abs(b) <= MAX_BITS and abs(b) * math.log2(max(abs(fa.numerator), fa.denominator)) <= MAX_BITS:
            return normalize(fa**b)
        return _float_power(a, b)  # too big to be exact; a float may still hold it (1.0001**100000)
    if isinstance(b, Fraction) and (root := _exact_root(fa, b.denominator)) is not None:
        return _power(root, b.numerator)  # 4**0.5, (-8)**(1/3)
    return _float_power(a, b)


# ast operator class -> its exact implementation (use through binary_op, which bounds sizes)
BINARY_OPS: dict[type, Callable[[Number, Number], Number]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: _power,
}


def binary_op(op: type, a: Number, b: Number) -> Number:
    """Apply an arithmetic operator exactly where possible, refusing oversized products first.

    Args:
        op: The :mod:`ast` operator class, one of the keys of :data:`BINARY_OPS`.
        a: The left operand.
        b: The right operand.

    Returns:
        The normalized result; ``int / int`` is an exact :class:`~fractions.Fraction`.

    Raises:
        ToolInputError: If the result would be too large or is not a finite real number.
        ZeroDivisionError: On division (or modulo) by zero; the caller turns it into a message.
        OverflowError: If a float operation overflows; likewise turned into a message by the caller.
    """
    exact = not isinstance(a, float) and not isinstance(b, float)
    if exact and op in (ast.Mult, ast.Div) and _bits(a) + _bits(b) > MAX_BITS + 64:
        raise ToolInputError(TOO_LARGE)  # the product would be too big: refuse before computing it
    if exact and op is ast.Div:
        a = Fraction(a)  # int / int is a Fraction, not a float
    return normalize(BINARY_OPS[op](a, b))


def _log(x: Number, base: Number | None = None) -> Number:
    if x <= 0:
        raise ToolInputError("log is only defined for positive numbers")
    f = Fraction(x) if not isinstance(x, float) else None
    ln = math.log(x) if f is None else math.log(f.numerator) - math.log(f.denominator)  # huge ints work
    if base is None:
        return ln
    if base <= 0 or base == 1:
        raise ToolInputError("the base of a logarithm must be positive and not 1")
    result = ln / _log(base)
    k = round(result)
    if not isinstance(x, float) and not isinstance(base, float) and abs(result - k) < 1e-9:
        if abs(k) * _bits(base) <= MAX_BITS and Fraction(base) ** k == x:
            return k  # exact: log(1000, 10) is 3, not 2.9999999999999996
    return result


def _root(q: int) -> Callable[[Number], Number]:
    def root(x: Number) -> Number:
        if q == 2 and x < 0:
            raise ToolInputError("sqrt of a negative number is not a real number")
        if not isinstance(x, float) and (exact := _exact_root(Fraction(x), q)) is not None:
            return exact
        if x == 0 or 1e-300 < abs(x) < 1e300:
            return math.sqrt(x) if q == 2 else math.cbrt(x)
        return math.copysign(math.exp(_log(abs(x)) / q), -1 if x < 0 else 1)  # x is out of float range

    return root


def _trig(fn: Callable[[float], float]) -> Callable[[Number], float]:
    def apply(x: Number) -> float:
        value = fn(_float(x))
        return 0.0 if abs(value) < 1e-15 and abs(x) > 1e-6 else value  # sin(pi) is 0, not 1.2e-16

    return apply


def _round(x: Number, ndigits: Number = 0) -> Number:
    """Round half away from zero (school rounding) on the decimal value the user sees."""
    nd = _as_int("round", ndigits)
    if abs(nd) > 100:
        raise ToolInputError("round: the number of digits must be between -100 and 100")
    q = Fraction(repr(x)) if isinstance(x, float) else Fraction(x)
    scale = Fraction(10) ** nd
    r = math.floor(abs(q) * scale + Fraction(1, 2))
    return Fraction(r if q >= 0 else -r) / scale


def _factorial(x: Number) -> int:
    n = _as_int("factorial", x)
    if n < 0:
        raise ToolInputError("factorial of a negative number is undefined")
    if n > MAX_FACTORIAL:
        raise ToolInputError(f"factorial argument too large (the limit is {MAX_FACTORIAL})")
    return math.factorial(n)


def _comb_perm(name: str) -> Callable[[Number, Number], int]:
    def apply(n_: Number, k_: Number) -> int:
        n, k = _as_int(name, n_), _as_int(name, k_)
        if n < 0 or k < 0:
            raise ToolInputError(f"{name} needs non-negative whole numbers")
        if k > n:
            return 0
        small = min(k, n - k) if name == "comb" else k
        if small and small * math.log2(n) > MAX_BITS:  # both are at most n**small
            raise ToolInputError(f"{name}: {TOO_LARGE}")
        return math.comb(n, k) if name == "comb" else math.perm(n, k)

    return apply


# name -> (function, least args, most args or None for any number)
FUNCTIONS: dict[str, tuple[Callable[..., Number], int, int | None]] = {
    "sqrt": (_root(2), 1, 1), "cbrt": (_root(3), 1, 1), "abs": (abs, 1, 1), "round": (_round, 1, 2),
    "floor": (math.floor, 1, 1), "ceil": (math.ceil, 1, 1), "min": (lambda *xs: min(xs), 1, None),
    "max": (lambda *xs: max(xs), 1, None),
    "sum": (lambda *xs: functools.reduce(functools.partial(binary_op, ast.Add), xs, 0), 0, None),
    "log": (_log, 1, 2), "ln": (_log, 1, 1), "log10": (lambda x: _log(x, 10), 1, 1),
    "log2": (lambda x: _log(x, 2), 1, 1),
    "exp": (lambda x: math.exp(_float(x)), 1, 1), "sin": (_trig(math.sin), 1, 1),
    "cos": (_trig(math.cos), 1, 1), "tan": (_trig(math.tan), 1, 1), "asin": (_trig(math.asin), 1, 1),
    "acos": (_trig(math.acos), 1, 1), "atan": (_trig(math.atan), 1, 1),
    "atan2": (lambda y, x: math.atan2(_float(y), _float(x)), 2, 2),
    "radians": (lambda x: math.radians(_float(x)), 1, 1),
    "degrees": (lambda x: math.degrees(_float(x)), 1, 1),
    "factorial": (_factorial, 1, 1), "gcd": (lambda *xs: math.gcd(*(_as_int("gcd", x) for x in xs)), 1, None),
    "lcm": (lambda *xs: math.lcm(*(_as_int("lcm", x) for x in xs)), 1, None),
    "comb": (_comb_perm("comb"), 2, 2), "perm": (_comb_perm("perm"), 2, 2),
    "hypot": (lambda *xs: math.hypot(*map(_float, xs)), 1, None),
    "pow": (_power, 2, 2),
}
# functions that may take more than one argument, so a comma inside their call can separate arguments
MULTI_ARG_FUNCTIONS = {name for name, (_, _, most) in FUNCTIONS.items() if most != 1}


def _sci(x: Fraction) -> str:
    """Scientific notation with SIG_DIGITS significant digits, exact for any magnitude."""
    a = abs(x)
    e = math.floor(math.log10(a.numerator) - math.log10(a.denominator))
    m = 0
    for _ in range(4):  # the float estimate of the exponent may be off by one
        k = SIG_DIGITS - 1 - e
        num, den = (a.numerator * 10**k, a.denominator) if k >= 0 else (a.numerator, a.denominator * 10**-k)
        m = (2 * num + den) // (2 * den)  # rounded; integer arithmetic avoids Fraction's gcd
        if m >= 10**SIG_DIGITS:
            e += 1
        elif m < 10 ** (SIG_DIGITS - 1):
            e -= 1
        else:
            break
    digits = str(m).rstrip("0") or "0"
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{'-' if x < 0 else ''}{mantissa}e{'+' if e >= 0 else '-'}{abs(e):02d}"


def _approx(x: Fraction) -> str:
    try:
        f = float(x)
    except OverflowError:
        return _sci(x)
    return f"{f:.{SIG_DIGITS}g}" if 1e-300 < abs(f) < 1e300 else _sci(x)


def format_number(x: Number) -> str:
    """Render a value for the model.

    Args:
        x: A normalized value.

    Returns:
        The text described in the module docstring, e.g. ``"8"``, ``"0.3"`` or ``"1/3 ≈ 0.333333333333"``.
    """
    if isinstance(x, float):
        return "0" if x == 0 else f"{x:.{SIG_DIGITS}g}"
    if isinstance(x, int):
        if x.bit_length() <= MAX_FULL_DIGITS * 3.32:
            return str(x)
        sci = _sci(Fraction(x))
        return f"≈ {sci} ({int(sci.rsplit('e', 1)[1]) + 1} digits)"
    num, den = x.numerator, x.denominator
    twos = (den & -den).bit_length() - 1
    rest, fives = den >> twos, 0
    while rest % 5 == 0 and fives <= 20:
        rest, fives = rest // 5, fives + 1
    places = max(twos, fives)
    if rest == 1 and places <= 20 and num.bit_length() <= 3000:  # a terminating decimal: print exactly
        digits = str(abs(num) * 10**places // den).rjust(places + 1, "0")
        return f"{'-' if num < 0 else ''}{digits[:-places]}.{digits[-places:]}"
    if num.bit_length() <= 64 and den.bit_length() <= 64:
        return f"{num}/{den} ≈ {_approx(x)}"
    return f"≈ {_approx(x)}"
