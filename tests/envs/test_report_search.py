"""Report sections of test-time search: the accuracy-vs-tokens frontier of several runs (one point per strategy,
Wilson intervals, the random floor) and the search trees drawn as escaped SVG with the chosen path."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from ponder.core.io import append_jsonl
from ponder.core.records import Usage
from ponder.core.settings import load_settings
from ponder.envs.base import EpisodeResult
from ponder.envs.context import EvalOptions
from ponder.envs.report import load_run, write_comparison, write_report
from ponder.envs.report_search import episode_trees, frontier_points, frontier_rows
from ponder.envs.report_tree import tree_svg
from ponder.envs.runner import run_eval
from ponder.graphs.search.tree import SEARCH_FILE, SearchTree, TreeNode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _fake_suite import FakeSuite  # noqa: E402


def make_run(tmp_path: Path, name: str, manifest: dict | None = None, tokens: int = 15) -> Path:
    run_eval(FakeSuite(n=6), EvalOptions(suite="fake", out_dir=tmp_path / name),
             load_settings(out_dir=tmp_path), quiet=True, model=object())  # type: ignore[arg-type]
    path = tmp_path / name
    results = [EpisodeResult.model_validate_json(line) for line in (path / "results.jsonl").read_text().splitlines()]
    (path / "results.jsonl").write_text("".join(
        r.model_copy(update={"usage": Usage(prompt_tokens=tokens, model_calls=2)}).model_dump_json() + "\n"
        for r in results))
    if manifest:
        data = json.loads((path / "run.json").read_text())
        for key, value in manifest.items():
            data.setdefault(key, {}).update(value) if isinstance(value, dict) else data.update({key: value})
        (path / "run.json").write_text(json.dumps(data))
    return path


def test_frontier_one_point_per_strategy_with_the_random_floor(tmp_path):
    single = make_run(tmp_path, "single", tokens=100)
    lats = make_run(tmp_path, "lats", {"strategy": "lats", "options": {"strategy": "lats", "budget": "20000t"}},
                    tokens=900)
    rand = make_run(tmp_path, "rand", {"policy": "random", "policy_kind": "baseline"}, tokens=0)
    runs = [load_run(p) for p in (lats, single, rand)]
    points = {p["label"]: p for p in frontier_points(runs)}
    assert set(points) == {"single", "lats (20000t)", "random"}
    assert points["random"]["random"] and not points["single"]["random"]
    assert points["lats (20000t)"]["tokens"] == 900 and points["single"]["calls"] == 2
    assert points["single"]["rate"].fmt(percent=True) == "50.0% [18.8, 81.2]"  # Wilson, 3 of 6
    rows = frontier_rows(runs)
    assert [r[0] for r in rows] == ["random", "single", "lats (20000t)"]  # fewest tokens first
    md, page, text = write_comparison([single, lats, rand], tmp_path / "cmp")
    assert "## Accuracy vs tokens" in text and "| lats (20000t) | lats | 6 | 50.0% [18.8, 81.2] | 900 |" in text
    html = page.read_text()
    assert "Accuracy vs tokens" in html and len(re.findall(r"data:image/png;base64,", html)) >= 1


def test_same_strategy_twice_is_told_apart_by_run(tmp_path):
    a, b = make_run(tmp_path, "a"), make_run(tmp_path, "b")
    labels = [p["label"] for p in frontier_points([load_run(a), load_run(b)])]
    assert labels == ["single [a]", "single [b]"]


HOSTILE = "<script>alert('x')</script>"


def tree(task: str) -> SearchTree:
    nodes = [TreeNode(id=0, visits=4, value=0.5),
             TreeNode(id=1, parent=0, depth=1, action="go north", observation=HOSTILE, value=0.9, visits=3),
             TreeNode(id=2, parent=0, depth=1, action="<img src=x onerror=alert(1)>", value=0.1, visits=1,
                      terminal=True, status="max_steps", reflection=HOSTILE),
             TreeNode(id=3, parent=1, depth=2, action="take key", answer="won", value=1.0, visits=1, terminal=True)]
    return SearchTree(strategy="lats", task=task, nodes=nodes, chosen=[0, 1, 3], answer="won", success=True)


def test_tree_svg_escapes_text_and_highlights_the_chosen_path():
    svg = tree_svg(tree("t"))
    assert "<script" not in svg and "<img" not in svg and "&lt;script&gt;" in svg
    assert svg.count("stroke='#e8710a'") == 2  # edges 0-1 and 1-3
    assert svg.count("<circle") == 4 and svg.startswith("<svg")
    big = SearchTree(strategy="beam", task="t", nodes=[TreeNode(id=i, parent=i - 1 if i else None, depth=i)
                                                        for i in range(50)])
    assert "45 more nodes not drawn" in tree_svg(big, max_nodes=5)


def test_report_draws_the_trees_its_episodes_link(tmp_path):
    path = make_run(tmp_path, "lats")
    linked, by_trajectory, by_task = tree("task 0"), tree("something else"), tree("task 4")
    for t in (linked, by_trajectory, by_task, tree("task nobody played")):
        append_jsonl(path / SEARCH_FILE, t)
    results = [EpisodeResult.model_validate_json(line) for line in (path / "results.jsonl").read_text().splitlines()]
    results[0].metadata["search_tree_id"] = linked.id
    results[2].trajectory_ids = ["traj2"]
    (path / "results.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in results))
    (path / "trajectories.jsonl").write_text(json.dumps({"id": "traj2", "metadata": {"search_tree_id":
                                                                                        by_trajectory.id}}) + "\n")
    pairs = [(r.episode_id, t.id) for r, t in episode_trees(load_run(path))]
    assert pairs == [("e00", linked.id), ("e02", by_trajectory.id), ("e04", by_task.id)]
    write_report(path)
    page = (path / "report.html").read_text()
    assert "<h2>Search trees</h2>" in page and page.count("<svg") == 3
    assert HOSTILE not in page and "onerror=alert(1)>" not in page
    assert "## Episodes" in (path / "report.md").read_text()  # the existing sections still render
