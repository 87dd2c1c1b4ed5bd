"""Fixtures of the real-browser tests of ``ponder view``: real records, hostile records, the server, Chromium.

One session builds everything once: the records of ``scripts/viewer_screenshots.py`` (made by the real CLI with
the embedded model), hostile record folders written with the record models, a ``live`` eval folder the live
test appends to, a real ``ponder view`` server and one headless Chromium. Every page a test opens is
screenshotted into ``$PONDER_TEST_ARTIFACTS/viewer/`` (default ``.test-artifacts/viewer/``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ponder.core.records import Step, Trajectory, Usage
from ponder.core.viewlinks import run_key
from ponder.envs.base import EpisodeResult
from ponder.envs.miniwob.browser import alive, find_browser
from ponder.graphs.search.tree import SearchTree, TreeNode
from ponder.graphs.self_consistency.records import JudgeRecord, SampleRecord, SelfConsistencyResult
from ponder.graphs.self_consistency.voting import VoteRow

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("PONDER_TEST_ARTIFACTS") or REPO / ".test-artifacts") / "viewer"
SKIP_REASON = "chromium / chromedriver not installed (apt-get install chromium chromium-driver)"
BROWSER = find_browser()

_spec = importlib.util.spec_from_file_location("viewer_screenshots", REPO / "scripts" / "viewer_screenshots.py")
assert _spec is not None and _spec.loader is not None
shots = importlib.util.module_from_spec(_spec)
sys.modules["viewer_screenshots"] = shots
_spec.loader.exec_module(shots)

# Record text that is markup if a page ever stops escaping it.
H_SCRIPT = "<script>window.__pwned=1</script>"
H_IMG = '<img src=x onerror="window.__pwned=1">'
H_SVG = '"><svg onload=window.__pwned=1>'
H_QUOTE = "' onmouseover='window.__pwned=1' x='"
H_JS = "javascript:window.__pwned=1"
H_TEMPLATE = "{{7*7}}"
H_CLOSE = "</title></textarea></svg></style><script>window.__pwned=1</script>"
HOSTILE = f"{H_SCRIPT} {H_IMG} {H_SVG} {H_QUOTE} {H_JS} {H_TEMPLATE} {H_CLOSE}"
HOSTILE_ID = 'x"><img src=x onerror=window.__pwned=1>'
HOSTILE_FOLDER = '"><img src=x onerror="window.__pwned=1">'
MALFORMED = '{"episode_id": "broken", "task": "' + H_SCRIPT + '", oops}'
TORN = '{"episode_id": "torn", "task": "' + H_SCRIPT


@dataclass
class Records:
    """The records the browser tests read: run folders by name, under one root."""

    root: Path
    runs: dict[str, Path] = field(default_factory=dict)

    def key(self, name: str) -> str:
        """The viewer's key of the run folder ``name``."""
        return run_key(self.runs[name])

    def lines(self, name: str, file: str) -> list[dict[str, Any]]:
        """The JSON objects of ``file`` in run folder ``name`` (good lines only)."""
        out = []
        for line in (self.runs[name] / file).read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


def _hostile_steps() -> list[Step]:
    return [
        Step(index=0, kind="action", raw=HOSTILE, thought=HOSTILE, action=HOSTILE, action_input=HOSTILE,
             observation=HOSTILE, prompt_tokens=11, completion_tokens=7, model_seconds=0.25),
        Step(index=1, kind="final", raw=f"Final Answer: {HOSTILE}", thought=HOSTILE, prompt_tokens=20,
             completion_tokens=5),
    ]


def hostile_trajectory(traj_id: str, **metadata: Any) -> Trajectory:
    """A trajectory with hostile text in every free-text field (task, model, steps, answer, error, metadata)."""
    return Trajectory(id=traj_id, task=HOSTILE, agent="react", model=HOSTILE, backend=HOSTILE, steps=_hostile_steps(),
                      final_answer=HOSTILE, status="solved", error=HOSTILE,
                      usage=Usage(prompt_tokens=31, completion_tokens=12, model_calls=2),
                      metadata={"tools": ["calculator"], "note": HOSTILE, "prompt_sha256": HOSTILE, **metadata})


