"""Pages over single records.

An eval episode, a trajectory step by step (and the prompt a step saw), a self-consistency vote and its
samples, a search tree and its nodes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ponder.core.records import Trajectory
from ponder.envs.base import EpisodeResult
from ponder.graphs.search.tree import SearchTree, TreeNode
from ponder.graphs.self_consistency.records import SelfConsistencyResult
from ponder.viewer.catalog import RunEntry
from ponder.viewer.format import urlpart
from ponder.viewer.jsonl import JsonlFile
from ponder.viewer.prompt import prompt_for_step
from ponder.viewer.tree_svg import tree_svg
from ponder.viewer.web import RecordProblem, int_param, load_record, parse_count, render, run_entry

#: Records per page of the vote and search lists (each is read whole only for the page shown).
LIST_PAGE = 25


def episode_page(request: Request) -> Response:
    """An eval episode: its result and every trajectory it played (a plain run's line is its trajectory)."""
    entry = run_entry(request)
    line = int_param(request, "line")
    if entry.kind != "eval":  # a `ponder run` folder: the line is the trajectory (ids may repeat: not by id)
        traj = load_record(entry.trajectories, line, Trajectory, "trajectory")
        return render(request, "trajectory.html", {
            "run": entry, "traj": traj, "base": f"/run/{entry.key}/episode/{line}", "title": "Trajectory",
            "trees": _tree_lines(entry, [traj]), **_traj_context(traj)})
    result = load_record(entry.results, line, EpisodeResult, "episode result")
    trajectories: list[Trajectory] = []
    missing: list[str] = []
    problems: list[RecordProblem] = []
    for tid in result.trajectory_ids:
        number = entry.trajectory_line(tid)
        if number is None:
            missing.append(tid)
            continue
        try:
            trajectories.append(load_record(entry.trajectories, number, Trajectory, "trajectory"))
        except RecordProblem as exc:
            problems.append(exc)
    if not trajectories and result.trajectory is not None:
        trajectories.append(result.trajectory)
    vote_id = result.metadata.get("self_consistency_id")
    vote_line = entry.vote_line(str(vote_id)) if vote_id else None
    return render(request, "episode.html", {
        "run": entry, "line": line, "result": result, "trajectories": trajectories, "missing": missing,
        "problems": problems, "vote_line": vote_line, "trees": _tree_lines(entry, trajectories),
        "metadata": _pretty(result.metadata)})


def trajectory_page(request: Request) -> Response:
    """One trajectory of ``trajectories.jsonl``, step by step."""
    entry, traj = _trajectory(request)
    base = f"/run/{entry.key}/trajectory/{urlpart(traj.id)}"
    return render(request, "trajectory.html", {"run": entry, "traj": traj, "base": base, "title": "Trajectory",
                                               "trees": _tree_lines(entry, [traj]), **_traj_context(traj)})


def trajectory_prompt(request: Request) -> Response:
    """The prompt a trajectory's step ``k`` was generated from."""
    entry, traj = _trajectory(request)
    return _prompt(request, entry, traj, f"/run/{entry.key}/trajectory/{urlpart(traj.id)}")


def episode_prompt(request: Request) -> Response:
    """The prompt of a step of a `ponder run` folder's trajectory, addressed by its line."""
    entry = run_entry(request)
    line = int_param(request, "line")
    if entry.kind == "eval":
        raise HTTPException(404, "an eval episode's prompts are under its trajectories (/trajectory/<id>/prompt/<k>)")
    traj = load_record(entry.trajectories, line, Trajectory, "trajectory")
    return _prompt(request, entry, traj, f"/run/{entry.key}/episode/{line}")


def votes_page(request: Request) -> Response:
    """The self-consistency records of a run, a page at a time."""
    entry = run_entry(request)
    rows, paging = _list_page(request, entry.votes, "self-consistency", SelfConsistencyResult)
    return render(request, "votes.html", {"run": entry, "rows": rows, **paging})


def vote_page(request: Request) -> Response:
    """A vote: the answer table and every sample (each openable)."""
    entry = run_entry(request)
    line = int_param(request, "line")
    record = load_record(entry.votes, line, SelfConsistencyResult, "self-consistency")
    return render(request, "vote.html", {"run": entry, "line": line, "record": record,
                                         "chosen": record.chosen()})


def sample_page(request: Request) -> Response:
    """One sample of a vote, as a trajectory page."""
    entry, line, record, sample = _sample(request)
    base = f"/run/{entry.key}/vote/{line}/sample/{sample.index}"
    return render(request, "trajectory.html", {
        "run": entry, "traj": sample.trajectory, "base": base, "sample": sample, "vote_line": line,
        "record": record, "title": f"Sample {sample.index} of a vote", "trees": {}, **_traj_context(sample.trajectory)})


def sample_prompt(request: Request) -> Response:
    """The prompt of a step of a vote's sample."""
    entry, line, _record, sample = _sample(request)
    return _prompt(request, entry, sample.trajectory, f"/run/{entry.key}/vote/{line}/sample/{sample.index}")


def searches_page(request: Request) -> Response:
    """The search trees of a run, a page at a time."""
    entry = run_entry(request)
    rows, paging = _list_page(request, entry.searches, "search tree", SearchTree)
    return render(request, "searches.html", {"run": entry, "rows": rows, **paging})


def search_page(request: Request) -> Response:
    """A search tree drawn as a tree; ``?node=N`` opens a node."""
    entry = run_entry(request)
    line = int_param(request, "line")
    tree = load_record(entry.searches, line, SearchTree, "search tree")
    by_id = {n.id: n for n in tree.nodes}
    number = parse_count(request.query_params.get("node", ""))
    node = by_id.get(number) if number is not None else None
    path = _node_path(by_id, node.id) if node is not None else []
    svg = tree_svg(tree, lambda n: f"?node={n}#node", selected=node.id if node is not None else None)
    return render(request, "search.html", {
        "run": entry, "line": line, "tree": tree, "svg": svg, "node": node, "node_path": path,
        "path_nodes": [tree.nodes[i] for i in path], "chosen": set(tree.chosen), "config": _pretty(tree.config)})


def _node_path(by_id: dict[int, TreeNode], node_id: int) -> list[int]:
    """The node ids from the root to ``node_id``; a broken record (a cycle, a missing parent) ends the walk."""
    out: list[int] = []
    current: int | None = node_id
    while current is not None and current in by_id and current not in out:
        out.append(current)
        current = by_id[current].parent
    return out[::-1]


def _trajectory(request: Request) -> tuple[RunEntry, Trajectory]:
    entry = run_entry(request)
    tid = request.path_params["tid"]
    number = entry.trajectory_line(tid)
    if number is None:
        raise HTTPException(404, f"no trajectory {tid!r} in this run's trajectories.jsonl")
    return entry, load_record(entry.trajectories, number, Trajectory, "trajectory")


def _sample(request: Request) -> tuple[RunEntry, int, SelfConsistencyResult, Any]:
    entry = run_entry(request)
    line = int_param(request, "line")
    record = load_record(entry.votes, line, SelfConsistencyResult, "self-consistency")
    index = int_param(request, "i")
    sample = next((s for s in record.samples if s.index == index), None)
    if sample is None:
        raise HTTPException(404, f"the vote on line {line} has no sample {index}")
    return entry, line, record, sample


def _prompt(request: Request, entry: RunEntry, traj: Trajectory, base: str) -> Response:
    k = int_param(request, "k")
    if k >= max(len(traj.steps), 1):
        raise HTTPException(404, f"the trajectory has no step {k}")
    view = prompt_for_step(traj, k)
    return render(request, "prompt.html", {"run": entry, "traj": traj, "k": k, "view": view, "base": base})


def _traj_context(traj: Trajectory) -> dict[str, Any]:
    meta = dict(traj.metadata)
    memory = meta.pop("memory", None)
    return {"memory": memory, "memory_json": _pretty(memory) if memory else "",
            "retrieved": _retrieved(memory), "trace_id": meta.get("trace_id"),
            "metadata": _pretty(meta), "total_seconds": sum(s.model_seconds + s.tool_seconds for s in traj.steps)}


def _retrieved(memory: object) -> list[str]:
    """The recalled memories of a trajectory's memory log, as text."""
    if not isinstance(memory, dict):
        return []
    items = memory.get("retrieved") or []
    if isinstance(items, dict):
        items = [f"{k}: {v}" for k, v in items.items()]
    elif not isinstance(items, list):
        items = [items]
    return [it if isinstance(it, str) else json.dumps(it, ensure_ascii=False, default=str) for it in items]


def _tree_lines(entry: RunEntry, trajectories: list[Trajectory]) -> dict[str, int]:
    """Search tree id → its line in search.jsonl, for the trajectories that came from a search."""
    out: dict[str, int] = {}
    for traj in trajectories:
        tree_id = traj.metadata.get("search_tree_id")
        number = entry.search_line(str(tree_id)) if tree_id else None
        if number is not None:
            out[str(tree_id)] = number
    return out


def _pretty(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=True) if value else ""


def _list_page(request: Request, file: JsonlFile | None, what: str,
               model: Callable[..., Any]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One page of a record file: each line's record, or what is wrong with it."""
    if file is None:
        raise HTTPException(404, f"this run has no {what} records")
    lines = file.lines
    pages = max(1, -(-len(lines) // LIST_PAGE))
    page = min(max(parse_count(request.query_params.get("page", "1")) or 1, 1), pages)
    rows = []
    for ref in lines[(page - 1) * LIST_PAGE: page * LIST_PAGE]:
        try:
            rows.append({"line": ref.number, "record": load_record(file, ref.number, model, what), "problem": None})
        except RecordProblem as exc:
            rows.append({"line": ref.number, "record": None, "problem": exc.reason})
    return rows, {"page": page, "pages": pages, "total": len(lines)}


def routes() -> list[Route]:
    """The routes of this module."""
    return [Route("/run/{key}/episode/{line}", episode_page),
            Route("/run/{key}/episode/{line}/prompt/{k}", episode_prompt),
            # a trajectory id may hold any character (links percent-encode it): the prompt route first
            Route("/run/{key}/trajectory/{tid:path}/prompt/{k}", trajectory_prompt),
            Route("/run/{key}/trajectory/{tid:path}", trajectory_page),
            Route("/run/{key}/votes", votes_page), Route("/run/{key}/vote/{line}", vote_page),
            Route("/run/{key}/vote/{line}/sample/{i}", sample_page),
            Route("/run/{key}/vote/{line}/sample/{i}/prompt/{k}", sample_prompt),
            Route("/run/{key}/searches", searches_page), Route("/run/{key}/search/{line}", search_page)]
