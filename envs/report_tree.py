"""Search trees (:class:`~ponder.graphs.search.tree.SearchTree`) drawn as inline SVG for the HTML report.

Server-side SVG, no JavaScript: nodes are laid out by depth (rows) and by leaf order (columns, each parent
centred over its children); a node's fill shows its value (red 0 -> green 1), its radius its visits, a
double ring a terminal node; the chosen path's edges are thick and orange. Every node has a ``<title>``
tooltip (action, input, observation, value, visits, score, reward, tokens, reflection). All text comes
from trajectories, which are untrusted (model and environment output): it is escaped, and cut short.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from pathlib import Path

from ponder.graphs.search.tree import SEARCH_FILE, SearchTree, TreeNode

#: Nodes drawn per tree (a bigger tree is cut by depth-first order, and says so).
MAX_NODES = 400
_DX, _DY, _PAD = 46, 64, 24
_TIP_CHARS = 300
_LABEL_CHARS = 14


def load_trees(run_dir: Path) -> list[SearchTree]:
    """The search trees of a run directory's ``search.jsonl`` (other records in the file are skipped)."""
    import json

    path = Path(run_dir) / SEARCH_FILE
    if not path.is_file():
        return []
    trees = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue  # a torn last line of a killed run
        if isinstance(obj, dict) and obj.get("kind") == "search_tree":
            trees.append(SearchTree.model_validate(obj))
    return trees


def _short(text: object, limit: int) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def layout(nodes: Mapping[int, TreeNode], dx: float = _DX, dy: float = _DY,
           pad: float = _PAD) -> dict[int, tuple[float, float]]:
    """``node id -> (x, y)`` of a tidy tree drawing (shared with :mod:`ponder.viewer.tree_svg`).

    Leaves in depth-first order ``dx`` apart, each parent centred over its children, one row (``dy``) per depth.
    Depth is counted from the parent links (not the recorded ``depth``), so two nodes never share a position
    even in an inconsistent record; a node whose parent is missing is a root, and a parent cycle (a malformed
    record) is cut at its lowest id. Iterative, so deep trees do not hit the recursion limit.
    """
    children: dict[int, list[int]] = {}
    for node in nodes.values():
        if node.parent is not None and node.parent in nodes and node.parent != node.id:
            children.setdefault(node.parent, []).append(node.id)
    roots = [i for i, n in nodes.items() if n.parent is None or n.parent not in nodes or n.parent == i]
    pos: dict[int, tuple[float, float]] = {}
    seen: set[int] = set()
    column = 0
    pending = sorted(nodes)
    while True:
        for root in roots:
            column = _place(root, children, seen, pos, column, (dx, dy, pad))
        left = [i for i in pending if i not in seen]
        if not left:
            return pos
        roots, pending = [left[0]], left  # the rest sit on parent cycles: cut one and go on


def _place(root: int, children: dict[int, list[int]], seen: set[int], pos: dict[int, tuple[float, float]],
           column: int, steps: tuple[float, float, float]) -> int:
    """Place the subtree under ``root`` (post-order) from leaf ``column`` on; the next free column."""
    dx, dy, pad = steps
    seen.add(root)
    stack: list[tuple[int, int, bool]] = [(root, 0, False)]
    while stack:
        node_id, depth, done = stack.pop()
        kids = [k for k in children.get(node_id, []) if done or k not in seen]
        y = pad + depth * dy
        if done or not kids:
            placed = [pos[k][0] for k in kids if k in pos]
            if placed:
                pos[node_id] = ((min(placed) + max(placed)) / 2, y)
            else:
                pos[node_id] = (pad + column * dx, y)
                column += 1
            continue
        seen.update(kids)
        stack.append((node_id, depth, True))
        stack.extend((k, depth + 1, False) for k in reversed(kids))
    return column


def _colour(value: float) -> str:
    v = min(1.0, max(0.0, value))
    return f"rgb({int(220 - 180 * v)},{int(60 + 140 * v)},{int(60 + 20 * v)})"


