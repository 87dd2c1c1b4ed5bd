"""The worker sources the host runs with ``python -I -S -c``: set-up, one-shot worker, session worker."""

import ast
from collections import Counter

import pytest

from ponder.tools.sandbox.launch import KERNEL_SOURCE, WORKER_SOURCE


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


@pytest.mark.parametrize("source", [WORKER_SOURCE, KERNEL_SOURCE], ids=["one-shot", "session"])
def test_each_name_is_defined_once(source: str) -> None:
    """Concatenated files must not redefine each other's names (a later one would silently win)."""
    names = _top_level_names(source)
    assert names["_setup"] == 1 and names["_execute"] == 1  # the files are all there
    assert [name for name, count in names.items() if count > 1] == []


def test_each_source_starts_one_worker() -> None:
    """The one-shot worker's ``main()`` guard is cut from the session source; the session worker's stays."""
    assert WORKER_SOURCE.count('if __name__ == "__main__":') == 1 and WORKER_SOURCE.rstrip().endswith("main()")
    assert KERNEL_SOURCE.count('if __name__ == "__main__":') == 1 and KERNEL_SOURCE.rstrip().endswith("serve()")
