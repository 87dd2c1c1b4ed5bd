"""A finished search as an :class:`~ponder.graphs.strategies.base.Outcome`, and its records written.

The outcome's ``trajectories`` are the explored terminal paths (one per terminal node, in creation order; the
chosen leaf's path is added when it is not terminal), its ``candidates`` the scored leaves (best first), its
``chosen`` the best leaf's trajectory, its ``usage`` everything the search spent (every node's step, the
verifier's and the reflections' calls) and its ``records`` the :class:`~ponder.graphs.search.tree.SearchTree`.
With ``ctx.write`` the tree is appended to ``<out_dir>/search.jsonl`` and the chosen trajectory to
``trajectories.jsonl``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ponder.agents.driver import TRAJECTORY_FILE
from ponder.core.io import append_jsonl
from ponder.core.records import Trajectory
from ponder.graphs.search.run import SearchRun
from ponder.graphs.search.tree import SEARCH_FILE
from ponder.graphs.strategies.base import Candidate, Outcome, OutcomeKind
from ponder.memory.reflection import failure_reason


def leaf_rank(run: SearchRun, node_id: int) -> tuple[float, ...]:
    """How good a leaf is: env episodes won first, then answered runs, then score, value and reward."""
    node, partial = run.tree.nodes[node_id], run.partials[node_id]
    score = node.score if node.score is not None else node.value
    return (float(partial.won), float(partial.status == "solved"), score, node.value, float(
        partial.state.get("reward", 0.0) or 0.0))


def best_leaf(run: SearchRun) -> int | None:
    """The best terminal node, else the best node of the deepest progress (``None``: only the root)."""
    terminals = [n.id for n in run.tree.nodes if n.terminal]
    pool = terminals or [n.id for n in run.tree.nodes[1:]]
    return max(pool, key=lambda i: leaf_rank(run, i)) if pool else None


def finish(run: SearchRun, kind: OutcomeKind, chosen: int | None, stop_reason: str, label: str | None = None,
           metadata: dict[str, Any] | None = None) -> Outcome:
    """The outcome of ``run`` with leaf ``chosen``; the tree is completed, recorded and (with ``ctx.write``) written."""
    tree, ctx, stepper = run.tree, run.ctx, run.stepper
    leaves = [n.id for n in tree.nodes if n.terminal]
    if chosen is not None and chosen not in leaves:
        leaves.append(chosen)
    trajectories: list[Trajectory] = []
    candidates: list[Candidate] = []
    for node_id in leaves:
        node = tree.nodes[node_id]
        traj = stepper.trajectory(run.partials[node_id], {"search_tree_id": tree.id, "search_node": node_id,
                                                          "score": node.score, "value": round(node.value, 4)})
        trajectories.append(traj)
        candidates.append(Candidate(answer=traj.final_answer, score=node.score if node.score is not None else 0.0,
                                    trajectories=[len(trajectories) - 1]))
    order = sorted(range(len(leaves)), key=lambda i: leaf_rank(run, leaves[i]), reverse=True)
    candidates = [candidates[i] for i in order]
    index = leaves.index(chosen) if chosen is not None else None
    traj = trajectories[index] if index is not None else None
    run.usage.wall_seconds = round(time.perf_counter() - run.started, 4)
    tree.chosen = tree.path(chosen) if chosen is not None else [0]
    tree.answer = traj.final_answer if traj is not None else None
    tree.success = _success(run, chosen, traj, label)
    tree.usage, tree.stop_reason = run.usage, stop_reason
    meta = {"search_tree_id": tree.id, "nodes": len(tree.nodes), "env_steps": stepper.env_steps,
            "env_resets": stepper.env_resets, "stop_reason": stop_reason, "duplicates": run.duplicates,
            "verifier": run.verifier.name, **(metadata or {})}
    if run.batcher is not None:
        meta["decoded_batches"] = list(run.batcher.batches)
    tree.metadata.update(meta)
    if ctx.write:
        out = Path(ctx.out_dir or ctx.settings.out_dir)
        append_jsonl(out / SEARCH_FILE, tree)
        if traj is not None:  # marked written, so a suite does not append it again (as run_agent marks its own)
            traj.metadata["trajectory_path"] = str(out / TRAJECTORY_FILE)
            append_jsonl(out / TRAJECTORY_FILE, traj)
    return Outcome(kind=kind, task=tree.task, answer=tree.answer, status=traj.status if traj else "error",
                   trajectories=trajectories, chosen=index, usage=run.usage, candidates=candidates,
                   records=[tree], metadata=meta)


def _success(run: SearchRun, chosen: int | None, traj: Trajectory | None, label: str | None) -> bool | None:
    if chosen is None or traj is None:
        return False
    if run.stepper.agent == "env":
        return run.partials[chosen].won
    if label is None:
        return None
    return failure_reason(traj.status, traj.final_answer, label, run.ctx.answer_kind) is None