def hostile_vote(vote_id: str) -> SelfConsistencyResult:
    """A self-consistency record whose answers, samples and judge are hostile."""
    samples = [SampleRecord(index=i, wave=0, seed=i, temperature=0.7, top_p=0.95, key=HOSTILE if i < 2 else "42",
                            trajectory=hostile_trajectory(f"vote-sample-{i}", sample=i, self_consistency_id=vote_id))
               for i in range(3)]
    votes = [VoteRow(key=HOSTILE, answer=HOSTILE, votes=2, weight=2.0, samples=[0, 1]),
             VoteRow(key="42", answer=H_IMG, votes=1, weight=1.0, samples=[2])]
    return SelfConsistencyResult(id=vote_id, task=HOSTILE, agent="react", model=HOSTILE, samples_planned=3,
                                 samples_run=3, final_answer=HOSTILE, winner_key=HOSTILE, chosen_sample=0,
                                 agreement=2 / 3, votes=votes, samples=samples, stop_reason=HOSTILE,
                                 judge=JudgeRecord(choice=1, raw=HOSTILE), metadata={"note": HOSTILE})


def hostile_tree(tree_id: str) -> SearchTree:
    """A small beam tree (root, two children, a terminal grandchild on the chosen path) full of hostile text."""
    def node(i: int, parent: int | None, depth: int, **kw: Any) -> TreeNode:
        return TreeNode(id=i, parent=parent, depth=depth, thought=HOSTILE, action=HOSTILE, action_input=HOSTILE,
                        observation=HOSTILE, status=HOSTILE, reflection=HOSTILE, **kw)
    nodes = [node(0, None, 0, value=0.5, visits=3), node(1, 0, 1, value=0.9, visits=2, reward=1.0),
             node(2, 0, 1, value=0.1, visits=1), node(3, 1, 2, value=1.0, visits=1, terminal=True, answer=HOSTILE)]
    return SearchTree(id=tree_id, strategy="beam", task=HOSTILE, nodes=nodes, chosen=[0, 1, 3], answer=HOSTILE,
                      success=True, config={"beam_width": 2, "note": HOSTILE}, stop_reason=HOSTILE,
                      metadata={"note": HOSTILE})


def _write_lines(path: Path, records: list[Any], malformed_at: int | None = None, torn: bool = False) -> None:
    lines = [r if isinstance(r, str) else r.model_dump_json() for r in records]
    if malformed_at is not None:
        lines.insert(malformed_at, MALFORMED)
    text = "".join(line + "\n" for line in lines)
    path.write_text(text + (TORN if torn else ""), encoding="utf-8")


def make_hostile(root: Path) -> dict[str, Path]:
    """Hostile record folders under ``root``: an eval, a ``ponder run`` folder and a folder with a hostile name.

    Each JSONL file of the eval and the runs folder has a malformed middle line and a torn last line (results.jsonl,
    trajectories.jsonl); the eval links an episode to a vote and a search tree and has a hostile ``report.html``.
    """
    ev, runs, named = root / "hostile-eval", root / "hostile-runs", root / HOSTILE_FOLDER
    for folder in (ev, runs, named):
        folder.mkdir(parents=True)
    tree, vote = hostile_tree("tree-hostile"), hostile_vote("vote-hostile")
    t1 = hostile_trajectory("traj-hostile-1", self_consistency_id=vote.id)
    t2 = hostile_trajectory(HOSTILE_ID, search_tree_id=tree.id, search_node=3)
    results = [EpisodeResult(episode_id="ep-hostile-1", suite=HOSTILE, task=HOSTILE, tier=HOSTILE, prediction=HOSTILE,
                             gold=HOSTILE, status=HOSTILE, failure="wrong_answer", error=HOSTILE, env_steps=2,
                             usage=t1.usage, trajectory_ids=[t1.id], metadata={"self_consistency_id": vote.id}),
               EpisodeResult(episode_id=HOSTILE_ID, suite=HOSTILE, task=HOSTILE, tier=HOSTILE, prediction=HOSTILE,
                             gold=HOSTILE, success=True, score=1.0, status="solved", env_steps=2, usage=t2.usage,
                             trajectory_ids=[t2.id], metadata={"search_tree_id": tree.id})]
    manifest = {"suite": HOSTILE, "episodes": 2, "policy": "agent", "strategy": HOSTILE, "model": HOSTILE,
                "options": {"agent": HOSTILE}, "settings": {"model": HOSTILE, "agent": HOSTILE},
                "started": HOSTILE, "starts": [{"started": HOSTILE}]}
    (ev / "run.json").write_text(json.dumps(manifest), encoding="utf-8")
    _write_lines(ev / "results.jsonl", results, malformed_at=1, torn=True)
    _write_lines(ev / "trajectories.jsonl", [t1, t2], malformed_at=1, torn=True)
    _write_lines(ev / "self_consistency.jsonl", [vote])
    _write_lines(ev / "search.jsonl", [tree])
    (ev / "report.html").write_text(f"<html><body>{H_SCRIPT}{H_IMG}</body></html>", encoding="utf-8")
    _write_lines(runs / "trajectories.jsonl", [hostile_trajectory("run-hostile-1"), hostile_trajectory(HOSTILE_ID)],
                 malformed_at=1, torn=True)
    _write_lines(named / "trajectories.jsonl", [hostile_trajectory("named-hostile-1")])
    return {"hostile-eval": ev, "hostile-runs": runs, "hostile-name": named}


