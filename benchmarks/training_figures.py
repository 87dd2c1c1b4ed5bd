"""Accuracy (Wilson 95 %), calculator calls, parse errors and tokens per episode of eval run folders, side by side.

Usage: ``python -m ponder.benchmarks.training_figures RUN_DIR...`` (or ``python benchmarks/training_figures.py``):
one JSON line per run, then a readable line per run on stderr. The before/after-SFT and STaR figures of
docs/training.md come from this script.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ponder.training.figures import eval_figures


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    for arg in argv:
        figures = eval_figures(Path(arg))
        print(figures.model_dump_json())
        print(figures.line(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
