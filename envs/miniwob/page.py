"""Reading the text view of a MiniWoB page back into elements (what the hand-written solvers see).

The solvers must use only what the agent gets, so they parse the observation text produced by
:mod:`.render`, never the browser. This is also a check that the text view carries what a task needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ELEMENT = re.compile(r"^(?P<indent> *)\[(?P<ref>\d+)\] (?P<tag>\S+)(?P<rest>.*)$")
_TEXT = re.compile(r'^(?P<indent> *)"(?P<text>.*)"$')
_VALUE = re.compile(r'\bvalue="(?P<v>[^"]*)"')
_SELECTED = re.compile(r'\bselected="(?P<v>[^"]*)"')
_OPTIONS = re.compile(r"\boptions: (?P<v>.*?) selected=")
_ID = re.compile(r"(?:^| )id=(?P<v>\S+)")
_CLASS = re.compile(r'(?:^| )class=(?P<v>.+?)(?= "| value=| checked| unchecked| options:| focused|$)')
_QUOTED = re.compile(r'"(?P<v>[^"]*)"')


@dataclass
class PageElement:
    """One element line of the text view."""

    ref: int
    tag: str
    depth: int
    id: str = ""
    classes: list[str] = field(default_factory=list)
    text: str = ""
    value: str | None = None
    checked: bool | None = None
    focused: bool = False
    options: list[str] = field(default_factory=list)
    selected: str | None = None
    parent: PageElement | None = None
    texts: list[str] = field(default_factory=list)
    children: list[PageElement] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The element's own text, else the text lines directly inside it or its parent (e.g. a ``label``)."""
        if self.text:
            return self.text
        if self.texts:
            return " ".join(self.texts)
        return " ".join(self.parent.texts) if self.parent is not None else ""


@dataclass
class Page:
    """The elements of one observation, in document order."""

    task: str = ""
    elements: list[PageElement] = field(default_factory=list)

    def find(self, tag: str | None = None, *, text: str | None = None, cls: str | None = None,
             label: str | None = None) -> list[PageElement]:
        """Elements matching every given criterion (``tag`` may end with ``*`` as a prefix)."""
        out = []
        for e in self.elements:
            if tag is not None and not (e.tag.startswith(tag[:-1]) if tag.endswith("*") else e.tag == tag):
                continue
            if text is not None and e.text != text:
                continue
            if cls is not None and cls not in e.classes:
                continue
            if label is not None and e.label != label:
                continue
            out.append(e)
        return out

    def first(self, tag: str | None = None, **criteria: str) -> PageElement | None:
        """The first element matching (see :meth:`find`), or ``None``."""
        found = self.find(tag, **criteria)
        return found[0] if found else None


def _parse_element(match: re.Match[str]) -> PageElement:
    rest = match.group("rest")
    element = PageElement(ref=int(match.group("ref")), tag=match.group("tag"), depth=len(match.group("indent")) // 2)
    options = _OPTIONS.search(rest)
    if options:
        element.options = [o.strip().strip('"') for o in options.group("v").split(" | ")]
        rest = rest[: options.start()] + rest[options.end() - len("selected="):]
    for pattern, name in ((_VALUE, "value"), (_SELECTED, "selected")):
        found = pattern.search(rest)
        if found:
            setattr(element, name, found.group("v"))
            rest = rest[: found.start()] + rest[found.end():]
    found_id, found_class = _ID.search(rest), _CLASS.search(rest)
    element.id = found_id.group("v") if found_id else ""
    element.classes = found_class.group("v").split() if found_class else []
    quoted = _QUOTED.search(rest)
    element.text = quoted.group("v") if quoted else ""
    words = _QUOTED.sub("", rest).split()
    element.checked = True if "checked" in words else False if "unchecked" in words else None
    element.focused = "focused" in words
    return element


def parse_page(observation: str) -> Page:
    """Parse an observation (``Task: ...`` line optional, then ``Page:`` and the element lines)."""
    page = Page()
    stack: list[PageElement] = []
    for line in observation.splitlines():
        if line.startswith("Task: "):
            page.task = line[len("Task: "):]
            continue
        element_match = _ELEMENT.match(line)
        text_match = None if element_match else _TEXT.match(line)
        if not element_match and not text_match:
            continue
        depth = len((element_match or text_match).group("indent")) // 2  # type: ignore[union-attr]
        while stack and stack[-1].depth >= depth:
            stack.pop()
        parent = stack[-1] if stack else None
        if text_match:
            if parent is not None:
                parent.texts.append(text_match.group("text"))
            continue
        element = _parse_element(element_match)  # type: ignore[arg-type]
        element.parent = parent
        if parent is not None:
            parent.children.append(element)
        page.elements.append(element)
        stack.append(element)
    return page
