"""viewer.tree_svg: the tidy layout, links, the chosen path, the selected ring, escaping, big and malformed trees."""

from __future__ import annotations

import math
import random
import re
import xml.etree.ElementTree as ET

from ponder.graphs.search.tree import SearchTree, TreeNode
from ponder.viewer.tree_svg import LABEL_LIMIT, tree_svg

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert('x')</script> \" onload=\"alert(1)\" & <img src=x onerror=y>"


def href(node_id: int) -> str:
    return f"/run/abc/search/3?node={node_id}&from=tree"


def make_tree(parents: list[int | None], chosen: list[int] | None = None, **fields: object) -> SearchTree:
    nodes, depth = [], {}
    for i, parent in enumerate(parents):
        depth[i] = 0 if parent is None else depth[parent] + 1
        nodes.append(TreeNode(id=i, parent=parent, depth=depth[i], action=None if parent is None else f"a{i}",
                              value=(i % 5) / 4, visits=i % 4))
    return SearchTree(**{"strategy": "lats", "task": "the task", "nodes": nodes, "chosen": chosen or [], **fields})


def positions(svg: str) -> dict[int, tuple[float, float]]:
    """node id -> the centre of its (first) circle, read from the parsed SVG."""
    root = ET.fromstring(svg)
    out = {}
    for a in root.iter(f"{SVG}a"):
        circle = a.find(f"{SVG}circle")
        out[int(a.get("data-node"))] = (float(circle.get("cx")), float(circle.get("cy")))
    return out


def classes(svg: str) -> dict[int, set[str]]:
    return {int(a.get("data-node")): set(a.get("class").split()) for a in ET.fromstring(svg).iter(f"{SVG}a")}


def test_parents_are_centred_over_their_children_one_row_per_depth():
    # 0 -> (1 -> (3, 4, 5), 2 -> (6 -> 7)); leaves 3, 4, 5, 7 in depth-first order
    tree = make_tree([None, 0, 0, 1, 1, 1, 2, 6])
    pos = positions(str(tree_svg(tree, href)))
    assert set(pos) == set(range(8))
    for node in tree.nodes:
        kids = [n.id for n in tree.nodes if n.parent == node.id]
        if kids:
            xs = [pos[k][0] for k in kids]
            assert math.isclose(pos[node.id][0], (min(xs) + max(xs)) / 2)
            assert all(pos[k][1] > pos[node.id][1] for k in kids)
    leaves = [3, 4, 5, 7]
    assert [pos[i][0] for i in leaves] == sorted(pos[i][0] for i in leaves)  # left to right
    assert len({pos[i][1] for i in (3, 4, 5, 6)}) == 1  # one row per depth
    assert pos[6][0] == pos[7][0] == pos[2][0]  # a chain stays straight


def test_no_two_nodes_overlap_in_a_random_tree():
    rng = random.Random(7)
    parents: list[int | None] = [None] + [rng.randrange(i) for i in range(1, 150)]
    svg = str(tree_svg(make_tree(parents), href))
    pos = positions(svg)
    assert len(pos) == 150
    items = sorted(pos.items())
    for i, (_, (x1, y1)) in enumerate(items):
        for _, (x2, y2) in items[i + 1:]:
            if y1 == y2:
                assert abs(x1 - x2) >= 60  # a label's width apart: labels of one row do not overlap
            else:
                assert abs(y1 - y2) >= 60


def test_each_node_links_to_its_page_and_the_chosen_path_is_marked():
    tree = make_tree([None, 0, 0, 1, 1], chosen=[0, 1, 4])
    svg = str(tree_svg(tree, href))
    root = ET.fromstring(svg)
    assert root.get("id") == "tree"
    links = {int(a.get("data-node")): a.get("href") for a in root.iter(f"{SVG}a")}
    assert links == {i: href(i) for i in range(5)}  # SVG 2 href, the & escaped in the text (parsed back here)
    assert "&amp;from=tree" in svg and "xlink" not in svg
    marked = classes(svg)
    assert {i for i, c in marked.items() if "chosen" in c} == {0, 1, 4}
    assert all("node" in c for c in marked.values())
    chosen_edges = [(e.get("x2"), e.get("y2")) for e in root.iter(f"{SVG}line") if "chosen" in e.get("class")]
    assert len(chosen_edges) == 2 and len(list(root.iter(f"{SVG}line"))) == 4


