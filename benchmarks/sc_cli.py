"""The user's view of self-consistency: ``ponder run --samples N "<q>"`` vs N ``ponder run "<q>" --seed s_i`` runs.

For each question, in one run (the order of the two alternates from one question to the next):

* ``sc``     -- one process: ``ponder run --samples N --temperature T --seed 0 "<q>"`` (sample ``i`` runs with
  seed ``i``);
* ``eight``  -- N processes one after another: ``ponder run --temperature T --seed i "<q>"`` for ``i < N`` (the
  same seeds and settings, each process loading the model again, as a user running them by hand would).

Each is timed from the spawn to the exit (model load included, as the user waits for it). Reported per question
(JSON lines): both walls, each process's wall, ``ratio`` (``sc / eight``), the answers of the N samples in both
(from the records each run wrote) and whether they agree sample for sample; then a summary with means.

Usage::

    python benchmarks/sc_cli.py [--model embedded] [--agent react] [--samples 8] [--questions 1]
        [--question "..."] [--temperature 0.7] [--max-tokens 256]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def questions(args: argparse.Namespace) -> list[str]:
    """``--question`` texts, else the first ``--questions`` GSM8K items of the bundled data."""
    if args.question:
        return list(args.question)
    path = ROOT / "data" / "gsm8k" / "test_dev.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r["question"] for r in rows[: args.questions]]


def ponder(argv: list[str], out: Path, timeout: float) -> float:
    """Run ``ponder <argv> --out <out> --json`` in a fresh process; return its wall seconds.

    Raises:
        RuntimeError: when the process fails (its stderr's tail in the message).
    """
    cmd = [sys.executable, "-m", "ponder.cli", *argv, "--out", str(out), "--json"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[3:6])}... exited {proc.returncode}: {proc.stderr[-800:]}")
    return wall


def last_jsonl(path: Path) -> dict[str, Any]:
    """The last record of a JSONL file."""
    return json.loads(path.read_text().splitlines()[-1])


def run_sc(question: str, common: list[str], args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """One ``ponder run --samples N`` process."""
    wall = ponder(["run", question, *common, "--samples", str(args.samples), "--seed", "0"], out, args.timeout)
    record = last_jsonl(out / "self_consistency.jsonl")
    samples = sorted(record["samples"], key=lambda s: s["index"])
    return {"wall": round(wall, 2), "answer": record["final_answer"],
            "samples": [s["trajectory"]["final_answer"] for s in samples],
            "tokens": record["usage"]["prompt_tokens"] + record["usage"]["completion_tokens"]}


def run_eight(question: str, common: list[str], args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """N ``ponder run --seed i`` processes, one after another."""
    walls, answers, tokens = [], [], 0
    for seed in range(args.samples):
        walls.append(round(ponder(["run", question, *common, "--seed", str(seed)], out, args.timeout), 2))
        traj = last_jsonl(out / "trajectories.jsonl")
        answers.append(traj["final_answer"])
        tokens += traj["usage"]["prompt_tokens"] + traj["usage"]["completion_tokens"]
    return {"wall": round(sum(walls), 2), "walls": walls, "samples": answers, "tokens": tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--agent", default="react")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--questions", type=int, default=1, help="GSM8K items (when no --question is given)")
    parser.add_argument("--question", action="append", help="a question (repeatable)")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per process")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    common = ["--model", args.model, "--agent", args.agent, "--temperature", str(args.temperature),
              "--max-tokens", str(args.max_tokens)]
    rows = []
    for index, question in enumerate(questions(args)):
        with tempfile.TemporaryDirectory(prefix="ponder-sc-cli-") as tmp:
            row: dict[str, Any] = {"event": "question", "question": question[:80],
                                   "order": ["sc", "eight"] if index % 2 == 0 else ["eight", "sc"]}
            for name in row["order"]:
                run = run_sc if name == "sc" else run_eight
                row[name] = run(question, common, args, Path(tmp) / name)
        row["same_samples"] = row["sc"]["samples"] == row["eight"]["samples"]
        row["ratio"] = round(row["sc"]["wall"] / row["eight"]["wall"], 3)
        rows.append(row)
        emit(row)
    emit({"event": "summary", "model": args.model, "agent": args.agent, "samples": args.samples,
          "questions": len(rows), "sc_s": round(statistics.mean(r["sc"]["wall"] for r in rows), 2),
          "eight_s": round(statistics.mean(r["eight"]["wall"] for r in rows), 2),
          "ratio": round(sum(r["sc"]["wall"] for r in rows) / sum(r["eight"]["wall"] for r in rows), 3),
          "same_samples": sum(r["same_samples"] for r in rows)})


if __name__ == "__main__":
    sys.exit(main())
