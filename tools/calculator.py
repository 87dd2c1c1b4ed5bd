"""The ``calculator`` tool: a safe, exact arithmetic evaluator for small models.

The expression is parsed with :func:`ast.parse` and evaluated by walking a whitelist of nodes; nothing
is ever ``eval``-ed. Arithmetic is exact where possible (``int`` and :class:`~fractions.Fraction`;
decimal literals are exact, so ``0.1+0.2`` is ``0.3``) and falls back to ``float`` for irrational
functions. Sizes that could blow up (input length, nesting, powers, factorials, products) are bounded
*before* computing, so hostile input is refused within milliseconds.

Output format: integers in full (``1024``; beyond 1000 digits ``≈ 4.02387260077e+2567 (2568 digits)``),
exact terminating decimals exactly (``0.3``, ``-2.125``), other fractions as ``1/3 ≈ 0.333333333333``
(only ``≈ ...`` when its terms are huge), floats with 12 significant digits (``1.41421356237``).
"""

from __future__ import annotations

import ast
import functools
import math
import operator
import re
from collections.abc import Callable
from fractions import Fraction

from pydantic import BaseModel, Field

from ponder.tools.base import ToolInputError

__all__ = ["CalculatorArgs", "CalculatorTool", "calculate", "calculator_tool"]

Number = int | Fraction | float

MAX_LENGTH = 500  # characters of input
MAX_PAREN_DEPTH = 40  # nested brackets, checked before parsing
MAX_AST_DEPTH = 300  # nesting of the parsed tree (a long "1+1+...+1" chain is deep)
MAX_NODES = 1500
MAX_BITS = 40_000  # numerator + denominator bits of any exact value (~12,000 digits)
MAX_LITERAL_EXPONENT = 10_000  # literals like 1e5000
MAX_FACTORIAL = 1000
MAX_ROOT = 64  # largest q tried for an exact a ** (p/q)
MAX_FULL_DIGITS = 1000  # longer integers print in scientific notation
SIG_DIGITS = 12
TOO_LARGE = "the result is too large (more than about 12,000 digits)"
_COMMA_HINT = "commas only separate function arguments: write 1234 (not 1,23) and use '.' for decimals"

DESCRIPTION = (
    "Evaluates one arithmetic expression exactly and returns the number. "
    "Use numbers, + - * / // % ^ (power), parentheses, constants pi e tau, and functions "
    "sqrt cbrt abs round floor ceil min max sum log log2 log10 ln exp sin cos tan asin acos atan "
    "atan2 radians degrees factorial gcd lcm comb perm hypot pow. Example input: (3 + 4) * 2^3 / 7. "
    "No words, units, variables or '=' signs."
)

_REPLACEMENTS = [
    ("\u00a0", " "), ("×", "*"), ("·", "*"), ("⋅", "*"), ("∗", "*"), ("÷", "/"), ("∕", "/"),
    ("−", "-"), ("–", "-"), ("π", "pi"), ("²", "**2"), ("³", "**3"), ("$", ""), ("^", "**"),
]
_TIMES_X = re.compile(r"(?<=[\d)])\s+[xX]\s+(?=[\d(])")  # 3 x 4
_ROOT_SIGN = re.compile(r"√\s*(\d+(?:\.\d*)?|pi|e|tau)")  # √16
_GROUPED = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?!\d|,\d)")  # 1,234,567
_EXPONENT = re.compile(r"[eE]([+-]?\d+)$")

_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}
_OP_SYMBOLS = {
    ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>",
    ast.MatMult: "@", ast.Invert: "~", ast.Not: "not",
}
_UNSUPPORTED = {
    ast.Attribute: "attribute access ('.' after a value)", ast.Subscript: "indexing with [...]",
    ast.Lambda: "lambda", ast.Compare: "comparisons", ast.BoolOp: "and/or", ast.IfExp: "if/else",
    ast.List: "lists", ast.Set: "sets", ast.Dict: "dicts", ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions", ast.DictComp: "comprehensions", ast.GeneratorExp: "comprehensions",
    ast.JoinedStr: "strings", ast.NamedExpr: "assignment (:=)", ast.Starred: "'*' unpacking",
}


def _bits(x: Number) -> int:
    if isinstance(x, Fraction):
        return x.numerator.bit_length() + x.denominator.bit_length()
    return x.bit_length() if isinstance(x, int) else 0


def _norm(x: Number) -> Number:
    """Collapse whole fractions to int; refuse oversized or non-finite results."""
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
    raise ToolInputError(f"{name} needs whole numbers, got {_format(x)}")


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
    return _norm(result)


