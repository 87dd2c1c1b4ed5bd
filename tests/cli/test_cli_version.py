"""``ponder version``: the package version, the same in the code, the installed metadata and pyproject.toml."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import ponder
from ponder.cli import main

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_prints_the_version_and_nothing_else(capsys):
    assert main(["version"]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{ponder.__version__}\n" and captured.err == ""


def test_code_metadata_and_pyproject_agree():
    declared = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["version"]
    assert ponder.__version__ == importlib.metadata.version("ponder") == declared


def test_extra_arguments_are_refused(capsys):
    assert main(["version", "--bogus"]) == 2
    assert capsys.readouterr().err.strip().startswith("ponder: error: No such option: --bogus")


def test_console_script(tmp_path):
    exe = Path(sys.executable).parent / "ponder"
    out = subprocess.run([str(exe), "version"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PONDER_CONFIG": str(tmp_path / "none.toml")})
    assert (out.returncode, out.stdout, out.stderr) == (0, f"{ponder.__version__}\n", "")


def test_module_entry_point(tmp_path):
    """``python -m ponder.cli`` is the same entry point as the console script."""
    out = subprocess.run([sys.executable, "-m", "ponder.cli", "version"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PONDER_CONFIG": str(tmp_path / "none.toml")})
    assert (out.returncode, out.stdout, out.stderr) == (0, f"{ponder.__version__}\n", "")
