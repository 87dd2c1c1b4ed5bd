"""MiniWoB++ without a browser: the action language, the page text view and its parser, the task list, the suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.core.errors import ConfigError, DataError
from ponder.core.settings import load_settings
from ponder.envs.base import EvalContext
from ponder.envs.miniwob.actions import normalize_key, parse_action
from ponder.envs.miniwob.browser import find_browser, require_browser
from ponder.envs.miniwob.page import parse_page
from ponder.envs.miniwob.render import render_elements
from ponder.envs.miniwob.solvers import SOLVERS
from ponder.envs.miniwob.suite import MiniWoBSuite, time_limit_of
from ponder.envs.miniwob.tasks import available_tasks, load_tasks
from ponder.envs.registry import get_suite

KEYS = ("<Enter>", "<Tab>", "<Backspace>", "<ArrowDown>", "a", "1", "C-a", "C-v")


@pytest.mark.parametrize(("text", "verb", "ref", "arg"), [
    ("click [5]", "click", 5, ""),
    ("click 5", "click", 5, ""),
    ("CLICK [12]", "click", 12, ""),
    ('type [7] "hello world"', "type", 7, "hello world"),
    ("type [7] hello world", "type", 7, "hello world"),
    ("select [4] Bobine", "select", 4, "Bobine"),
    ("press Enter", "press", None, "Enter"),
    ("click [5]\nand more", "click", 5, ""),
])
def test_parse_valid_actions(text: str, verb: str, ref: int | None, arg: str) -> None:
    parsed = parse_action(text)
    assert (parsed.problem, parsed.verb, parsed.ref, parsed.argument) == ("", verb, ref, arg)


@pytest.mark.parametrize(("text", "problem"), [
    ("", "not an action"),
    ("open the door", "not an action"),
    ("click", "needs an element ref"),
    ("click the button", "needs an element ref"),
    ("type [5]", "needs the text"),
    ("select [4]", "needs the option"),
    ("press", "needs a key"),
    ("type [5] " + "x" * 300, "at most"),
])
def test_parse_malformed_actions(text: str, problem: str) -> None:
    parsed = parse_action(text)
    assert problem in parsed.problem and parsed.verb == ""


def test_normalize_key() -> None:
    assert normalize_key("Enter", KEYS) == "<Enter>"
    assert normalize_key("<enter>", KEYS) == "<Enter>"
    assert normalize_key("return", KEYS) == "<Enter>"
    assert normalize_key("down", KEYS) == "<ArrowDown>"
    assert normalize_key("ctrl+a", KEYS) == "C-a"
    assert normalize_key("a", KEYS) == "a"
    assert normalize_key("F13", KEYS) is None


def _el(ref: int, parent: int, tag: str, text: str = "", value: str = "", id_: str = "", classes: str = "",
        focused: int = 0) -> dict[str, object]:
    return {"ref": ref, "parent": parent, "tag": tag, "text": text, "value": value, "id": id_, "classes": classes,
            "flags": [focused, 0, 0, 1]}


ELEMENTS = [
    _el(1, 0, "body"), _el(2, 1, "div", id_="wrap"), _el(3, 2, "div", id_="area"),
    _el(4, 3, "div", id_="boxes"),
    _el(5, 4, "label"), _el(6, 5, "input_checkbox", value="True", id_="ch0"), _el(-1, 5, "t", text="Apple"),
    _el(7, 4, "label"), _el(8, 7, "input_checkbox", value="", id_="ch1"), _el(-2, 7, "t", text="Pear"),
    _el(9, 3, "input_text", value="typed", id_="tt", focused=1),
    _el(10, 3, "select", id_="options"),
    _el(11, 3, "button", text="Submit", classes="ui-button ui-corner-all ui-widget secondary-action"),
    _el(12, 1, "div", classes="ui-resizable-handle ui-resizable-n"),
]
SELECTS = {"10": {"options": ["Aurora", "Bobine"], "selected": "Aurora"}}


def test_render_elements() -> None:
    text = render_elements(ELEMENTS, SELECTS)
    assert text.splitlines() == [
        "[4] div id=boxes",
        "  [5] label",
        "    [6] input_checkbox id=ch0 checked",
        '    "Apple"',
        "  [7] label",
        "    [8] input_checkbox id=ch1 unchecked",
        '    "Pear"',
        '[9] input_text id=tt value="typed" focused',
        '[10] select id=options options: "Aurora" | "Bobine" selected="Aurora"',
        '[11] button class=ui-button secondary-action "Submit"',
    ]


def test_render_empty_page() -> None:
    assert render_elements([]) == "(the page shows nothing)"


def test_parse_page_reads_the_rendering_back() -> None:
    page = parse_page("Task: Select Apple.\nPage:\n" + render_elements(ELEMENTS, SELECTS))
    assert page.task == "Select Apple."
    boxes = page.find("input_checkbox")
    assert [(b.ref, b.checked, b.label, b.id) for b in boxes] == [(6, True, "Apple", "ch0"), (8, False, "Pear", "ch1")]
    field = page.first("input_text")
    assert field is not None and field.value == "typed" and field.focused
    select = page.first("select")
    assert select is not None and select.options == ["Aurora", "Bobine"] and select.selected == "Aurora"
    button = page.first("button", text="Submit")
    assert button is not None and button.classes == ["ui-button", "secondary-action"]


def test_shipped_task_list() -> None:
    tasks = load_tasks()
    names = [t.task for t in tasks]
    assert len(names) >= 20 and len(set(names)) == len(names)
    assert {t.tier for t in tasks} == {"easy", "medium", "hard"}
    assert set(names) <= set(available_tasks())
    assert all(t.seeds for t in tasks)
    assert len(set(SOLVERS) & set(names)) >= 5


def test_bad_task_files(tmp_path: Path) -> None:
    bad = tmp_path / "tasks.json"
    for content, message in [
        ("not json", "tasks.json:1: not valid JSON"),
        (json.dumps({"items": []}), "tasks"),
        (json.dumps({"tasks": [{"task": "no-such-task-here"}]}), "not a MiniWoB"),
        (json.dumps({"tasks": [{"task": "click-test"}, {"task": "click-test"}]}), "twice"),
        (json.dumps({"tasks": [{"task": "Click Test"}]}), "task #0"),
        (json.dumps({"tasks": []}), "empty"),
    ]:
        bad.write_text(content)
        with pytest.raises(DataError, match=message):
            load_tasks(bad)
    with pytest.raises(DataError, match="no such"):
        load_tasks(tmp_path / "missing.json")


def test_suite_episodes_are_seed_major_with_stable_ids(tmp_path: Path) -> None:
    suite = get_suite("miniwob")
    assert isinstance(suite, MiniWoBSuite) and suite.needs_process and suite.policies == ("solver", "random")
    settings = load_settings()
    episodes = suite.episodes(settings)
    tasks = load_tasks()
    assert len(episodes) == sum(len(t.seeds) for t in tasks)
    assert [e.id for e in episodes[:2]] == ["miniwob/click-test/seed0", "miniwob/click-test-2/seed0"]
    assert episodes[len(tasks)].id == "miniwob/click-test/seed1"
    assert len({e.id for e in episodes}) == len(episodes)
    assert suite.episodes(settings, limit=3) == episodes[:3]
    custom = tmp_path / "mine.json"
    custom.write_text(json.dumps({"seeds": [7], "tasks": [{"task": "click-test", "tier": "easy"},
                                                           {"task": "enter-text", "seeds": [1, 2]}]}))
    assert [e.id for e in suite.episodes(settings, data=custom)] == [
        "miniwob/click-test/seed7", "miniwob/enter-text/seed1", "miniwob/enter-text/seed2"]


def test_solver_policy_defaults_to_the_tasks_with_solvers() -> None:
    from ponder.envs.context import EvalOptions

    settings = load_settings()
    suite = MiniWoBSuite()
    every = suite.episodes(settings)
    suite.check_options(EvalOptions(suite="miniwob", policy="solver"))
    solvable = suite.episodes(settings)
    assert {e.metadata["miniwob_task"] for e in solvable} == set(SOLVERS) & {t.task for t in load_tasks()}
    assert all(e.metadata["has_solver"] for e in solvable) and len(solvable) < len(every)
    assert suite.episodes(settings, data=Path("all")) == every
    assert MiniWoBSuite().episodes(settings, data=Path("solvers")) == solvable


def test_unknown_policy_is_a_config_error() -> None:
    suite = MiniWoBSuite()
    episode = suite.episodes(load_settings(), limit=1)[0]
    with pytest.raises(ConfigError, match="no policy"):
        suite.run_episode(episode, EvalContext(settings=load_settings(), policy="walkthrough"))


def test_time_limit_option() -> None:
    settings = load_settings()
    assert time_limit_of(EvalContext(settings=settings, episode_timeout=120)) == 120
    assert time_limit_of(EvalContext(settings=settings, extra={"time_limit": "task"})) is None
    assert time_limit_of(EvalContext(settings=settings, extra={"time_limit": "30"})) == 30
    with pytest.raises(ConfigError):
        time_limit_of(EvalContext(settings=settings, extra={"time_limit": "soon"}))


def test_missing_browser_is_a_config_error_naming_the_apt_packages(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    monkeypatch.delenv("MINIWOB_CHROME_BINARY", raising=False)
    monkeypatch.delenv("MINIWOB_CHROMEDRIVER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("ponder.envs.miniwob.browser._DRIVER_PATHS", ())
    assert find_browser() is None
    with pytest.raises(ConfigError, match="apt-get install -y chromium chromium-driver"):
        require_browser()


def test_candidate_actions_of_a_page() -> None:
    from ponder.core.environment import EnvReset, EnvStep
    from ponder.envs.miniwob.candidates import PageActions, candidate_actions, typed_phrases

    page = "Task: Enter \"Kasey Lee\" and select Bobine.\nPage:\n" + render_elements(ELEMENTS, SELECTS)
    utterance = 'Enter "Kasey Lee" and select Bobine.'
    assert typed_phrases(utterance) == ["Kasey Lee", "Enter", "Kasey", "Lee", "and", "select", "Bobine"]
    actions = candidate_actions(page, utterance)
    assert [a for a in actions if a.startswith("click")] == [f"click [{r}]" for r in (4, 5, 6, 7, 8, 9, 10, 11)]
    assert "select [10] Bobine" in actions and "select [10] Aurora" in actions
    assert "type [9] Kasey Lee" in actions and not [a for a in actions if a.startswith(("type [6]", "type [11]"))]
    assert all(parse_action(a).problem == "" for a in actions)  # every candidate is a well-formed action
    assert candidate_actions("Invalid action: no such element", utterance) == []
    source = PageActions()
    first = source(EnvReset(observation=page, info={"utterance": utterance}))
    assert first == actions
    assert source(EnvStep(observation="Invalid action: [99] is not a <select> list")) == actions  # previous page