def test_labels_titles_and_terminal_nodes():
    tree = make_tree([None, 0, 0])
    tree.nodes[1].value, tree.nodes[1].visits, tree.nodes[1].reward = 0.625, 3, 1.0
    tree.nodes[1].terminal, tree.nodes[1].status = True, "solved"
    svg = str(tree_svg(tree, href))
    root = ET.fromstring(svg)
    by_id = {int(a.get("data-node")): a for a in root.iter(f"{SVG}a")}
    texts = [t.text for t in by_id[1].iter(f"{SVG}text")]
    assert texts == ["a1", "v=0.62 n=3", "r=1"]  # a small tree: the action above the node
    assert [t.text for t in by_id[2].iter(f"{SVG}text")] == ["a2", "v=0.50 n=2"]  # no reward label when it is 0
    assert "a1" in by_id[1].find(f"{SVG}title").text and "status solved" in by_id[1].find(f"{SVG}title").text
    assert "terminal" in by_id[1].get("class") and "terminal" not in by_id[2].get("class")
    assert "rgb(" in by_id[1].find(f"{SVG}circle").get("fill")


def test_record_text_is_escaped_everywhere():
    tree = make_tree([None, 0], strategy=HOSTILE)
    node = tree.nodes[1]
    node.action = node.thought = node.observation = node.answer = node.reflection = node.action_input = HOSTILE
    node.status = HOSTILE

    def hostile_href(i: int) -> str:
        return f'/x?node={i}" onclick="alert(1)'

    svg = str(tree_svg(tree, hostile_href))
    assert "<script" not in svg.lower() and "<img" not in svg.lower()
    assert '" onclick=' not in svg and '" onload=' not in svg
    assert "&lt;script&gt;" in svg
    root = ET.fromstring(svg)  # still well-formed XML
    a = next(a for a in root.iter(f"{SVG}a") if a.get("data-node") == "1")
    assert a.get("href") == hostile_href(1) and "onclick" not in a.attrib
    assert HOSTILE[:20] in a.find(f"{SVG}title").text


def test_the_selected_node_is_ringed():
    tree = make_tree([None, 0, 0, 1])
    ringed = ET.fromstring(str(tree_svg(tree, href, selected=3)))
    rings = [(a.get("data-node"), c) for a in ringed.iter(f"{SVG}a") for c in a.iter(f"{SVG}circle")
             if c.get("class") == "ring"]
    assert [node for node, _ in rings] == ["3"]
    a3 = next(a for a in ringed.iter(f"{SVG}a") if a.get("data-node") == "3")
    assert "selected" in a3.get("class") and a3.get("aria-current") == "true"
    assert a3.find(f"{SVG}circle").get("class") is None  # the node's own circle comes first
    for selected in (None, 99):
        assert 'class="ring"' not in str(tree_svg(tree, href, selected=selected))


def test_a_big_tree_renders_without_labels_and_says_so():
    n = 1200
    parents: list[int | None] = [None] + [(i - 1) // 3 for i in range(1, n)]
    svg = str(tree_svg(make_tree(parents), href))
    root = ET.fromstring(svg)
    assert len(list(root.iter(f"{SVG}a"))) == n
    assert not [t for t in root.iter(f"{SVG}text") if t.get("class", "").startswith("label")]
    notes = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "note"]
    assert any(f"no labels on trees of more than {LABEL_LIMIT} nodes" in t for t in notes)
    width, height = float(root.get("width")), float(root.get("height"))
    assert width > 100 and height > 100
    assert all(0 < x < width and 0 < y < height for x, y in positions(svg).values())


def test_small_trees_are_labelled_up_to_the_limit():
    parents: list[int | None] = [None] + [0] * (LABEL_LIMIT - 1)
    svg = str(tree_svg(make_tree(parents), href))
    assert len(re.findall(r'<text class="label"', svg)) == LABEL_LIMIT


def test_malformed_trees_still_render():
    cycle = SearchTree(strategy="beam", task="t", nodes=[
        TreeNode(id=0), TreeNode(id=1, parent=2, depth=5), TreeNode(id=2, parent=1, depth=1),
        TreeNode(id=3, parent=3), TreeNode(id=4, parent=77, value=float("nan"), visits=-4)], chosen=[0, 9])
    svg = str(tree_svg(cycle, href, selected=4))
    pos = positions(svg)
    assert set(pos) == {0, 1, 2, 3, 4}
    assert len(set(pos.values())) == 5
    assert "v=? n=-4" in svg
    empty = tree_svg(SearchTree(strategy="beam", task="t"), href)
    assert 'id="tree"' in empty and "empty search tree" in empty


def test_small_trees_name_actions_cut_short_and_big_trees_do_not():
    small = make_tree([None, 0])
    small.nodes[1].action = "a_very_long_tool_name_indeed"
    actions = [t.text for t in ET.fromstring(str(tree_svg(small, href))).iter(f"{SVG}text")
               if t.get("class") == "action"]
    assert actions == ["a_very_long_t…"]
    big = make_tree([None] + [0] * 80)
    assert not [t for t in ET.fromstring(str(tree_svg(big, href))).iter(f"{SVG}text") if t.get("class") == "action"]
