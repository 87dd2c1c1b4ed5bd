"""A GSM8K solution's calculations as a PAL program (``def solution(): ...``).

Each calculation becomes ``stepN = <expression>`` under a comment with its prose; a number in a later expression
that equals an earlier step's stated result is replaced by that step's name (the most recent one), so the program
computes from the question's numbers as PAL asks. ``x`` as a times sign becomes ``*``; ``^`` becomes ``**``.
"""

from __future__ import annotations

import re

from ponder.training.gold_parse import GoldSolution

_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")
_TIMES = re.compile(r"(?<=[\d)\s])\s*[xX×]\s*(?=[\d(])")


def python_expression(expression: str, names: dict[str, str]) -> str:
    """``expression`` in Python syntax, with numbers that are earlier results replaced by their names."""
    expr = _TIMES.sub(" * ", expression.replace(",", "")).replace("^", "**").replace("÷", "/")

    def name(match: re.Match[str]) -> str:
        return names.get(_canonical(match.group(0)), match.group(0))

    return _NUMBER.sub(name, expr)


def _canonical(number: str) -> str:
    value = float(number)
    return str(int(value)) if value.is_integer() else repr(value)


def pal_program(solution: GoldSolution) -> str:
    """The ``solution()`` function for ``solution`` (its last step is returned)."""
    lines = ["def solution():"]
    names: dict[str, str] = {}
    for index, calc in enumerate(solution.calcs, 1):
        step = f"step{index}"
        if calc.lead:
            comment = " ".join(calc.lead.split())
            lines.append(f"    # {comment}")
        lines.append(f"    {step} = {python_expression(calc.expression, names)}")
        try:
            names[_canonical(calc.result.replace(",", "").lstrip("$"))] = step
        except ValueError:
            pass  # a result that is not a plain number is never referenced by name
    lines.append(f"    return step{len(solution.calcs)}")
    return "\n".join(lines)
