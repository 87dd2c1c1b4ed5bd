"""The visible examples of a code task: the calls and expected results its docstring shows.

Only what the task text shows is read (never a dataset's hidden tests). Two forms are understood:

- doctest: ``>>> f(2)`` followed by the expected output on the next line(s);
- inline: ``f(2) == 4``, ``f(2) ➞ 4``, ``f(2) => 4`` / ``==>`` / ``->`` / ``=``, ``f(2) returns 4``,
  ``f(2)  # returns 4``, ``f(2) should return 4.`` (the call may span lines).

An example is kept when its expression calls the entry point, uses only names the prompt defines, the entry
point and builtins (``is_happy(a)`` with an undefined ``a`` is prose, not an example), and its expected value
is a Python literal (JavaScript-style ``true`` / ``false`` are read as booleans) followed by nothing but
punctuation or a comment. :func:`example_tests` turns them into ``assert`` snippets for the trusted grader.
"""

from __future__ import annotations

import ast
import builtins
import re
from dataclasses import dataclass

_ARROW = re.compile(r"\s*(?:==>|=>|==|->|➞|=|#\s*returns|returns|should\s+return)\s*", re.IGNORECASE)
_TAIL = re.compile(r"\s*(?:[.,;:]\s*)?(?:#.*|\(.*\)\s*)?$")
_JS = {"true": "True", "false": "False", "null": "None"}
_BUILTINS = frozenset(dir(builtins))

#: Trusted helper the example tests call: equal, with a tolerance for floats, element-wise for sequences.
SAME_SOURCE = '''
def _ponder_same(actual, expected):
    if isinstance(expected, float) or isinstance(actual, float):
        if isinstance(actual, (int, float)) and isinstance(expected, (int, float)) \\
                and not isinstance(actual, bool) and not isinstance(expected, bool):
            return abs(actual - expected) <= 1e-6 * max(1.0, abs(expected))
    if isinstance(expected, (list, tuple)) and type(actual) is type(expected) and len(actual) == len(expected):
        return all(_ponder_same(a, e) for a, e in zip(actual, expected))
    return actual == expected
'''


@dataclass(frozen=True)
class Example:
    """One visible example: an expression (calling the entry point) and the literal it should equal."""

    expression: str
    expected: str

    def test(self) -> str:
        """The ``assert`` snippet the trusted grader runs (``_ponder_same`` is in its setup)."""
        return f"assert _ponder_same({self.expression}, {self.expected})"


def defined_names(prompt: str) -> set[str]:
    """Top-level functions, classes and imported names of ``prompt`` (empty when it does not parse)."""
    try:
        tree = ast.parse(prompt)
    except (SyntaxError, ValueError, RecursionError):
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def entry_point_of(prompt: str) -> str | None:
    """The function a code prompt asks for: its last top-level ``def`` (``None``: none)."""
    try:
        tree = ast.parse(prompt)
    except (SyntaxError, ValueError, RecursionError):
        found = re.findall(r"^def\s+([A-Za-z_]\w*)\s*\(", prompt, re.MULTILINE)
        return found[-1] if found else None
    defs = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    return defs[-1] if defs else None


def _expression(text: str, entry_point: str, allowed: set[str]) -> str | None:
    """``text`` as a canonical expression when it calls ``entry_point`` and names nothing unknown."""
    try:
        node = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        return None
    calls = [n for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
             and n.func.id == entry_point]
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    if not calls or not names <= allowed:
        return None
    return ast.unparse(node)


def _literal(text: str) -> str | None:
    """``repr`` of ``text`` read as a Python literal (``true`` -> ``True``), or ``None``."""
    text = _JS.get(text.strip(), text.strip())
    if not text:
        return None
    try:
        return repr(ast.literal_eval(text))
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        return None


def _leading_literal(rest: str) -> str | None:
    """The longest literal at the start of ``rest`` followed only by punctuation or a comment."""
    line = rest.split("\n", 1)[0]
    for end in range(len(line), 0, -1):
        if _TAIL.fullmatch(line[end:]) is None:
            continue
        value = _literal(line[:end].rstrip().rstrip("."))
        if value is not None:
            return value
    return None


def _doctests(doc: str, entry_point: str, allowed: set[str]) -> list[Example]:
    out: list[Example] = []
    lines = doc.split("\n")
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped.startswith(">>>"):
            continue
        expected: list[str] = []
        for follow in lines[i + 1:]:
            text = follow.strip()
            if not text or text.startswith(">>>") or '"""' in text or "'''" in text:
                break
            expected.append(text)
        if not expected:  # ``>>> f(2) == 4`` with no output line: the inline form
            out.extend(_inline(stripped[3:], entry_point, allowed))
            continue
        expression = _expression(stripped[3:], entry_point, allowed)
        value = _literal(" ".join(expected))
        if expression is not None and value is not None:
            out.append(Example(expression, value))
    return out


def _closing(text: str, start: int) -> int | None:
    """The index just past the parenthesis matching the one at ``start`` (``None``: unbalanced)."""
    depth, quote = 0, ""
    for i in range(start, len(text)):
        char = text[i]
        if quote:
            quote = "" if char == quote and text[i - 1] != "\\" else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def _inline(doc: str, entry_point: str, allowed: set[str]) -> list[Example]:
    out: list[Example] = []
    call = re.compile(rf"(?<![\w.]){re.escape(entry_point)}\s*\(")
    for match in call.finditer(doc):
        line_start = doc.rfind("\n", 0, match.start()) + 1
        if doc[line_start:match.start()].strip().startswith((">>>", "def ")):
            continue
        end = _closing(doc, match.end() - 1)
        if end is None:
            continue
        arrow = _ARROW.match(doc, end)
        if arrow is None or "\n" in doc[end:arrow.end()]:
            continue
        expression = _expression(doc[match.start():end].replace("\n", " "), entry_point, allowed)
        value = _leading_literal(doc[arrow.end():])
        if expression is not None and value is not None:
            out.append(Example(expression, value))
    return out


def visible_examples(prompt: str, entry_point: str) -> list[Example]:
    """The examples ``prompt`` shows for ``entry_point``, in order, without duplicates."""
    allowed = defined_names(prompt) | _BUILTINS | {entry_point}
    found = _doctests(prompt, entry_point, allowed) + _inline(prompt, entry_point, allowed)
    unique: dict[tuple[str, str], Example] = {}
    for example in found:
        unique.setdefault((example.expression, example.expected), example)
    return list(unique.values())


def example_tests(prompt: str, entry_point: str) -> list[str]:
    """The ``assert`` snippets of :func:`visible_examples` (run after :data:`SAME_SOURCE` in the setup)."""
    return [example.test() for example in visible_examples(prompt, entry_point)]
