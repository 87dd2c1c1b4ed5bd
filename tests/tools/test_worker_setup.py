"""The worker source the host runs with ``python -I -S -c``: set-up, execution helpers, session worker."""

import ast
from collections import Counter

from ponder.tools.sandbox.launch import KERNEL_SOURCE


def _top_level_names(source: str) -> Counter:
    """Names the source's top-level statements define (the host-only import blocks under ``if`` excluded)."""
    names: Counter = Counter()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names[node.name] += 1
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def test_each_name_is_defined_once() -> None:
    """Concatenated files must not redefine each other's names (a later one would silently win)."""
    names = _top_level_names(KERNEL_SOURCE)
    assert names["_setup"] == 1 and names["_execute"] == 1 and names["serve"] == 1  # the files are all there
    assert [name for name, count in names.items() if count > 1] == []


def test_the_source_starts_one_worker() -> None:
    """Only the session worker's ``serve()`` runs: one ``__main__`` guard, at the end."""
    assert KERNEL_SOURCE.count('if __name__ == "__main__":') == 1 and KERNEL_SOURCE.rstrip().endswith("serve()")