def node_tooltip(node: TreeNode) -> str:
    """A node's tooltip as plain text (the caller escapes it): action, input, thought, observation, numbers."""
    action = "task (root)" if node.parent is None and node.action is None else _short(node.action, 80)
    parts = [f"node {node.id} (depth {node.depth}): {action}"]
    for name, text, limit in (("input", node.action_input, 120), ("thought", node.thought, 160),
                              ("observation", node.observation, _TIP_CHARS)):
        if text:
            parts.append(f"{name}: {_short(text, limit)}")
    if node.answer is not None:
        parts.append(f"answer: {_short(node.answer, 120)}")
    parts.append(f"value {node.value:.3f}, visits {node.visits}, score "
                 f"{'-' if node.score is None else f'{node.score:.3f}'}, reward {node.reward:g}")
    parts.append(f"tokens {node.prompt_tokens}+{node.completion_tokens}, batch {node.batch}"
                 + (f", status {node.status}" if node.status else "") + (", terminal" if node.terminal else ""))
    if node.reflection:
        parts.append(f"reflection: {_short(node.reflection, 200)}")
    return "\n".join(parts)


def tree_svg(tree: SearchTree, max_nodes: int = MAX_NODES) -> str:
    """The tree as an ``<svg>`` element (escaped text; at most ``max_nodes`` nodes, the rest counted)."""
    kept = {n.id: n for n in tree.nodes[:max_nodes]}
    if not kept:
        return "<p class='note'>(empty search tree)</p>"
    pos = layout(kept)
    chosen = set(zip(tree.chosen, tree.chosen[1:], strict=False))
    width = max(x for x, _ in pos.values()) + _PAD + 60
    height = max(y for _, y in pos.values()) + _PAD + 20
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width:.0f}' height='{height:.0f}' "
             f"font-family='sans-serif' font-size='9' role='img'>"]
    for node in kept.values():
        if node.parent is not None and node.parent in kept:
            (x1, y1), (x2, y2) = pos[node.parent], pos[node.id]
            on_path = (node.parent, node.id) in chosen
            style = "stroke='#e8710a' stroke-width='3.5'" if on_path else "stroke='#999' stroke-width='1'"
            parts.append(f"<line x1='{x1:.1f}' y1='{y1:.1f}' x2='{x2:.1f}' y2='{y2:.1f}' {style}/>")
    for node in kept.values():
        x, y = pos[node.id]
        radius = 6 + min(8.0, 2.0 * (node.visits ** 0.5))
        ring = " stroke='#222' stroke-width='2.5'" if node.terminal else " stroke='#555' stroke-width='0.8'"
        parts.append(f"<g><title>{html.escape(node_tooltip(node))}</title><circle cx='{x:.1f}' cy='{y:.1f}' "
                     f"r='{radius:.1f}' fill='{_colour(node.value)}'{ring}/>")
        label = html.escape(_short(node.action if node.parent is not None else "task", _LABEL_CHARS))
        parts.append(f"<text x='{x:.1f}' y='{y + radius + 10:.1f}' text-anchor='middle'>{label}</text></g>")
    parts.append("</svg>")
    more = len(tree.nodes) - len(kept)
    note = f"<p class='note'>{more} more nodes not drawn.</p>" if more > 0 else ""
    return "".join(parts) + note


def tree_caption(tree: SearchTree) -> str:
    """One escaped line about a tree: strategy, nodes, stop reason, answer, success, tokens."""
    success = {True: "solved", False: "not solved", None: "success unknown"}[tree.success]
    return html.escape(f"{tree.strategy}: {len(tree.nodes)} nodes, stop {tree.stop_reason or '-'}, answer "
                       f"{_short(tree.answer, 60)!r}, {success}, {tree.usage.total_tokens} tokens")


def trees_by_id(trees: Iterable[SearchTree]) -> dict[str, SearchTree]:
    """Trees keyed by id (the last record of an id wins)."""
    return {t.id: t for t in trees}
