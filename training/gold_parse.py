"""GSM8K's training solutions, read as calculation steps.

A solution is a few lines of prose whose calculations carry calculator annotations, ending with the answer::

    Natalia sold 48/2 = <<48/2=24>>24 clips in May.
    Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.
    #### 72

:func:`parse_solution` turns it into :class:`GoldCalc` steps (the prose that leads to each calculation, its
expression, its stated result) and the final answer. Pure text handling: no tools run here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ponder.core.errors import DataError

_ANNOTATION = re.compile(r"<<([^<>]*?)=([^<>=]*)>>")
_FINAL = re.compile(r"^####\s*(.+?)\s*$", re.MULTILINE)
#: What precedes an annotation in the prose and says nothing on its own ("= $", "is", "x ").
_TRAILING = re.compile(r"[\s=:$€£]+$")


@dataclass(frozen=True)
class GoldCalc:
    """One annotated calculation: the prose before it (``lead``), the expression and the result it states."""

    lead: str
    expression: str
    result: str


@dataclass(frozen=True)
class GoldSolution:
    """A parsed solution: its calculations in order, and the answer after ``####``."""

    calcs: tuple[GoldCalc, ...]
    answer: str


def parse_solution(solution: str) -> GoldSolution:
    """Split a GSM8K solution into its annotated calculations and final answer.

    Prose lines without a calculation are carried into the lead of the next calculation; the lead of a
    calculation is its line up to the annotation, with earlier annotations in the same line replaced by their
    results, and trailing ``=`` / currency signs removed.

    Raises:
        DataError: when the solution has no ``#### answer`` line.
    """
    final = _FINAL.search(solution)
    if final is None:
        raise DataError("solution has no '#### <answer>' line")
    body = solution[: final.start()]
    calcs: list[GoldCalc] = []
    pending: list[str] = []
    for line in body.splitlines():
        line = line.strip()
        if not line:
            continue
        start = 0
        found = False
        for match in _ANNOTATION.finditer(line):
            found = True
            lead = _ANNOTATION.sub(lambda m: m.group(2), line[start : match.start()])
            lead = _TRAILING.sub("", lead).strip()
            pending.append(lead)
            calcs.append(GoldCalc(lead=" ".join(p for p in pending if p), expression=match.group(1).strip(),
                                  result=match.group(2).strip()))
            pending = []
            start = match.end()
        if not found:
            pending.append(line)
    return GoldSolution(calcs=tuple(calcs), answer=final.group(1).replace(",", "").strip())


def thought_for(calc: GoldCalc) -> str:
    """The ``Thought:`` of a calculation step: its lead, or a plain sentence when the prose gives none."""
    lead = calc.lead.strip()
    if len(lead.split()) < 2:
        return f"I need to compute {calc.expression}."
    return lead if lead.endswith((".", "?", "!", ":")) else lead + "."
