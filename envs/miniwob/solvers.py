"""Hand-written solvers for some MiniWoB++ tasks: a harness check, never an agent result.

Each solver reads only the observation text the agent gets (parsed by :mod:`.page`) and answers with the
same action strings (``click [ref]``, ``type [ref] text``, ``select [ref] option``), so a solver winning its
task proves the observation and action layer end to end in a real browser. A solver is called once per
turn with the task's instruction and the latest page and returns the next action (``None``: it is stuck).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pydantic import BaseModel, Field

from ponder.envs.miniwob.env import MiniWoBEnv
from ponder.envs.miniwob.page import Page, PageElement, parse_page

Solver = Callable[[str, Page, list[str]], str | None]
ORDINALS = {"1st": 0, "2nd": 1, "3rd": 2, "4th": 3, "5th": 4}


def _quoted(utterance: str) -> list[str]:
    return re.findall(r'"([^"]*)"', utterance)


def _click(element: PageElement | None) -> str | None:
    return None if element is None else f"click [{element.ref}]"


def _submit(page: Page, name: str = "Submit") -> str | None:
    button = next((e for e in page.find("button") if e.text.lower() == name.lower()), None)
    return _click(button)


def _fill(fields: list[tuple[PageElement | None, str]]) -> str | None:
    """Type into the first field whose value differs from what it should hold; ``""`` when all are done."""
    for element, wanted in fields:
        if element is None:
            return None
        if element.value != wanted:
            return f"type [{element.ref}] {wanted}"
    return ""


def click_test(utterance: str, page: Page, done: list[str]) -> str | None:
    """Click the only button."""
    return _click(page.first("button"))


def click_named_button(utterance: str, page: Page, done: list[str]) -> str | None:
    """click-test-2 ("Click button ONE."), click-button ('"Ok" button'), click-dialog-2 ('labeled "Cancel"')."""
    quoted = _quoted(utterance)
    target = quoted[0] if quoted else re.search(r"button (\S+?)\.", utterance).group(1)  # type: ignore[union-attr]
    if target == "x":  # the dialog's close button: an icon, labelled "Close" for screen readers
        return click_dialog(utterance, page, done)
    return _click(page.first("button", text=target))


def click_link(utterance: str, page: Page, done: list[str]) -> str | None:
    """Click the span link with the quoted text."""
    return _click(page.first("span", text=_quoted(utterance)[0], cls="alink"))


def focus_text(utterance: str, page: Page, done: list[str]) -> str | None:
    """Click the text box (the n-th for focus-text-2)."""
    boxes = page.find("input_text")
    nth = re.search(r"(\d+(?:st|nd|rd|th))", utterance)
    return _click(boxes[ORDINALS.get(nth.group(1), 0)] if nth and boxes else (boxes[0] if boxes else None))


def click_dialog(utterance: str, page: Page, done: list[str]) -> str | None:
    """Click the dialog's close button (a button labelled "Close")."""
    return _click(next((b for b in page.find("button") if b.label == "Close"), None))


def click_tab(utterance: str, page: Page, done: list[str]) -> str | None:
    """Click the tab "Tab #n"."""
    number = re.search(r"Tab #(\d+)", utterance).group(1)  # type: ignore[union-attr]
    return _click(page.first("a", text=f"Tab #{number}"))


def click_button_sequence(utterance: str, page: Page, done: list[str]) -> str | None:
    """Click ONE, then TWO."""
    return _click(page.first("button", text="ONE" if not done else "TWO"))


def enter_text(utterance: str, page: Page, done: list[str]) -> str | None:
    """Type the quoted text (in upper / lower case for enter-text-2), then Submit."""
    text = _quoted(utterance)[0]
    if "lower case" in utterance:
        text = text.lower()
    elif "upper case" in utterance:
        text = text.upper()
    step = _fill([(page.first("input_text"), text)])
    return step or (None if step is None else _submit(page))


def enter_password(utterance: str, page: Page, done: list[str]) -> str | None:
    """Type the password into both fields, then Submit."""
    password = _quoted(utterance)[0]
    fields = page.find("input_password")
    step = _fill([(f, password) for f in fields] if len(fields) == 2 else [(None, password)])
    return step or (None if step is None else _submit(page))


def login_user(utterance: str, page: Page, done: list[str]) -> str | None:
    """Fill user name and password, then Login."""
    username, password = _quoted(utterance)[:2]
    step = _fill([(page.first("input_text"), username), (page.first("input_password"), password)])
    return step or (None if step is None else _submit(page, "Login"))


