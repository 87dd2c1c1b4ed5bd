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

``--fidelity`` measures instead what the accuracy of a weak model cannot show (near 0 % on GSM8K, a test of
"no loss" is then empty): each format scores the gold GSM8K solutions teacher-forced (prompt ``Question: ...``
and ``Answer:``, the solution's tokens scored), and against the original it gives per item the mean
KL(original || format) of the next-token distributions, the top-1 agreement and the NLL difference; lines
``fidelity`` (per format: NLL per token, perplexity) and ``fidelity_compare`` (mean KL, top-1 agreement, NLL
difference with a 95 % interval over items; ``no_significant_loss``: the interval's upper end ≤ 0.01 nats/token
or contains 0).

Usage::

    python benchmarks/format_accuracy.py --out runs/bench/measure --constrained on
    python benchmarks/format_accuracy.py --out DIR --formats original,q4_0 --limit 3
    python benchmarks/format_accuracy.py --out DIR --fidelity      # teacher-forced KL / NLL, ~1 min per format
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from grammar import (  # noqa: E402
    Z95,
    Config,
    compare,
    load_run,
    publish,
    run_or_report,
    write_rows,
)

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


def format_paths(formats: list[str]) -> dict[str, Path]:
    """The GGUF file of each format (converted copies come from the runtime-format cache, converted if missing)."""
    from ponder.core.settings import load_settings
    from ponder.models.gguf_cache import find_embedded_gguf
    from ponder.models.llamacpp_formats import runtime_gguf

    source, cache = find_embedded_gguf(), load_settings().cache_dir
    return {fmt: runtime_gguf(source, fmt, cache).path for fmt in formats}


def item_logprobs(llm: Any, prompt: list[int], answer: list[int]) -> Any:
    """Log-softmax rows predicting each answer token (teacher-forced), shape (len(answer), vocab)."""
    import numpy as np

    llm.reset()
    llm.eval(prompt + answer)
    logits = np.asarray(llm.scores[len(prompt) - 1: len(prompt) + len(answer) - 1], dtype=np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))


def fidelity_items(formats: list[str], limit: int, threads: int, items_path: Path) -> None:
    """Score the first ``limit`` gold solutions in each format, appending one line per item to ``items_path``
    (items already there are skipped: a cut run resumes)."""
    import numpy as np
    from llama_cpp import Llama

    from ponder.core.settings import load_settings

    done = {json.loads(x)["id"] for x in items_path.read_text().splitlines()} if items_path.is_file() else set()
    rows = [json.loads(x) for x in (load_settings().data_dir / "gsm8k" / "test_dev.jsonl").read_text().splitlines()]
    rows = [r for r in rows[:limit] if r["id"] not in done]
    if not rows:
        return
    paths = format_paths(formats)
    models = {f: Llama(model_path=str(p), n_ctx=1024, n_batch=512, n_threads=threads, logits_all=True,
                       verbose=False) for f, p in paths.items()}
    base = formats[0]
    for row in rows:
        tok = models[base].tokenize
        prompt = tok(f"Question: {row['question']}\nAnswer:".encode(), add_bos=True)
        answer = tok((" " + row["solution"]).encode(), add_bos=False)
        ref = item_logprobs(models[base], prompt, answer)
        item: dict[str, Any] = {"id": row["id"], "tokens": len(answer)}
        for f in formats:
            lp = ref if f == base else item_logprobs(models[f], prompt, answer)
            item[f] = {"nll": float(-lp[np.arange(len(answer)), answer].mean()),
                       "kl": float((np.exp(ref) * (ref - lp)).sum(axis=1).mean()),
                       "top1": float((ref.argmax(axis=1) == lp.argmax(axis=1)).mean()), "path": str(paths[f])}
        with open(items_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(item) + "\n")


def fidelity(formats: list[str], items_path: Path) -> list[dict[str, Any]]:
    """Per-format NLL and, against ``formats[0]``, mean KL, top-1 agreement and the paired NLL difference."""
    import numpy as np

    items = [json.loads(x) for x in items_path.read_text().splitlines() if x.strip()]
    base, tokens = formats[0], np.array([i["tokens"] for i in items])
    out: list[dict[str, Any]] = []
    for f in formats:
        nll = float(np.average([i[f]["nll"] for i in items], weights=tokens))
        out.append({"bench": "fidelity", "format": f, "path": items[0][f]["path"], "n": len(items),
                    "tokens": int(tokens.sum()), "nll_per_token": round(nll, 5), "perplexity": round(math.exp(nll), 4)})
    for f in formats[1:]:
        diff = np.array([i[f]["nll"] - i[base]["nll"] for i in items])
        half = Z95 * diff.std(ddof=1) / math.sqrt(len(diff))
        lo, hi = float(diff.mean() - half), float(diff.mean() + half)
        out.append({"bench": "fidelity_compare", "a": f, "b": base, "n": len(diff),
                    "mean_kl": round(float(np.mean([i[f]["kl"] for i in items])), 5),
                    "top1_agreement": round(float(np.mean([i[f]["top1"] for i in items])), 4),
                    "nll_diff": round(float(diff.mean()), 5), "nll_diff_ci95": [round(lo, 5), round(hi, 5)],
                    "no_significant_loss": hi <= 0.01 or lo <= 0.0})
    return out


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
    parser.add_argument("--fidelity", action="store_true", help="Teacher-forced KL / NLL per format instead.")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads for --fidelity.")
    args = parser.parse_args()
    if args.fidelity:
        args.out.mkdir(parents=True, exist_ok=True)
        try:
            fidelity_items(args.formats.split(","), args.limit, args.threads, args.out / "fidelity_items.jsonl")
        except KeyboardInterrupt:
            print("interrupted: reporting the items scored so far", file=sys.stderr)
        rows = fidelity(args.formats.split(","), args.out / "fidelity_items.jsonl")
        write_rows(args.out / "fidelity.jsonl", rows)
        for row in rows:
            print(json.dumps(row), flush=True)
        return
    configs = format_configs(args.formats.split(","), args.constrained, args.limit, args.default_format)
    rows = run_or_report(configs, args, "format")
    comps = [c for c in (format_comparison(cfg, configs[0], args.out) for cfg in configs[1:]) if c]
    publish(args.out / "format.jsonl", rows, comps)


if __name__ == "__main__":
    main()
