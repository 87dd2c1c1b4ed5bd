"""Grammar table: grammar-constrained vs free agent steps on the embedded model (accuracy, parse errors, tool use).

Each configuration is one ``run_eval`` run (the eval runner, as ``ponder eval`` uses it) in its own child
process, writing ``<out>/runs/<name>/results.jsonl`` as episodes end; a rerun resumes it (a crash keeps the
finished episodes). Configurations (greedy, the suite's default agent settings and tools):

* ``gsm8k-react-{on,off}``, ``svamp-react-{on,off}``: the first ``--limit`` (100) test items, ReAct.
* ``textworld-env-{on,off}``: TextWorld tier 1 (the default suite's first 10 games), the env agent.
* ``gsm8k-pal-{on,off}``: PAL on GSM8K.

One JSON line per configuration goes to ``<out>/grammar.jsonl`` (rewritten with every finished configuration):
suite, configuration, n, accuracy with a 95 % Wilson interval, parse-error steps (total, per episode, episodes
with one), runs ending in ``parse_error`` / ``max_steps``, tool calls and model calls per episode, mean wall
per item, and whether the grammar was really on (``Trajectory.metadata["grammar"]``). Then one ``compare``
line per pair: constrained − free accuracy with a paired 95 % interval (Newcombe's hybrid score method) and
McNemar's exact test on the items where the two disagree.

Usage (long: run it niced, contained and in the background)::

    python benchmarks/grammar.py --out runs/bench/measure
    python benchmarks/grammar.py --out DIR --only gsm8k-react-on,gsm8k-react-off --limit 3
    python benchmarks/grammar.py --out DIR --report          # the markdown tables of what is there
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Config:
    """One measured configuration: a suite played by an agent with a constraint mode and a GGUF format."""

    name: str
    suite: str
    agent: str | None
    constrained: str | None = None
    fmt: str | None = None
    limit: int | None = None

    def overrides(self) -> dict[str, Any]:
        """Settings overrides of this configuration (unset ones keep the defaults)."""
        out: dict[str, Any] = {"constrained_steps": self.constrained, "llamacpp_format": self.fmt}
        if self.agent in ("react", "pal"):
            out["agent"] = self.agent
        return {k: v for k, v in out.items() if v is not None}


def grammar_configs(limit: int) -> list[Config]:
    """The grammar table's configurations, in the order they run."""
    out = []
    for suite, agent, n in (("gsm8k", "react", limit), ("svamp", "react", limit), ("textworld", "env", 10),
                            ("gsm8k", "pal", limit)):
        for mode in ("on", "off"):
            out.append(Config(f"{suite}-{agent}-{mode}", suite, agent, constrained=mode, limit=n))
    return out


# ---------------------------------------------------------------- statistics

def wilson(k: int, n: int) -> tuple[float, float]:
    """The 95 % Wilson score interval of ``k`` successes in ``n``."""
    if n == 0:
        return 0.0, 1.0
    p, z2 = k / n, Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def binom_tail(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2)."""
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n if n else 1.0


def paired(a_ok: list[bool], b_ok: list[bool]) -> dict[str, Any]:
    """Paired comparison of A and B on the same items: A − B with Newcombe's paired hybrid-score 95 % interval
    (method 10, Newcombe 1998), McNemar's exact two-sided p and the one-sided p that A is worse than B."""
    n = len(a_ok)
    both = sum(x and y for x, y in zip(a_ok, b_ok, strict=True))
    a_only = sum(x and not y for x, y in zip(a_ok, b_ok, strict=True))
    b_only = sum(y and not x for x, y in zip(a_ok, b_ok, strict=True))
    neither = n - both - a_only - b_only
    p1, p2 = (both + a_only) / n, (both + b_only) / n
    (l1, u1), (l2, u2) = wilson(both + a_only, n), wilson(both + b_only, n)
    denom = math.sqrt((both + a_only) * (neither + b_only) * (both + b_only) * (neither + a_only))
    cross = both * neither - a_only * b_only
    phi = (max(cross - n / 2, 0.0) if cross > 0 else cross) / denom if denom else 0.0
    d = p1 - p2
    lo = d - math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    hi = d + math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    m = a_only + b_only
    two_sided = min(1.0, 2 * binom_tail(max(a_only, b_only), m)) if m else 1.0
    return {"n": n, "diff": round(d, 4), "diff_ci95": [round(lo, 4), round(hi, 4)], "a_only": a_only,
            "b_only": b_only, "both": both, "neither": neither, "mcnemar_p": round(two_sided, 4),
            "p_a_worse": round(binom_tail(b_only, m), 4) if m else 1.0}