def click_option(utterance: str, page: Page, done: list[str]) -> str | None:
    """Tick the radio button labelled with the target, then Submit."""
    target = re.match(r"Select (.*) and click Submit\.", utterance).group(1)  # type: ignore[union-attr]
    radio = page.first("input_radio", label=target)
    if radio is None:
        return None
    return _click(radio) if not radio.checked else _submit(page)


def click_checkboxes(utterance: str, page: Page, done: list[str]) -> str | None:
    """Make exactly the named checkboxes ticked, then Submit."""
    names = re.match(r"Select (.*) and click Submit\.", utterance).group(1)  # type: ignore[union-attr]
    wanted = set() if names == "nothing" else {n.strip() for n in names.split(",")}
    for box in page.find("input_checkbox"):
        if bool(box.checked) != (box.label in wanted):
            return _click(box)
    return _submit(page)


def choose_list(utterance: str, page: Page, done: list[str]) -> str | None:
    """Select the item in the drop-down list, then Submit."""
    target = re.match(r"Select (.*) from the list", utterance).group(1)  # type: ignore[union-attr]
    select = page.first("select")
    if select is None:
        return None
    return f"select [{select.ref}] {target}" if select.selected != target else _submit(page)


def enter_date(utterance: str, page: Page, done: list[str]) -> str | None:
    """Type the date (mm/dd/yyyy) into the date field, then Submit."""
    month, day, year = re.search(r"(\d\d)/(\d\d)/(\d{4})", utterance).groups()  # type: ignore[union-attr]
    field = page.first("input_date")
    if field is None:
        return None
    if field.value != f"{year}-{month}-{day}":
        return f"type [{field.ref}] {month}/{day}/{year}"
    return _submit(page)


def simple_arithmetic(utterance: str, page: Page, done: list[str]) -> str | None:
    """Compute ``a op b`` shown on the page, type it, then Submit."""
    problem = next((e for e in page.elements if e.id == "math-problem"), None)
    match = re.match(r"(-?\d+)\s*([-+x])\s*(-?\d+)", problem.text if problem else "")
    if match is None:
        return None
    a, op, b = int(match.group(1)), match.group(2), int(match.group(3))
    answer = str(a + b if op == "+" else a - b if op == "-" else a * b)
    step = _fill([(page.first("input_text"), answer)])
    return step or (None if step is None else _submit(page))


def navigate_tree(utterance: str, page: Page, done: list[str]) -> str | None:
    """Click the named file or folder when shown, else open the next closed folder."""
    target = _quoted(utterance)[0]
    found = next((e for e in page.find("span") if e.text == target), None)
    if found is not None:
        return _click(found)
    for folder in page.find("span", cls="folder"):
        li = folder.parent
        if li is not None and "expandable" in li.classes and f"click [{folder.ref}]" not in done:
            return _click(folder)
    return None


#: Task → solver (the harness policy ``solver``).
SOLVERS: dict[str, Solver] = {
    "click-test": click_test,
    "click-test-2": click_named_button,
    "click-button": click_named_button,
    "click-dialog-2": click_named_button,
    "click-link": click_link,
    "focus-text": focus_text,
    "focus-text-2": focus_text,
    "click-dialog": click_dialog,
    "click-tab": click_tab,
    "click-button-sequence": click_button_sequence,
    "enter-text": enter_text,
    "enter-text-2": enter_text,
    "enter-password": enter_password,
    "login-user": login_user,
    "click-option": click_option,
    "click-checkboxes": click_checkboxes,
    "choose-list": choose_list,
    "enter-date": enter_date,
    "simple-arithmetic": simple_arithmetic,
    "navigate-tree": navigate_tree,
}


class SolverRun(BaseModel):
    """One episode played by a solver."""

    task: str
    seed: int | None
    utterance: str = ""
    actions: list[str] = Field(default_factory=list)
    observations: list[str] = Field(default_factory=list)
    reward: float = 0.0
    done: bool = False
    won: bool = False
    stuck: bool = False


def run_solver(env: MiniWoBEnv, seed: int | None = None, max_steps: int = 12) -> SolverRun:
    """Play one episode of ``env.task`` with its solver (text observation in, action strings out).

    Raises:
        KeyError: when the task has no solver.
    """
    solver = SOLVERS[env.task]
    reset = env.reset(seed)
    run = SolverRun(task=env.task, seed=reset.info.get("seed"), utterance=reset.info.get("utterance", ""),
                    observations=[reset.observation])
    page = parse_page(reset.observation)
    for _ in range(max_steps):
        action = solver(run.utterance, page, run.actions)
        if not action:
            run.stuck = True
            break
        result = env.step(action)
        run.actions.append(action)
        run.observations.append(result.observation)
        run.reward += result.reward
        if result.done:
            run.done, run.won = True, bool(result.info.get("won"))
            break
        page = parse_page(result.observation)
    return run
