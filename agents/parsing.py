"""Parsing model output: the ReAct text protocol and PAL code blocks.

Parsing never raises for anything the model writes: a malformed step comes back with ``kind="error"``
and a short description of the problem, which the agent turns into a format-reminder observation.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Literal

_KEYWORDS = r"(?:Thought|Action|Action Input|Observation|Final Answer|Question)"
_FINAL = re.compile(r"Final\s*Answer\s*\d*\s*:", re.IGNORECASE)
_ACTION = re.compile(r"^\s*Action\s*\d*\s*:[ \t]*(?P<value>.*)$", re.IGNORECASE | re.MULTILINE)
_ACTION_INPUT = re.compile(r"^\s*Action\s*\d*\s*Input\s*\d*\s*:[ \t]*", re.IGNORECASE | re.MULTILINE)
_THOUGHT = re.compile(r"^\s*Thought\s*\d*\s*:[ \t]*", re.IGNORECASE | re.MULTILINE)
_NEXT_KEYWORD = re.compile(rf"^\s*{_KEYWORDS}\s*\d*\s*:", re.IGNORECASE | re.MULTILINE)
_BRACKET_ACTION = re.compile(r"^(?P<tool>[\w\-.]+)\s*\[(?P<input>.*)\]\s*$", re.DOTALL)


@dataclass
class ParsedStep:
    """One parsed ReAct step."""

    kind: Literal["action", "final", "error"]
    thought: str = ""
    action: str | None = None
    action_input: str | None = None
    final_answer: str | None = None
    problem: str | None = None


def _section(text: str, start: int) -> str:
    """Text from ``start`` up to the next protocol keyword line."""
    nxt = _NEXT_KEYWORD.search(text, start)
    return text[start : nxt.start() if nxt else len(text)].strip()


def _thought(text: str, end: int) -> str:
    head = text[:end]
    starts = [m.end() for m in _THOUGHT.finditer(head)]
    return head[starts[-1] if starts else 0 :].strip()


def _clean_name(name: str) -> str:
    return name.strip().strip("`'\"*").strip().rstrip(".:")


def parse_react(text: str, tool_names: list[str]) -> ParsedStep:
    """Parse one ReAct step: either an action with its input or a final answer.

    Rules: the first of ``Action:`` and ``Final Answer:`` wins; anything the model writes after that
    step is ignored (the raw text is still recorded). ``Action: tool[input]`` (the ReAct paper's
    style) is accepted as well as ``Action:`` + ``Action Input:`` lines.

    Args:
        text: The model's output for this step (already cut at the ``Observation:`` stop sequence).
        tool_names: The tools the agent may call (matched case-insensitively).
    """
    if not text or not text.strip():
        return ParsedStep("error", problem="the reply was empty.")
    final = _FINAL.search(text)
    action = _ACTION.search(text)
    if final and (action is None or final.start() < action.start()):
        answer = _section(text, final.end())
        if not answer:
            return ParsedStep("error", thought=_thought(text, final.start()), problem="the Final Answer is empty.")
        return ParsedStep("final", thought=_thought(text, final.start()), final_answer=answer)
    if action is None:
        return ParsedStep("error", thought=_thought(text, len(text)),
                          problem="no 'Action:' or 'Final Answer:' line was found.")
    thought = _thought(text, action.start())
    value = action.group("value").strip()
    tool_input: str | None = None
    bracket = _BRACKET_ACTION.match(value)
    if bracket:
        value, tool_input = bracket.group("tool"), bracket.group("input").strip()
    name = _clean_name(value)
    if not name:
        return ParsedStep("error", thought=thought, problem="the Action line names no tool.")
    lookup = {t.lower(): t for t in tool_names}
    if name.lower() not in lookup:
        return ParsedStep("error", thought=thought, action=name,
                          problem=f"unknown tool {name!r}; use one of [{', '.join(tool_names)}].")
    if tool_input is None:
        m = _ACTION_INPUT.search(text, action.end())
        if m is None:
            return ParsedStep("error", thought=thought, action=lookup[name.lower()],
                              problem="the 'Action Input:' line is missing.")
        tool_input = _section(text, m.end())
    tool_input = _strip_fences(tool_input)
    if not tool_input:
        return ParsedStep("error", thought=thought, action=lookup[name.lower()],
                          problem="the Action Input is empty.")
    return ParsedStep("action", thought=thought, action=lookup[name.lower()], action_input=tool_input)


def _strip_fences(text: str) -> str:
    text = text.strip()
    if text.startswith("```") and text.endswith("```") and len(text) >= 6:
        text = text[3:-3]
        first, _, rest = text.partition("\n")
        text = rest if rest and re.fullmatch(r"[\w+-]*", first.strip()) else text
    return text.strip()


_CODE_BLOCK = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(?P<code>.*?)(?:```|\Z)", re.DOTALL | re.I)


def extract_code(text: str) -> str | None:
    """Return the Python program in a PAL reply, or ``None`` when there is none.

    Prefers the first fenced block that defines ``solution``; falls back to any fenced block, then to
    bare code starting at ``def solution``. An unclosed fence (output cut at ``max_tokens``) still counts.
    """
    blocks = [m.group("code").strip("\n") for m in _CODE_BLOCK.finditer(text or "")]
    blocks = [b for b in blocks if b.strip()]
    for block in blocks:
        if "def solution" in block:
            return block
    if blocks:
        return blocks[0]
    idx = (text or "").find("def solution")
    if idx >= 0:
        return text[idx:].strip()
    return None


#: Longest ``repr`` that :func:`answer_from_value` tries to read as a literal; a longer one stays text.
LITERAL_MAX_CHARS = 10_000


def answer_from_value(value: str | None, stdout: str) -> str | None:
    """Turn a PAL run's ``repr`` value (or, when it returned ``None``, its last printed line) into an answer.

    The ``repr`` comes from model-written code (a crafted ``__repr__`` can return anything): a value that is
    not a plain literal (too long, too deeply nested, a number too big to print, unhashable set members ...)
    stays the text it is. Never raises.
    """
    if value is not None and value != "None":
        return _literal_text(value)
    lines = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
    return lines[-1] if lines else None


def _literal_text(value: str) -> str:
    """``str()`` of ``value`` read as a literal (``'Paris'`` -> ``Paris``, ``18.0`` -> ``18``), else ``value``."""
    if len(value) > LITERAL_MAX_CHARS:
        return value
    try:
        obj = ast.literal_eval(value)
        if isinstance(obj, float) and obj.is_integer():
            return str(int(obj))
        return str(obj)
    except Exception:  # noqa: BLE001 - SyntaxError, ValueError, TypeError, MemoryError, RecursionError, ...
        return value
