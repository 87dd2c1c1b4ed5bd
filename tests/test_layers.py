"""The package layers (``[tool.importlinter]`` in pyproject.toml) hold, and an upward import breaks them.

``lint-imports`` runs on the real tree (it must pass) and on copies of the tree with one deliberate upward
import injected into ``core/records.py`` — at module level, under ``TYPE_CHECKING`` and lazily inside a
function — each of which must fail naming that import. ``make lint`` runs the same check; CI runs these tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
RECORDS = Path("core") / "records.py"


def lint_imports(cwd: Path, *, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``lint-imports`` with the pyproject.toml in ``cwd``; ``pythonpath`` puts a copied tree first."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _only_sources(folder: str, names: list[str]) -> set[str]:
    """copytree filter: keep folders and Python files, nothing else (data, caches, prompts)."""
    return {n for n in names if n == "__pycache__" or not (n.endswith(".py") or Path(folder, n).is_dir())}


def copy_tree(tmp_path: Path) -> Path:
    """Copy the package's Python sources (the root ``__init__.py`` and each sub-package) to ``tmp_path/ponder``."""
    root = tmp_path / "ponder"
    root.mkdir()
    shutil.copy2(REPO / "__init__.py", root / "__init__.py")
    for child in REPO.iterdir():
        if child.is_dir() and (child / "__init__.py").is_file():
            shutil.copytree(child, root / child.name, ignore=_only_sources)
    shutil.copy2(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return root


def test_real_tree_keeps_the_layers() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


UPWARD = {
    "module level": "from ponder.cli import main  # noqa: F401\n",
    "TYPE_CHECKING": (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ponder.cli import main  # noqa: F401\n"
    ),
    "inside a function": "def _lazy():\n    from ponder.cli import main  # noqa: F401\n    return main\n",
}


@pytest.mark.parametrize("how", list(UPWARD))
def test_an_upward_import_breaks_the_contract(tmp_path: Path, how: str) -> None:
    root = copy_tree(tmp_path)
    records = root / RECORDS
    records.write_text(records.read_text() + "\n" + UPWARD[how])
    result = lint_imports(tmp_path, pythonpath=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout
    assert "ponder.core is not allowed to import ponder.cli" in result.stdout
    assert "ponder.core.records -> ponder.cli" in result.stdout


def test_a_sibling_import_inside_an_independent_layer_breaks_it(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    calculator = root / "tools" / "calculator.py"
    calculator.write_text(calculator.read_text() + "\nfrom ponder.models import base  # noqa: F401,E402\n")
    result = lint_imports(tmp_path, pythonpath=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ponder.tools.calculator -> ponder.models.base" in result.stdout


def test_a_package_outside_the_layers_breaks_the_contract(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    (root / "extras").mkdir()
    (root / "extras" / "__init__.py").write_text('"""A new top-level package that no layer names."""\n')
    result = lint_imports(tmp_path, pythonpath=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "The following modules are not listed as layers:\n\n- ponder.extras\n" in result.stdout
