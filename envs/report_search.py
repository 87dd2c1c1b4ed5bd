"""Report sections of test-time search: the accuracy-vs-tokens frontier, adaptive allocation, search trees.

The frontier compares several runs; the allocation (``allocation.json``) and the trees (``search.jsonl``,
drawn by :mod:`ponder.envs.report_tree`) belong to one run.

The frontier has one point per run, labelled by its strategy (``single``, ``sc``, ``best_of_n``, ``beam``,
``lats``, ``refine``, ``adaptive``; ``random`` for the random policy): x is the mean total tokens per episode
(prompt + completion, verifier, value and reflection calls included: strategies count them in their usage),
y the success rate with its Wilson 95% interval. A ``random`` run is drawn as a floor line (its tokens are 0;
its environment steps are in the table).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.envs.metrics import mean_ci

if TYPE_CHECKING:
    from ponder.envs.base import EpisodeResult
    from ponder.envs.report import RunData
    from ponder.graphs.search.tree import SearchTree

FRONTIER_HEADER = ["strategy", "run", "n", "success [95% Wilson CI]", "tokens / ep", "model calls / ep",
                   "env steps / ep", "wall s / ep"]
#: Trees drawn in one report (the first episodes that have one).
MAX_TREES = 20


def is_floor(run: RunData) -> bool:
    """Whether the run is a no-model baseline (the ``random`` policy): the frontier's floor line."""
    return run.manifest.get("policy_kind") == "baseline" or run.manifest.get("policy") == "random"


def strategy_label(run: RunData) -> str:
    """The run's strategy as the frontier labels it (the policy's name for a harness or random run)."""
    m = run.manifest
    policy = str(m.get("policy", "agent"))
    if policy != "agent":
        return policy
    opts = m.get("options", {})
    name = m.get("strategy") or opts.get("strategy") or ("sc" if int(opts.get("samples", 1) or 1) > 1 else "single")
    budget = opts.get("budget_total") or opts.get("budget")
    return f"{name} ({budget})" if budget else str(name)


def frontier_points(runs: list[RunData]) -> list[dict[str, Any]]:
    """One point per run: label, run name, n, success rate with its interval, means per episode, random flag."""
    labels = [strategy_label(r) for r in runs]
    points = []
    for run, label in zip(runs, labels, strict=True):
        s = run.summary
        unique = labels.count(label) == 1
        points.append({"label": label if unique else f"{label} [{run.name}]", "run": run.name, "n": s.n,
                       "rate": s.success_rate, "tokens": s.tokens.value,
                       "calls": mean_ci([float(r.usage.model_calls) for r in run.results]).value,
                       "env_steps": s.env_steps.value, "wall": s.wall_seconds.value,
                       "random": is_floor(run)})
    return points


def frontier_rows(runs: list[RunData]) -> list[list[str]]:
    """The frontier table's rows, fewest tokens first."""
    return [[p["label"], p["run"], str(p["n"]), p["rate"].fmt(percent=True), f"{p['tokens']:.0f}",
             f"{p['calls']:.1f}", f"{p['env_steps']:.1f}", f"{p['wall']:.2f}"]
            for p in sorted(frontier_points(runs), key=lambda p: p["tokens"])]


# ---------------------------------------------------------------- adaptive allocation

def load_allocation(run_dir: Path) -> dict[str, Any] | None:
    """``allocation.json`` of an adaptive run (``None``: not an adaptive suite run)."""
    path = Path(run_dir) / "allocation.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def allocation_tables(alloc: dict[str, Any]) -> tuple[list[list[str]], list[list[str]]]:
    """``(totals rows, per-bin rows)`` of an allocation record."""
    totals = [["budget", str(alloc["budget"])], ["first pass (tokens)", f"{alloc['first_pass_tokens']:,}"],
              ["planned extra samples", f"{alloc['planned_extra_samples']:,}"],
              ["spent in all", f"{alloc['spent_tokens']:,} tokens, {alloc['spent_samples']:,} samples"],
              ["within budget", "yes" if alloc["within_budget"] else "NO"]]
    bins = []
    for name in ("easy", "medium", "hard", "unknown"):
        rows = [e for e in alloc.get("episodes", []) if e["difficulty"] == name]
        if rows:
            n = len(rows)
            bins.append([name, str(n), f"{sum(e['samples'] for e in rows) / n:.2f}",
                         f"{sum(e['planned_extra'] for e in rows) / n:.2f}",
                         f"{sum(e['tokens'] for e in rows) / n:.0f}",
                         f"{100 * sum(e['success'] for e in rows) / n:.1f}%"])
    return totals, bins


