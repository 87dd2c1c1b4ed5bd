"""A search tree (:class:`~ponder.graphs.search.tree.SearchTree`) as an inline, clickable ``<svg id="tree">``.

The layout is the static report's (:func:`ponder.envs.report_tree.layout`: leaves left to right, each parent
centred over its children, one row per depth). Each node is an ``<a class="node" href=...>`` (SVG 2 ``href``)
around its circle: the fill shows the value (red 0 → green 1), the radius the visits, a thick dark rim a
terminal node; the chosen path's nodes and edges have class ``chosen``, the selected node a blue ring (class
``selected``). Under each node a short label (``v=0.62 n=3``, then ``r=1`` when the reward is not 0); a
``<title>`` holds the action and the rest of the node's facts.

Everything in a record is untrusted (model and environment output): every string taken from it goes through
:func:`markupsafe.escape`. No script, no style attribute, no external reference -- the viewer's CSP allows none.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from markupsafe import Markup, escape

from ponder.envs.report_tree import layout, node_tooltip
from ponder.graphs.search.tree import SearchTree, TreeNode

#: Trees with more nodes than this are drawn without labels (and closer together), and say so.
LABEL_LIMIT = 300
#: At most this many nodes are drawn (the first ones, by position in the record); the rest are counted.
MAX_NODES = 5000
_PAD = 40  # room for the labels of the outermost nodes
_LABELLED = (64.0, 70.0)  # column and row spacing with labels
_COMPACT = (16.0, 40.0)  # without
#: Trees up to this many nodes are drawn roomier, with each node's action above it.
ROOMY_LIMIT = 60
_ROOMY = (100.0, 92.0)
_ACTION_CHARS = 14


def tree_svg(tree: SearchTree, node_href: Callable[[int], str], selected: int | None = None) -> Markup:
    """The tree as an inline ``<svg id="tree">``, each node a link to ``node_href(node id)``.

    Args:
        tree: The search tree record.
        node_href: The URL of a node's page (escaped here; a :class:`~markupsafe.Markup` is kept as it is).
        selected: The node to ring (ignored when the tree has no such node).

    Returns:
        Safe markup: the ``<svg>`` element (an empty tree gives an ``<svg>`` that says so).
    """
    kept: dict[int, TreeNode] = {}
    for node in tree.nodes[:MAX_NODES]:
        kept.setdefault(node.id, node)
    if not kept:
        return Markup('<svg xmlns="http://www.w3.org/2000/svg" id="tree" class="tree" width="240" height="40" '
                      'role="img"><text x="10" y="24" class="note">(empty search tree)</text></svg>')
    labelled = len(tree.nodes) <= LABEL_LIMIT
    roomy = len(tree.nodes) <= ROOMY_LIMIT
    dx, dy = _ROOMY if roomy else _LABELLED if labelled else _COMPACT
    pos = layout(kept, dx=dx, dy=dy, pad=_PAD)
    chosen_ids = {i for i in tree.chosen if i in kept}
    chosen_edges = set(zip(tree.chosen, tree.chosen[1:], strict=False))
    notes = _notes(tree, len(kept), labelled)
    width = max(x for x, _ in pos.values()) + _PAD + (dx / 2 if labelled else 8)
    height = max(y for _, y in pos.values()) + _PAD + (24 if labelled else 8) + 14 * len(notes)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="tree" class="tree" width="{width:.0f}" '
             f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" '
             f'font-size="9" role="img" aria-label="{escape(_caption(tree))}">']
    parts += _edges(kept, pos, chosen_edges)
    for node in kept.values():
        parts.append(_node(node, pos[node.id], node_href, node.id in chosen_ids, node.id == selected, labelled,
                           roomy))
    bottom = height - 8 - 14 * (len(notes) - 1)
    parts += [f'<text class="note" x="{_PAD / 2:.0f}" y="{bottom + 14 * i:.0f}">{escape(note)}</text>'
              for i, note in enumerate(notes)]
    parts.append("</svg>")
    return Markup("".join(parts))


def _notes(tree: SearchTree, drawn: int, labelled: bool) -> list[str]:
    notes = []
    if not labelled:
        notes.append(f"{len(tree.nodes)} nodes: no labels on trees of more than {LABEL_LIMIT} nodes "
                     "(hover a node for its facts, or open it).")
    if drawn < len(tree.nodes):
        notes.append(f"{len(tree.nodes) - drawn} more nodes not drawn (the first {MAX_NODES} records are).")
    return notes


def _caption(tree: SearchTree) -> str:
    return f"{tree.strategy} search tree: {len(tree.nodes)} nodes, chosen path {len(tree.chosen)} nodes"


def _edges(kept: dict[int, TreeNode], pos: dict[int, tuple[float, float]],
           chosen: set[tuple[int, int]]) -> list[str]:
    out = []
    for node in kept.values():
        if node.parent is None or node.parent not in kept or node.parent == node.id:
            continue
        (x1, y1), (x2, y2) = pos[node.parent], pos[node.id]
        if (node.parent, node.id) in chosen:
            style = 'class="edge chosen" stroke="#e8710a" stroke-width="3.5"'
        else:
            style = 'class="edge" stroke="#999" stroke-width="1"'
        out.append(f'<line {style} x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"/>')
    return out


def _node(node: TreeNode, at: tuple[float, float], node_href: Callable[[int], str], chosen: bool,
          selected: bool, labelled: bool, roomy: bool = False) -> str:
    x, y = at
    classes = "node" + (" chosen" if chosen else "") + (" terminal" if node.terminal else "") + (
        " selected" if selected else "")
    radius = (6 + min(8.0, 2.0 * math.sqrt(max(0, node.visits)))) if labelled else 5.0
    if node.terminal:
        rim = 'stroke="#222" stroke-width="2.5"'
    elif chosen:
        rim = 'stroke="#e8710a" stroke-width="2"'
    else:
        rim = 'stroke="#555" stroke-width="0.8"'
    current = ' aria-current="true"' if selected else ""
    out = [f'<a class="{classes}" href="{escape(node_href(node.id))}" data-node="{node.id}"{current}>',
           f"<title>{escape(node_tooltip(node))}</title>",
           f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}" fill="{_colour(node.value)}" {rim}/>']
    if selected:
        out.append(f'<circle class="ring" cx="{x:.1f}" cy="{y:.1f}" r="{radius + 5:.1f}" fill="none" '
                   'stroke="#1f6feb" stroke-width="3"/>')
    if roomy and node.action:
        action = node.action if len(node.action) <= _ACTION_CHARS else node.action[: _ACTION_CHARS - 1] + "…"
        out.append(f'<text class="action" x="{x:.1f}" y="{y - radius - 5:.1f}" text-anchor="middle">'
                   f"{escape(action)}</text>")
    if labelled:
        out.append(f'<text class="label" x="{x:.1f}" y="{y + radius + 11:.1f}" text-anchor="middle">'
                   f"{escape(_label(node))}</text>")
        if _finite(node.reward) and node.reward != 0:
            out.append(f'<text class="label reward" x="{x:.1f}" y="{y + radius + 21:.1f}" text-anchor="middle">'
                       f"r={node.reward:g}</text>")
    out.append("</a>")
    return "".join(out)


def _label(node: TreeNode) -> str:
    value = f"{node.value:.2f}" if _finite(node.value) else "?"
    return f"v={value} n={node.visits}"


def _finite(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _colour(value: float) -> str:
    v = min(1.0, max(0.0, value)) if _finite(value) else 0.0
    return f"rgb({int(220 - 180 * v)},{int(60 + 140 * v)},{int(60 + 20 * v)})"


