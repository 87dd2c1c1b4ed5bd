"""The text view of a MiniWoB page: one line per visible DOM element, indented by nesting.

Each element line is ``[ref] tag`` followed by what helps to act on it: ``id=``, a few ``class=`` names,
its text in quotes, ``value="..."`` for text inputs, ``checked`` / ``unchecked`` for checkboxes and radio
buttons, the options and the selected one for ``<select>``, and ``focused``. Text nodes inside mixed
content have no ref (MiniWoB cannot click them) and are shown as quoted lines under their element.
MiniWoB's page scaffolding (``body``, ``#wrap``, ``#area``) and jQuery UI's resize handles are left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: Elements that are only page scaffolding: not shown (their children are).
SCAFFOLD_IDS = frozenset({"wrap", "area"})
#: jQuery UI noise: elements with one of these classes are not shown at all.
HIDDEN_CLASSES = frozenset({"ui-resizable-handle", "ui-helper-hidden-accessible"})
#: Class-name prefixes that say nothing useful about an element.
NOISY_CLASS_PREFIXES = ("ui-corner-", "ui-widget", "ui-helper-", "ui-state-default", "ui-priority-")
MAX_CLASSES = 3
MAX_TEXT = 120

#: JavaScript: the options and selected option of every ``<select>`` in the last DOM snapshot, by ref.
SELECT_INFO_JS = """
var out = {};
for (var ref in core.previousDOMInfo) {
  var el = core.previousDOMInfo[ref];
  if (el instanceof HTMLSelectElement) {
    out[ref] = {options: Array.from(el.options).map(function (o) { return o.text; }),
                selected: el.selectedIndex >= 0 ? el.options[el.selectedIndex].text : ""};
  }
}
return out;
"""


def _quote(text: str, limit: int = MAX_TEXT) -> str:
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return '"' + text.replace('"', "'") + '"'


def _classes(raw: str) -> str:
    names = [c for c in str(raw).split() if not c.startswith(NOISY_CLASS_PREFIXES)]
    return " ".join(names[:MAX_CLASSES])


def _flag(element: Mapping[str, Any], index: int) -> bool:
    flags = element.get("flags")
    try:
        return bool(flags[index])  # type: ignore[index]
    except (TypeError, IndexError):
        return False


def element_line(element: Mapping[str, Any], select: Mapping[str, Any] | None = None) -> str:
    """The line of one element (without indentation)."""
    tag = str(element["tag"])
    parts = [f"[{element['ref']}] {tag}"]
    if element.get("id"):
        parts.append(f"id={element['id']}")
    classes = _classes(element.get("classes", ""))
    if classes:
        parts.append(f"class={classes}")
    text = str(element.get("text") or "").strip()
    value = str(element.get("value") or "")
    if text and not (tag == "textarea" and text == value):
        parts.append(_quote(text))
    if tag in ("input_checkbox", "input_radio"):
        parts.append("checked" if value == "True" else "unchecked")
    elif tag.startswith("input_") or tag == "textarea":
        parts.append(f"value={_quote(value)}")
    if select is not None:
        parts.append("options: " + " | ".join(_quote(o, 60) for o in select.get("options", [])))
        parts.append(f"selected={_quote(select.get('selected', ''), 60)}")
    if _flag(element, 0):
        parts.append("focused")
    return " ".join(parts)


def render_elements(elements: Sequence[Mapping[str, Any]], selects: Mapping[str, Any] | None = None) -> str:
    """The indented text view of MiniWoB's ``dom_elements`` (in document order).

    Args:
        elements: ``observation["dom_elements"]``: dicts with ref, parent, tag, text, value, id, classes, flags.
        selects: ``{ref: {"options": [...], "selected": ...}}`` for ``<select>`` elements (string or int keys).
    """
    selects = {int(k): v for k, v in (selects or {}).items()}
    depth: dict[int, int] = {}
    hidden: set[int] = set()
    lines: list[str] = []
    for element in elements:
        ref, parent = int(element["ref"]), int(element.get("parent", 0))
        tag = str(element["tag"])
        if parent in hidden or HIDDEN_CLASSES.intersection(str(element.get("classes", "")).split()):
            hidden.add(ref)
            continue
        level = depth.get(parent, 0)
        if tag == "body" or (element.get("id") in SCAFFOLD_IDS and tag == "div"):
            depth[ref] = level
            continue
        depth[ref] = level + 1
        if ref < 0:  # a text node: no ref, MiniWoB cannot click it
            text = str(element.get("text") or "").strip()
            if text:
                lines.append("  " * level + _quote(text))
            continue
        lines.append("  " * level + element_line(element, selects.get(ref)))
    return "\n".join(lines) if lines else "(the page shows nothing)"


def clickable_refs(elements: Sequence[Mapping[str, Any]]) -> set[int]:
    """The refs an action may name: every element of the snapshot (text nodes have negative refs: not these)."""
    return {int(e["ref"]) for e in elements if int(e["ref"]) > 0}