def allocation_section(run: RunData, fmt: str) -> str:
    """The adaptive allocation section of a run's report in ``md`` or ``html`` ("" when it has none)."""
    from ponder.envs.report import _html_table, _md_table

    alloc = load_allocation(run.path)
    if alloc is None:
        return ""
    totals, bins = allocation_tables(alloc)
    if fmt == "md":
        return "\n".join(["## Adaptive allocation", "", ALLOCATION_NOTE, "", _md_table(["", ""], totals), "",
                          _md_table(ALLOCATION_BIN_HEADER, bins), ""])
    return "\n".join(["<h2>Adaptive allocation</h2>", f"<p class='note'>{html.escape(ALLOCATION_NOTE)}</p>",
                      _html_table(["", ""], totals), _html_table(ALLOCATION_BIN_HEADER, bins)])


def frontier_section(runs: list[RunData], fmt: str) -> str:
    """The accuracy-vs-tokens section of a comparison in ``md`` (the table) or ``html`` (plot and table)."""
    from ponder.envs.report import _html_table, _img, _md_table
    from ponder.envs.report_plots import frontier

    rows = frontier_rows(runs)
    if fmt == "md":
        return "\n".join(["## Accuracy vs tokens", "", _md_table(FRONTIER_HEADER, rows), ""])
    return "\n".join(["<h2>Accuracy vs tokens</h2>", _img(frontier(frontier_points(runs)), "accuracy vs tokens"),
                      _html_table(FRONTIER_HEADER, rows)])


ALLOCATION_BIN_HEADER = ["difficulty (first pass)", "episodes", "samples / ep", "extra planned / ep", "tokens / ep",
                         "success"]
ALLOCATION_NOTE = ("Two samples per episode first; the rest of the budget went where the expected gain per token "
                   "was highest (Beta posterior of per-sample accuracy from verifier scores; "
                   "see ponder.graphs.strategies.allocation). Per episode: allocation.json.")


# ---------------------------------------------------------------- search trees

def _tree_links(run: RunData) -> dict[str, list[str]]:
    """Tree ids by episode id: the result's metadata, else its trajectories' ``search_tree_id``."""
    links = {r.episode_id: [str(r.metadata["search_tree_id"])] for r in run.results
             if r.metadata.get("search_tree_id")}
    wanted = {t: r.episode_id for r in run.results if r.episode_id not in links for t in r.trajectory_ids}
    path = run.path / "trajectories.jsonl"
    if wanted and path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            tree_id = (obj.get("metadata") or {}).get("search_tree_id") if isinstance(obj, dict) else None
            episode = wanted.get(str(obj.get("id"))) if tree_id else None
            if episode is not None and tree_id not in links.setdefault(episode, []):
                links[episode].append(str(tree_id))
    return links


def episode_trees(run: RunData) -> list[tuple[EpisodeResult, SearchTree]]:
    """``(result, tree)`` for the episodes whose result or trajectories link a tree in ``search.jsonl``."""
    from ponder.envs.report_tree import load_trees, trees_by_id

    trees = trees_by_id(load_trees(run.path))
    if not trees:
        return []
    links = _tree_links(run)
    by_task = {t.task: t for t in trees.values()}
    out = []
    for r in run.results:
        found = [trees[i] for i in links.get(r.episode_id, []) if i in trees]
        if not found and r.task in by_task:
            found = [by_task[r.task]]
        out += [(r, t) for t in found]
    return out


def trees_html(run: RunData) -> str:
    """The HTML section drawing the run's search trees ("" when it has none)."""
    from ponder.envs.report_tree import tree_caption, tree_svg

    pairs = episode_trees(run)
    if not pairs:
        return ""
    out = ["<h2>Search trees</h2>", "<p class='note'>Fill: node value (red 0 → green 1); size: visits; thick "
           "ring: terminal; orange edges: the chosen path. Hover a node for its action, observation and scores."
           "</p>"]
    for result, tree in pairs[:MAX_TREES]:
        verdict = "ok" if result.success else "bad"
        out.append(f"<h3 id='tree-{html.escape(tree.id)}'>{html.escape(result.episode_id)} "
                   f"<span class='{verdict}'>{'solved' if result.success else 'failed'}</span></h3>")
        out.append(f"<p>{tree_caption(tree)}</p><div style='overflow-x:auto'>{tree_svg(tree)}</div>")
    if len(pairs) > MAX_TREES:
        out.append(f"<p class='note'>{len(pairs) - MAX_TREES} more trees in search.jsonl.</p>")
    return "\n".join(out)
