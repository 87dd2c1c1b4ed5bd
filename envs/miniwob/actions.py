"""The MiniWoB action language: ``click [ref]``, ``type [ref] text``, ``select [ref] option``, ``press key``.

Parsing never raises: a malformed action comes back as a :class:`ParsedAction` with ``problem`` set, which
the environment answers with an observation (and no browser step).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The action format, put into the agent's system prompt (``EnvReset.info["instructions"]``).
INSTRUCTIONS = """\
The observation lists the page's elements, one per line: [ref] tag, then id, class, "text", value and state.
Act on an element by its ref number (the number in brackets). Actions:
click [ref]            click the element (buttons, links, checkboxes, radio buttons, tabs, folders)
type [ref] text        replace the text of an input field or text area with text
select [ref] option    choose an option of a <select> list by its text
press key              press a key: Enter, Tab, Backspace, Delete, Space, ArrowUp, ArrowDown, ArrowLeft,
                       ArrowRight, PageUp, PageDown, a letter or digit, or ctrl+a / ctrl+c / ctrl+x / ctrl+v
Write the action alone on its line, e.g.: click [5] or type [7] hello world
The episode ends when the task is done (e.g. after clicking the final Submit button)."""

MAX_TYPE_CHARS = 200

_VERB = re.compile(r"^\s*(click|type|select|press)\b[\s:]*(.*)$", re.IGNORECASE | re.DOTALL)
_REF = re.compile(r"^\[?\s*(-?\d+)\s*\]?(?:\s+|$)(.*)$", re.DOTALL)
_SPECIAL_KEYS = {k.lower(): f"<{k}>" for k in (
    "Enter", "PageUp", "PageDown", "Backspace", "Delete", "Tab", "Space", "ArrowUp", "ArrowRight",
    "ArrowDown", "ArrowLeft", "Escape", "Home", "End")}
_KEY_ALIASES = {"return": "enter", "esc": "escape", "del": "delete", "up": "arrowup", "down": "arrowdown",
                "left": "arrowleft", "right": "arrowright", "pgup": "pageup", "pgdn": "pagedown"}


@dataclass(frozen=True)
class ParsedAction:
    """One parsed action; ``problem`` is set (and the rest unset) when the text is not a valid action."""

    verb: str = ""
    ref: int | None = None
    argument: str = ""
    problem: str = ""


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        return text[1:-1]
    return text


def normalize_key(key: str, allowed: tuple[str, ...] | list[str]) -> str | None:
    """The MiniWoB key name (one of ``allowed``) for a key as a model writes it, or ``None``."""
    key = _unquote(key)
    if key in allowed:
        return key
    low = key.lower().strip("<>")
    low = _KEY_ALIASES.get(low, low)
    if low in _SPECIAL_KEYS and _SPECIAL_KEYS[low] in allowed:
        return _SPECIAL_KEYS[low]
    combo = re.fullmatch(r"(?:ctrl|control|c)\s*[-+]\s*([a-z])", low)
    if combo and f"C-{combo.group(1)}" in allowed:
        return f"C-{combo.group(1)}"
    return None


def parse_action(text: str) -> ParsedAction:
    """Parse one action line (never raises)."""
    line = (text or "").strip().splitlines()[0].strip() if (text or "").strip() else ""
    match = _VERB.match(line)
    if not match:
        shown = line[:80] or "(empty)"
        return ParsedAction(problem=f"'{shown}' is not an action. Use click [ref], type [ref] text, "
                                    "select [ref] option or press key.")
    verb, rest = match.group(1).lower(), match.group(2).strip()
    if verb == "press":
        if not rest:
            return ParsedAction(problem="press needs a key, e.g. press Enter.")
        return ParsedAction(verb="press", argument=_unquote(rest))
    ref_match = _REF.match(rest)
    if not ref_match:
        return ParsedAction(problem=f"{verb} needs an element ref number first, e.g. {verb} [5]"
                                    + (" text." if verb == "type" else " option." if verb == "select" else "."))
    ref, argument = int(ref_match.group(1)), _unquote(ref_match.group(2))
    if verb == "click":
        return ParsedAction(verb="click", ref=ref)
    if verb == "type" and not argument:
        return ParsedAction(problem="type needs the text after the ref, e.g. type [5] hello.")
    if verb == "type" and len(argument) > MAX_TYPE_CHARS:
        return ParsedAction(problem=f"type at most {MAX_TYPE_CHARS} characters at a time.")
    if verb == "select" and not argument:
        return ParsedAction(problem="select needs the option's text after the ref, e.g. select [4] Bobine.")
    return ParsedAction(verb=verb, ref=ref, argument=argument)