def _power(a: Number, b: Number) -> Number:
    if isinstance(a, float):
        return _float_power(a, b)
    fa = Fraction(a)
    if isinstance(b, int):
        if b == 0 or fa in (0, 1):
            return _norm(fa**b)
        if fa == -1:
            return 1 if b % 2 == 0 else -1
        # |num| or den is >= 2, so the result has at least |b| bits: estimate before computing.
        if abs(b) <= MAX_BITS and abs(b) * math.log2(max(abs(fa.numerator), fa.denominator)) <= MAX_BITS:
            return _norm(fa**b)
        return _float_power(a, b)  # too big to be exact; a float may still hold it (1.0001**100000)
    if isinstance(b, Fraction) and (root := _exact_root(fa, b.denominator)) is not None:
        return _power(root, b.numerator)  # 4**0.5, (-8)**(1/3)
    return _float_power(a, b)


_BINOPS: dict[type, Callable[[Number, Number], Number]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: _power,
}


def _binop(op: type, a: Number, b: Number) -> Number:
    exact = not isinstance(a, float) and not isinstance(b, float)
    if exact and op in (ast.Mult, ast.Div) and _bits(a) + _bits(b) > MAX_BITS + 64:
        raise ToolInputError(TOO_LARGE)  # the product would be too big: refuse before computing it
    if exact and op is ast.Div:
        a = Fraction(a)  # int / int is a Fraction, not a float
    return _norm(_BINOPS[op](a, b))


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
_FUNCTIONS: dict[str, tuple[Callable[..., Number], int, int | None]] = {
    "sqrt": (_root(2), 1, 1), "cbrt": (_root(3), 1, 1), "abs": (abs, 1, 1), "round": (_round, 1, 2),
    "floor": (math.floor, 1, 1), "ceil": (math.ceil, 1, 1), "min": (lambda *xs: min(xs), 1, None),
    "max": (lambda *xs: max(xs), 1, None),
    "sum": (lambda *xs: functools.reduce(functools.partial(_binop, ast.Add), xs, 0), 0, None),
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
_MULTI_ARG = {name for name, (_, _, most) in _FUNCTIONS.items() if most != 1}


def _call(node: ast.Call, src: str) -> Number:
    func = node.func
    if not isinstance(func, ast.Name):
        if isinstance(func, (ast.Constant, ast.BinOp, ast.UnaryOp, ast.Call)):
            raise ToolInputError("implicit multiplication is not supported; write 2*(3+4), not 2(3+4)")
        return _eval(func, src)  # raises the matching "not supported" message
    name = func.id.lower()
    if name not in _FUNCTIONS:
        if name in _CONSTANTS:
            raise ToolInputError(f"{func.id} is a constant, not a function; write {name}*(...) to multiply")
        raise ToolInputError(f"unknown function '{func.id}'; available: {', '.join(_FUNCTIONS)}")
    if node.keywords:
        raise ToolInputError("keyword arguments are not supported")
    args = [_eval(arg, src) for arg in node.args]
    fn, least, most = _FUNCTIONS[name]
    if len(args) < least or (most is not None and len(args) > most):
        wanted = f"{least}" if least == most else f"{least} or {most}" if most else f"at least {least}"
        raise ToolInputError(f"{name}() takes {wanted} argument(s), got {len(args)}")
    try:
        return _norm(fn(*args))
    except ValueError:
        raise ToolInputError(f"{name}: the argument is outside the function's domain") from None


def _constant(node: ast.Constant, src: str) -> Number:
    value = node.value
    if isinstance(value, (str, bytes)):
        raise ToolInputError("strings are not supported; the calculator takes numbers only")
    if isinstance(value, complex):
        raise ToolInputError("complex numbers are not supported")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ToolInputError(f"{value!r} is not a number")
    if isinstance(value, int):
        return _norm(value)
    text = (ast.get_source_segment(src, node) or repr(value)).replace("_", "")
    match = _EXPONENT.search(text)
    if match and abs(int(match.group(1))) > MAX_LITERAL_EXPONENT:
        raise ToolInputError(f"the number {text} is too large or too small")
    try:
        return _norm(Fraction(text))  # the decimal as written: 0.1 is exactly 1/10
    except ValueError:
        return _norm(value)


def _eval(node: ast.AST, src: str) -> Number:
    if isinstance(node, ast.Expression):
        return _eval(node.body, src)
    if isinstance(node, ast.Constant):
        return _constant(node, src)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _eval(node.operand, src)
        return _norm(-value) if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _binop(type(node.op), _eval(node.left, src), _eval(node.right, src))
    if isinstance(node, (ast.UnaryOp, ast.BinOp)):
        raise ToolInputError(f"the operator {_OP_SYMBOLS.get(type(node.op), '?')} is not supported")
    if isinstance(node, ast.Name):
        if node.id.lower() in _CONSTANTS:
            return _CONSTANTS[node.id.lower()]
        if node.id.lower() in _FUNCTIONS:
            raise ToolInputError(f"{node.id} is a function; call it like {node.id.lower()}(2)")
        raise ToolInputError(f"unknown name '{node.id}'; use only numbers, pi, e, tau and functions")
    if isinstance(node, ast.Call):
        return _call(node, src)
    if isinstance(node, ast.Tuple):
        raise ToolInputError(_COMMA_HINT)
    what = _UNSUPPORTED.get(type(node), type(node).__name__)
    raise ToolInputError(f"the calculator does not support {what}")


def _strip_thousands(s: str) -> str:
    """Drop commas in digit groups (1,234,567) unless they may separate arguments, as in max(1,234)."""
    inside: list[str] = []  # per character: the innermost enclosing call's name, or ""
    stack: list[str] = []
    for i, ch in enumerate(s):  # one linear pass: the scans back below cover disjoint stretches
        if ch in "([{":
            j = i
            while j > 0 and s[j - 1].isspace():
                j -= 1
            k = j
            while k > 0 and (s[k - 1].isalnum() or s[k - 1] == "_"):
                k -= 1
            stack.append(s[k:j].lower() if ch == "(" else "")
        elif ch in ")]}" and stack:
            stack.pop()
        inside.append(stack[-1] if stack else "")

    def replace(match: re.Match[str]) -> str:
        ambiguous = inside[match.start()] in _MULTI_ARG
        return match.group(0) if ambiguous else match.group(0).replace(",", "")

    return _GROUPED.sub(replace, s)


def _clean(text: str) -> str:
    s, previous = text.strip(), None
    while s != previous:  # wrappers small models add: `...`, "...", = ..., ... =, ... ?
        previous = s
        s = s.strip("`").strip()
        if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
            s = s[1:-1].strip()
        s = s.removeprefix("=").rstrip("=?").strip()
    for old, new in _REPLACEMENTS:
        s = s.replace(old, new)
    s = _ROOT_SIGN.sub(r"sqrt(\1)", s).replace("√", "sqrt")
    return _strip_thousands(_TIMES_X.sub(" * ", s))


def _check_size(src: str) -> ast.Expression:
    """Parse ``src`` after refusing deep bracket nesting (which can crash the parser) and big trees."""
    depth = 0
    for ch in src:
        depth += (ch in "([{") - (ch in ")]}")
        if depth > MAX_PAREN_DEPTH:
            raise ToolInputError(f"the expression is too deeply nested (over {MAX_PAREN_DEPTH} parentheses)")
    try:
        tree = ast.parse(src, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        reason = getattr(exc, "msg", None) or "invalid syntax"
        raise ToolInputError(f"could not parse the expression ({reason})") from None
    stack, count = [(tree, 1)], 0
    while stack:  # iterative, so that a deep tree cannot hit the recursion limit here
        node, level = stack.pop()
        count += 1
        if level > MAX_AST_DEPTH or count > MAX_NODES:
            raise ToolInputError("the expression is too complex; split it into smaller steps")
        stack.extend((child, level + 1) for child in ast.iter_child_nodes(node))
    return tree


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


def _format(x: Number) -> str:
    """Render a value for the model (see the module docstring for the format)."""
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


def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression safely and exactly.

    Args:
        expression: Text such as ``"(3 + 4) * 2^3 / 7"``, ``"1,234 × 2"`` or ``"= sqrt(2)"``.

    Returns:
        The result as text, e.g. ``"8"``, ``"0.3"``, ``"1/3 ≈ 0.333333333333"`` or ``"1.41421356237"``.

    Raises:
        ToolInputError: For empty, oversized, malformed or disallowed input, and for math errors
            (division by zero, domain errors, results too large to compute).
    """
    if not isinstance(expression, str):
        raise ToolInputError("the expression must be text")
    if len(expression.strip()) > MAX_LENGTH:
        size = len(expression.strip())
        raise ToolInputError(f"the expression is too long ({size} characters; the limit is {MAX_LENGTH})")
    src = _clean(expression)
    if not src:
        raise ToolInputError("empty expression; give an arithmetic expression such as 2 + 3 * 4")
    try:
        return _format(_eval(_check_size(src), src))
    except ZeroDivisionError:
        raise ToolInputError("division by zero") from None
    except OverflowError:
        raise ToolInputError("the result is too large (overflow)") from None
    except RecursionError:
        raise ToolInputError("the expression is too complex; split it into smaller steps") from None


class CalculatorArgs(BaseModel):
    """Arguments of the calculator tool."""

    expression: str = Field(description="One arithmetic expression, e.g. (3 + 4) * 2^3 / 7")


class CalculatorTool:
    """The ``calculator`` tool object (see :func:`calculate`)."""

    name = "calculator"
    description = DESCRIPTION
    args_schema: type[BaseModel] = CalculatorArgs

    def run(self, args: BaseModel) -> str:
        """Evaluate ``args.expression``; the model's mistakes raise :class:`ToolInputError`."""
        return calculate(args.expression)  # type: ignore[attr-defined]


def calculator_tool() -> CalculatorTool:
    """Build the calculator tool for a :class:`~ponder.tools.base.ToolBox`.

    Returns:
        A tool named ``calculator`` with one argument, ``expression``.
    """
    return CalculatorTool()