# ---------------------------------------------------------------- one configuration (child process)

def play(cfg: Config, run_dir: Path, workers: int) -> None:
    """Run (or resume) ``cfg`` with the eval runner into ``run_dir``; record how the model was loaded."""
    from ponder.core.settings import load_settings
    from ponder.envs.context import EvalOptions
    from ponder.envs.registry import get_suite
    from ponder.envs.runner import run_eval
    from ponder.models.spec import load_model

    settings = load_settings(**cfg.overrides())
    suite = get_suite(cfg.suite)
    agent = cfg.agent if cfg.agent in ("react", "pal") else None
    options = EvalOptions(suite=cfg.suite, agent=agent, limit=cfg.limit, workers=workers, out_dir=run_dir,
                          resume=True)
    model = None if suite.needs_process else load_model(settings.model, settings)
    run_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    run = run_eval(suite, options, settings, quiet=True, report=False, model=model)
    import ponder

    info = {"config": asdict(cfg), "workers": workers, "new": run.new, "wall_s": round(time.perf_counter() - start, 2),
            "source": str(Path(ponder.__file__).parent), "backend": model.backend_name if model else None,
            "load_info": json.loads(json.dumps(dict(model.load_info), default=str)) if model else None,
            "settings": {"constrained_steps": settings.constrained_steps, "llamacpp_format": settings.llamacpp_format,
                         "agent": settings.agent, "temperature": settings.temperature, "model": settings.model}}
    with open(run_dir / "bench_starts.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(info) + "\n")


# ---------------------------------------------------------------- rows

def load_run(run_dir: Path) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The results (by episode order) and trajectories (by id) of a run directory."""
    results = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines() if line.strip()]
    results.sort(key=lambda r: r.get("metadata", {}).get("index", 0))
    trajs: dict[str, dict[str, Any]] = {}
    path = run_dir / "trajectories.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                t = json.loads(line)
                trajs[t["id"]] = t
    for r in results:
        if r.get("trajectory"):
            trajs.setdefault(r["trajectory"]["id"], r["trajectory"])
    return results, trajs


def summarize_run(cfg: Config, run_dir: Path) -> dict[str, Any]:
    """The table row of one configuration's run directory."""
    results, trajs = load_run(run_dir)
    n = len(results)
    ok = sum(bool(r["success"]) for r in results)
    steps = [s for r in results for tid in r["trajectory_ids"] if tid in trajs for s in trajs[tid]["steps"]]
    per_ep_parse = [sum(s["kind"] == "parse_error" for tid in r["trajectory_ids"] if tid in trajs
                        for s in trajs[tid]["steps"]) for r in results]
    grammar = [trajs[tid].get("metadata", {}).get("grammar") for r in results for tid in r["trajectory_ids"]
               if tid in trajs]
    starts = [json.loads(x) for x in (run_dir / "bench_starts.jsonl").read_text().splitlines()] \
        if (run_dir / "bench_starts.jsonl").is_file() else []
    manifest = json.loads((run_dir / "run.json").read_text())
    lo, hi = wilson(ok, n)
    load_info = next((s["load_info"] for s in reversed(starts) if s.get("load_info")), None)
    fmt = (load_info or {}).get("format")
    new = sum(s["new"] for s in starts)

    def mean(values: list[float]) -> float:
        return round(sum(values) / len(values), 3) if values else 0.0

    return {
        "bench": "grammar" if cfg.fmt is None else "format", "suite": cfg.suite, "configuration": cfg.name,
        "agent": cfg.agent, "constrained": cfg.constrained,
        "format": fmt.get("format") if isinstance(fmt, dict) else (cfg.fmt or "default"), "n": n,
        "successes": ok, "accuracy": round(ok / n, 4) if n else None, "ci95": [round(lo, 4), round(hi, 4)],
        "mean_score": mean([r["score"] for r in results]),
        "parse_error_steps": sum(per_ep_parse), "parse_error_steps_per_episode": mean(per_ep_parse),
        "episodes_with_parse_error": sum(x > 0 for x in per_ep_parse),
        "runs_parse_error": sum(r["status"] == "parse_error" for r in results),
        "runs_max_steps": sum(r["status"] == "max_steps" for r in results),
        "runs_error": sum(r["status"] not in ("solved", "parse_error", "max_steps", "no_answer") for r in results),
        "tool_calls_per_episode": mean([r["usage"]["tool_calls"] for r in results]),
        "episodes_with_tool_call": sum(r["usage"]["tool_calls"] > 0 for r in results),
        "model_calls_per_episode": mean([r["usage"]["model_calls"] for r in results]),
        "completion_tokens_per_episode": mean([r["usage"]["completion_tokens"] for r in results]),
        "wall_s_per_item": mean([r["usage"]["wall_seconds"] for r in results]),
        "run_wall_s_per_item": round(sum(s["wall_s"] for s in starts) / new, 3) if new else None,
        "steps": len(steps), "grammar_seen": sorted({str(g) for g in grammar}),
        "grammar_check": _grammar_ok(cfg, grammar),
        "load_info": load_info, "workers": sorted({s["workers"] for s in starts}),
        "git_commit": manifest.get("git_commit"), "sources": sorted({s.get("source", "") for s in starts}),
    }


def _grammar_ok(cfg: Config, grammar: list[Any]) -> bool | None:
    """Whether every trajectory was (``on``) or was not (``off``) constrained, as the configuration says."""
    if cfg.constrained == "on":
        return all(g for g in grammar)
    if cfg.constrained == "off":
        return not any(grammar)
    return None


def ok_by_id(run_dir: Path) -> dict[str, bool]:
    """Success per episode id of a run."""
    results, _ = load_run(run_dir)
    return {r["episode_id"]: bool(r["success"]) for r in results}


def compare(a: Config, b: Config, root: Path, what: str) -> dict[str, Any] | None:
    """A paired ``a − b`` accuracy comparison on the items both runs finished (``None`` when none)."""
    if not all((root / "runs" / c.name / "results.jsonl").is_file() for c in (a, b)):
        return None
    ra, rb = ok_by_id(root / "runs" / a.name), ok_by_id(root / "runs" / b.name)
    common = [k for k in ra if k in rb]
    if not common:
        return None
    return {"bench": what, "a": a.name, "b": b.name, **paired([ra[k] for k in common], [rb[k] for k in common])}


# ---------------------------------------------------------------- driver

def run_configs(configs: list[Config], out: Path, workers: int, timeout: float, bench: str) -> list[dict[str, Any]]:
    """Run each configuration in a child process (resuming), then write and return its rows and comparisons."""
    rows = []
    for cfg in configs:
        run_dir = out / "runs" / cfg.name
        cmd = [sys.executable, __file__, "--child", json.dumps(asdict(cfg)), "--run-dir", str(run_dir),
               "--workers", str(workers)]
        print(f"[{time.strftime('%H:%M:%S')}] {cfg.name}", file=sys.stderr, flush=True)
        rc = run_child(cmd, timeout)
        if rc:
            print(f"{cfg.name}: exit {rc} (keeping what finished)", file=sys.stderr, flush=True)
        if (run_dir / "results.jsonl").is_file():
            rows.append(summarize_run(cfg, run_dir))
            write_rows(out / f"{bench}.jsonl", rows)
    return rows


def run_child(cmd: list[str], timeout: float) -> int:
    """Run a configuration's child; past ``timeout`` (or on Ctrl-C) interrupt it like Ctrl-C, so the eval runner
    stops its workers and keeps every finished episode, and kill it only if it does not stop in 60 s."""
    proc = subprocess.Popen(cmd)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return _interrupt(proc)
    except KeyboardInterrupt:  # the child got the same Ctrl-C (same process group): wait for it, then stop
        _interrupt(proc, send=False)
        raise


def _interrupt(proc: subprocess.Popen[bytes], *, send: bool = True) -> int:
    """Ctrl-C ``proc`` (``send``) and wait for it; kill it if it is still there after 60 s."""
    if send and proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite ``path`` with one JSON line per row."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def grammar_comparisons(configs: list[Config], out: Path) -> list[dict[str, Any]]:
    """Constrained − free for each suite/agent measured in both modes."""
    by_name = {c.name: c for c in configs}
    rows = []
    for c in configs:
        if c.constrained == "on" and c.name.replace("-on", "-off") in by_name:
            row = compare(c, by_name[c.name.replace("-on", "-off")], out, "grammar_compare")
            if row:
                rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]], comps: list[dict[str, Any]]) -> str:
    """The rows and comparisons as markdown tables."""
    head = ("| configuration | n | accuracy [95 % CI] | parse-error steps (eps with one) | runs ending parse_error / "
            "max_steps | tool calls / ep | model calls / ep | s/item (episode; wall÷n) | format | grammar ok |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n")
    lines = [f"| {r['configuration']} | {r['n']} | {100 * r['accuracy']:.1f} % [{100 * r['ci95'][0]:.1f}, "
             f"{100 * r['ci95'][1]:.1f}] | {r['parse_error_steps']} ({r['episodes_with_parse_error']}) | "
             f"{r['runs_parse_error']} / {r['runs_max_steps']} | {r['tool_calls_per_episode']} | "
             f"{r['model_calls_per_episode']} | {r['wall_s_per_item']}; {r['run_wall_s_per_item']} | {r['format']} | "
             f"{r['grammar_check']} |" for r in rows]
    chead = ("\n| A − B | n | diff [95 % CI] | A only / B only | McNemar p | p(A worse) |\n"
             "|---|---|---|---|---|---|\n")
    clines = [f"| {c['a']} − {c['b']} | {c['n']} | {100 * c['diff']:+.1f} pp [{100 * c['diff_ci95'][0]:+.1f}, "
              f"{100 * c['diff_ci95'][1]:+.1f}] | {c['a_only']} / {c['b_only']} | {c['mcnemar_p']} | "
              f"{c['p_a_worse']} |" for c in comps]
    return head + "\n".join(lines) + "\n" + (chead + "\n".join(clines) + "\n" if comps else "")


