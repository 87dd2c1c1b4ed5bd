"""Format accuracy: the embedded model's GSM8K accuracy on its original Q4_1 GGUF and on the runtime copies.

The first ``--limit`` (100) GSM8K test items with ReAct (greedy, the suite's defaults), once per
``llamacpp_format`` (``original``, ``q4_0``, ``q8_0``), constrained steps ``--constrained`` (``on`` or ``off``:
what the grammar table found better). The runs use the harness of ``benchmarks/grammar.py`` (one eval-runner
run per format in a child process, resumable, under ``<out>/runs/gsm8k-react-<mode>-<format>``).

Lines (JSON, also ``<out>/format.jsonl``): one per format (accuracy with its 95 % Wilson interval, parse
errors, tool and model calls, wall per item, ``load_info`` with the GGUF that ran), then one ``format_compare``
line per converted format against the original: the paired difference (format − original) with Newcombe's
95 % interval, McNemar's exact p, ``p_a_worse`` (one-sided exact test that the format loses accuracy),
``no_significant_loss`` (``p_a_worse`` ≥ 0.05), ``non_inferior_5pp`` (the interval's lower end above −5 pp)
and ``same_prediction`` (items answered identically).

Usage::

    python benchmarks/format_accuracy.py --out /work/notes/measure17 --constrained on
    python benchmarks/format_accuracy.py --out DIR --formats original,q4_0 --limit 3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from grammar import Config, compare, load_run, markdown, run_configs, summarize_run, write_rows  # noqa: E402

#: The non-inferiority margin (accuracy points) the interval's lower end must stay above.
MARGIN = 0.05


def format_configs(formats: list[str], constrained: str, limit: int, default: str | None) -> list[Config]:
    """One GSM8K ReAct configuration per format; ``default`` (the format ``auto`` runs) shares the grammar
    table's run of the same agent settings (``gsm8k-react-<mode>``) instead of running it twice."""
    return [Config(f"gsm8k-react-{constrained}", "gsm8k", "react", constrained=constrained, limit=limit)
            if fmt == default else
            Config(f"gsm8k-react-{constrained}-{fmt}", "gsm8k", "react", constrained=constrained, fmt=fmt, limit=limit)
            for fmt in formats]


def format_comparison(fmt: Config, original: Config, out: Path) -> dict[str, Any] | None:
    """``fmt`` − ``original`` on the items both finished, with the no-loss verdicts and the agreement."""
    row = compare(fmt, original, out, "format_compare")
    if row is None:
        return None
    pa = {r["episode_id"]: r["prediction"] for r in load_run(out / "runs" / fmt.name)[0]}
    pb = {r["episode_id"]: r["prediction"] for r in load_run(out / "runs" / original.name)[0]}
    common = [k for k in pa if k in pb]
    return {**row, "no_significant_loss": row["p_a_worse"] >= 0.05,
            "non_inferior_5pp": row["diff_ci95"][0] > -MARGIN,
            "same_prediction": round(sum(pa[k] == pb[k] for k in common) / len(common), 4)}


def main() -> None:
    """Parse flags, run (or report) the formats, print the lines and the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-grammar"))
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--formats", default="original,q4_0,q8_0", help="Comma-separated; the first is the baseline.")
    parser.add_argument("--constrained", choices=("on", "off"), default="on")
    parser.add_argument("--default-format", help="The format llamacpp_format=auto runs: its row is the grammar "
                        "table's gsm8k-react-<mode> run (checked in that row's load_info).")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=3600.0, help="Seconds per format.")
    parser.add_argument("--report", action="store_true", help="Only print the tables of what is in --out.")
    args = parser.parse_args()
    configs = format_configs(args.formats.split(","), args.constrained, args.limit, args.default_format)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report:
        rows = [summarize_run(c, args.out / "runs" / c.name) for c in configs
                if (args.out / "runs" / c.name / "results.jsonl").is_file()]
    else:
        rows = run_configs(configs, args.out, args.workers, args.timeout, "format")
    comps = [c for c in (format_comparison(cfg, configs[0], args.out) for cfg in configs[1:]) if c]
    write_rows(args.out / "format.jsonl", rows + comps)
    for row in rows + comps:
        print(json.dumps(row), flush=True)
    print(markdown(rows, comps))


if __name__ == "__main__":
    main()