def make_live(root: Path, source: Path, name: str = "live") -> Path:
    """A live eval folder ``name``: ``source``'s manifest and its first two results (no report yet, so it is live)."""
    live = root / name
    live.mkdir()
    shutil.copy(source / "run.json", live / "run.json")
    results = (source / "results.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (live / "results.jsonl").write_text("".join(results[:2]), encoding="utf-8")
    shutil.copy(source / "trajectories.jsonl", live / "trajectories.jsonl")
    return live


@pytest.fixture(scope="session")
def records(tmp_path_factory: pytest.TempPathFactory) -> Records:
    """Every record folder of the browser tests, under one ``runs/`` root (the real runs take a minute or two)."""
    if BROWSER is None:
        pytest.skip(SKIP_REASON)
    root = tmp_path_factory.mktemp("viewer") / "runs"
    made = Records(root=root, runs=shots.make_runs(root))
    made.runs.update(make_hostile(root))
    for name in ("live", "live-filtered", "live-torn"):
        made.runs[name] = make_live(root, made.runs["eval-a"], name)
    return made


@pytest.fixture(scope="session")
def view_server(records: Records, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a real ``ponder view <root>`` server; afterwards the process is gone."""
    log = tmp_path_factory.mktemp("viewer-log") / "ponder-view.log"
    with shots.serve([records.root], log=log) as (base, proc):
        yield base
    assert proc.poll() is not None and not alive(proc.pid), "the ponder view server is still running"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session; afterwards none of its processes is alive.

    The screenshots of an earlier session are removed first (the folder holds this session's pages only).
    """
    if BROWSER is None:
        pytest.skip(SKIP_REASON)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    with shots.open_browser() as driver:
        pids = driver.ponder_pids()
        yield driver
    assert not [p for p in pids if alive(p)], "a browser process outlived the session"


@dataclass(frozen=True)
class Hostile:
    """The hostile strings the hostile records carry (for the tests' assertions)."""

    script: str = H_SCRIPT
    template: str = H_TEMPLATE
    folder: str = HOSTILE_FOLDER
    trajectory_id: str = HOSTILE_ID


@pytest.fixture(scope="session")
def hostile() -> Hostile:
    """The hostile strings of :func:`make_hostile`'s records."""
    return Hostile()


@pytest.fixture(scope="session")
def console_problems() -> list[str]:
    """Browser console messages about our pages that mention a Content Security Policy violation."""
    return []


Visit = Callable[..., Any]


@pytest.fixture
def visit(browser: Any, view_server: str, request: pytest.FixtureRequest, console_problems: list[str]) -> Visit:
    """``visit(path_or_url)``: open a page, wait for it to load, screenshot it, check it ran no injected script.

    Returns the driver. Screenshots go to ``ARTIFACTS/<test>-<n>.png``; CSP violations are collected.
    """
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    counter = iter(range(1, 1000))

    def go(target: str | None = None) -> Any:
        if target is not None:
            browser.get(target if target.startswith("http") else view_server + target)
        snap(browser, f"{name}-{next(counter):02d}")
        return browser

    def snap(driver: Any, stem: str) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(driver, 15).until(lambda d: d.execute_script("return document.readyState") == "complete")
        driver.save_screenshot(str(ARTIFACTS / f"{stem}.png"))
        assert driver.execute_script("return typeof window.__pwned") == "undefined", driver.current_url
        for entry in driver.get_log("browser"):
            if "Content Security Policy" in entry.get("message", ""):
                console_problems.append(f"{driver.current_url}: {entry['message']}")

    go.snap = lambda: snap(browser, f"{name}-{next(counter):02d}")  # type: ignore[attr-defined]
    return go
