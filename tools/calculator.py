"""The ``calculator`` tool: a safe, exact arithmetic evaluator for small models.

The expression is parsed with :func:`ast.parse` and evaluated by walking a whitelist of nodes; nothing
is ever ``eval``-ed. Arithmetic is exact where possible (``int`` and :class:`~fractions.Fraction`;
decimal literals are exact, so ``0.1+0.2`` is ``0.3``) and falls back to ``float`` for irrational
functions. Sizes that could blow up (input length, nesting, powers, factorials, products) are bounded
*before* computing, so hostile input is refused within milliseconds.

This module holds the front end: cleaning the model's text, the parse-time guards, the syntax-tree walk
and the tool object. The numbers themselves (bounded operations, the function table and the output
format) live in :mod:`ponder.tools.calculator_math`.
"""

from __future__ import annotations

import ast
import re
from fractions import Fraction

from pydantic import BaseModel, Field

from ponder.tools.base import ToolInputError
from ponder.tools.calculator_math import (
    BINARY_OPS,
    CONSTANTS,
    FUNCTIONS,
    MULTI_ARG_FUNCTIONS,
    Number,
    binary_op,
    format_number,
    normalize,
)
from ponder.tools.calculator_math import MAX_BITS as MAX_BITS  # re-exported: importable from here as before
from ponder.tools.calculator_math import MAX_FACTORIAL as MAX_FACTORIAL
from ponder.tools.calculator_math import MAX_FULL_DIGITS as MAX_FULL_DIGITS
from ponder.tools.calculator_math import MAX_ROOT as MAX_ROOT
from ponder.tools.calculator_math import SIG_DIGITS as SIG_DIGITS
from ponder.tools.calculator_math import TOO_LARGE as TOO_LARGE

__all__ = ["CalculatorArgs", "CalculatorTool", "calculate", "calculator_tool"]

MAX_LENGTH = 500  # characters of input
MAX_PAREN_DEPTH = 40  # nested brackets, checked before parsing
MAX_AST_DEPTH = 300  # nesting of the parsed tree (a long "1+1+...+1" chain is deep)
MAX_NODES = 1500
MAX_LITERAL_EXPONENT = 10_000  # literals like 1e5000
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


def _call(node: ast.Call, src: str) -> Number:
    func = node.func
    if not isinstance(func, ast.Name):
        if isinstance(func, (ast.Constant, ast.BinOp, ast.UnaryOp, ast.Call)):
            raise ToolInputError("implicit multiplication is not supported; write 2*(3+4), not 2(3+4)")
        return _eval(func, src)  # raises the matching "not supported" message
    name = func.id.lower()
    if name not in FUNCTIONS:
        if name in CONSTANTS:
            raise ToolInputError(f"{func.id} is a constant, not a function; write {name}*(...) to multiply")
        raise ToolInputError(f"unknown function '{func.id}'; available: {', '.join(FUNCTIONS)}")
    if node.keywords:
        raise ToolInputError("keyword arguments are not supported")
    args = [_eval(arg, src) for arg in node.args]
    fn, least, most = FUNCTIONS[name]
    if len(args) < least or (most is not None and len(args) > most):
        wanted = f"{least}" if least == most else f"{least} or {most}" if most else f"at least {least}"
        raise ToolInputError(f"{name}() takes {wanted} argument(s), got {len(args)}")
    try:
        return normalize(fn(*args))
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
        return normalize(value)
    text = (ast.get_source_segment(src, node) or repr(value)).replace("_", "")
    match = _EXPONENT.search(text)
    if match and abs(int(match.group(1))) > MAX_LITERAL_EXPONENT:
        raise ToolInputError(f"the number {text} is too large or too small")
    try:
        return normalize(Fraction(text))  # the decimal as written: 0.1 is exactly 1/10
    except ValueError:
        return normalize(value)


def _eval(node: ast.AST, src: str) -> Number:
    if isinstance(node, ast.Expression):
        return _eval(node.body, src)
    if isinstance(node, ast.Constant):
        return _constant(node, src)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _eval(node.operand, src)
        return normalize(-value) if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY_OPS:
        return binary_op(type(node.op), _eval(node.left, src), _eval(node.right, src))
    if isinstance(node, (ast.UnaryOp, ast.BinOp)):
        raise ToolInputError(f"the operator {_OP_SYMBOLS.get(type(node.op), '?')} is not supported")
    if isinstance(node, ast.Name):
        if node.id.lower() in CONSTANTS:
            return CONSTANTS[node.id.lower()]
        if node.id.lower() in FUNCTIONS:
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
        ambiguous = inside[match.start()] in MULTI_ARG_FUNCTIONS
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
        reason = (exc.msg if isinstance(exc, SyntaxError) else "") or "invalid syntax"
        raise ToolInputError(f"could not parse the expression ({reason})") from None
    stack, count = [(tree, 1)], 0
    while stack:  # iterative, so that a deep tree cannot hit the recursion limit here
        node, level = stack.pop()
        count += 1
        if level > MAX_AST_DEPTH or count > MAX_NODES:
            raise ToolInputError("the expression is too complex; split it into smaller steps")
        stack.extend((child, level + 1) for child in ast.iter_child_nodes(node))
    return tree


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
        return format_number(_eval(_check_size(src), src))
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
