"""Keep only a candidate program's definitions (host side, before anything runs).

A candidate's top-level statements run when its module loads, before any test: that is where
``sys.exit(0)`` after the ``def`` or a test-looking ``print(f(3))`` would go. Only definitions are kept:
imports, ``def`` / ``async def``, ``class`` and assignments whose targets are plain names (``X = ...``,
``a, b = ...``, ``X: int = ...``). Everything else at the top level (expressions, ``if``, loops, ``try``,
``with``, ``del``, ``global``, assignments to attributes or items) is dropped.
"""

from __future__ import annotations

import ast

MAX_SOURCE_CHARS = 200_000


class SourceError(ValueError):
    """A candidate that cannot be graded: it does not parse, is too large, or defines nothing."""


def _names_only(target: ast.expr) -> bool:
    if isinstance(target, ast.Name):
        return True
    if isinstance(target, ast.Tuple | ast.List):
        return all(_names_only(t) for t in target.elts)
    return False


def _is_definition(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return True
    if isinstance(node, ast.Assign):
        return all(_names_only(t) for t in node.targets)
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and node.value is not None
    return False


def keep_definitions(source: str) -> str:
    """The definitions of ``source`` as source text (``ast`` round trip; comments and formatting dropped).

    Raises:
        SourceError: for source that does not parse (the message says where), is larger than
            ``MAX_SOURCE_CHARS``, or keeps no statement.
    """
    if len(source) > MAX_SOURCE_CHARS:
        raise SourceError(f"the program is too long ({len(source)} characters; at most {MAX_SOURCE_CHARS})")
    try:
        tree = ast.parse(source)
        kept = ast.Module(body=[node for node in tree.body if _is_definition(node)], type_ignores=[])
        text = ast.unparse(kept)
    except SyntaxError as exc:
        raise SourceError(f"SyntaxError: {exc.msg} (line {exc.lineno})") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise SourceError(f"the program cannot be parsed ({type(exc).__name__})") from None
    if not text.strip():
        raise SourceError("the program defines nothing")
    return text + "\n"