def main() -> None:
    """Parse flags; run the configurations (or one, as a child), or print the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-grammar"))
    parser.add_argument("--limit", type=int, default=100, help="QA items per configuration.")
    parser.add_argument("--only", default="", help="Comma-separated configuration names.")
    parser.add_argument("--workers", type=int, default=1, help="Episodes in parallel (eval --workers).")
    parser.add_argument("--timeout", type=float, default=3600.0, help="Seconds per configuration.")
    parser.add_argument("--report", action="store_true", help="Only print the tables of what is in --out.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        play(Config(**json.loads(args.child)), args.run_dir, args.workers)
        return
    configs = grammar_configs(args.limit)
    if args.only:
        wanted = args.only.split(",")
        configs = [c for c in configs if c.name in wanted]
    rows = run_or_report(configs, args, "grammar")
    publish(args.out / "grammar.jsonl", rows, grammar_comparisons(configs, args.out))


def run_or_report(configs: list[Config], args: argparse.Namespace, label: str) -> list[dict[str, Any]]:
    """Run the configurations (resuming), or with ``--report`` only summarize the runs already on disk."""
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report:
        return [summarize_run(c, args.out / "runs" / c.name) for c in configs
                if (args.out / "runs" / c.name / "results.jsonl").is_file()]
    return run_configs(configs, args.out, args.workers, args.timeout, label)


def publish(path: Path, rows: list[dict[str, Any]], comps: list[dict[str, Any]]) -> None:
    """Write the rows and comparisons to ``path``, print them as JSON lines, then as Markdown tables."""
    write_rows(path, rows + comps)
    for row in rows + comps:
        print(json.dumps(row), flush=True)
    print(markdown(rows, comps))


if __name__ == "__main__":
    main()
