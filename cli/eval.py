"""``ponder eval SUITE`` and ``ponder report DIR [DIR2 ...]`` (registered in :mod:`ponder.cli.entry`).

The strategy options of ``eval`` (agent, samples, vote, trials, memory, ...) are generated from
:class:`~ponder.graphs.strategies.spec.RunSpec`; :class:`~ponder.envs.context.EvalOptions` is that spec plus
what to evaluate.

Heavy modules (suites, the runner, matplotlib) are imported inside the commands, so ``ponder --help``
stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from ponder.cli.ecosystem_options import McpOpt, ToolCallingOpt, TraceOpt, ecosystem_overrides
from ponder.cli.run import ConstrainedOpt
from ponder.cli.spec_options import spec_options
from ponder.core.errors import ConfigError
from ponder.core.textsafe import setup_logging, terminal_safe
from ponder.graphs.strategies.spec import spec_fields

#: The run-spec options of ``ponder eval``: every command-line one but ``answer_kind`` (each suite compares answers
#: its own way).
Executor = Literal["local", "ray"]
EVAL_SPEC_FIELDS = tuple(f.name for f in spec_fields() if f.cli and f.name != "answer_kind")


@spec_options(EVAL_SPEC_FIELDS, short={"agent": "-a"})
def eval_command(
    suite: Annotated[str, typer.Argument(help="gsm8k, svamp, hotpotqa, musique, humaneval, textworld, miniwob, ...")],
    data: Annotated[Path | None, typer.Option(help="Evaluate this JSONL file (same schema as the suite's "
                                                  "shipped one) instead; textworld: a suite file or name.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N episodes.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model spec (default: settings).")] = None,
    policy: Annotated[str, typer.Option(help="agent; random (env suites: the no-model baseline); or a harness "
                                             "check the suite offers: walkthrough, solver, gold, ...")] = "agent",
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, max=256,
                                         help="Episodes in parallel (processes for game/browser suites).")] = 1,
    seed: Annotated[int | None, typer.Option(help="Sampling seed.")] = None,
    timeout: Annotated[float, typer.Option(min=0.001, help="Seconds per episode; a timed-out episode fails "
                                                           "as 'timeout'.")] = 600.0,
    max_steps: Annotated[int | None, typer.Option(help="Max agent steps per episode.")] = None,
    constrained: ConstrainedOpt = None,
    mcp: McpOpt = None,
    tool_calling: ToolCallingOpt = None,
    trace: TraceOpt = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory (default: "
                                                                 "<out_dir>/eval/<suite>-<time>).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out, skipping finished "
                                                          "episodes.")] = False,
    budget_total: Annotated[str | None, typer.Option(help="--strategy adaptive: the whole suite's budget, e.g. "
                                                          "200000t (tokens) or 400s (samples), spent where it "
                                                          "helps most.")] = None,
    executor: Annotated[Executor, typer.Option(help="local: this machine's worker pool; ray: shards of episodes "
                                                   "as Ray tasks (pip install 'ponder[ray]').")] = "local",
    ray_address: Annotated[str | None, typer.Option(help="--executor ray: the cluster to join (auto, HOST:PORT or "
                                                         "ray://HOST:PORT); default: a local Ray instance.")] = None,
    shards: Annotated[int | None, typer.Option(min=1, help="--executor ray: split the episodes into N shards "
                                                           "(default: several per worker slot).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log warnings and backend details.")] = False,
    **spec_values: Any,
) -> None:
    """Evaluate an agent (or a harness policy) on SUITE; results, run.json and reports go to --out."""
    import logging

    from ponder.core.settings import load_settings
    from ponder.core.tracing import configure_tracing
    from ponder.envs.context import EvalOptions
    from ponder.envs.registry import get_suite
    from ponder.envs.runner import default_out_dir, run_eval
    from ponder.graphs.strategies.spec import parse_spec

    setup_logging(logging.INFO if verbose else logging.ERROR)
    spec = parse_spec(spec_values)
    if resume and out is None:
        raise ConfigError("--resume needs --out DIR (the run to continue)")
    if executor != "ray" and (ray_address is not None or shards is not None):
        raise ConfigError("--ray-address and --shards apply to --executor ray")
    settings = load_settings(agent=spec.agent, model=model, seed=seed, max_steps=max_steps, temperature=temperature,
                             constrained_steps=constrained,
                             **ecosystem_overrides(mcp=mcp, tool_calling=tool_calling, trace=trace))
    configure_tracing(settings)
    chosen = get_suite(suite)
    out_dir = out or default_out_dir(settings, suite)
    strategy = {**spec.model_dump(exclude_unset=True), "agent": settings.agent,
                "memory": spec.memory or settings.memory}
    options = EvalOptions(suite=suite, data=data, limit=limit, policy=policy, workers=workers, timeout=timeout,
                          out_dir=out_dir, resume=resume, budget_total=budget_total, **strategy)
    if executor == "ray":
        from ponder.envs.ray_executor import run_eval_ray
        from ponder.envs.ray_options import RayOptions

        run = run_eval_ray(chosen, options, settings, RayOptions(address=ray_address, shards=shards), quiet=quiet)
    elif options.budget_total is not None:  # one budget for the suite, allocated where it gains most
        from ponder.envs.adaptive import run_adaptive_eval

        run = run_adaptive_eval(chosen, options, settings, quiet=quiet)
    else:
        run = run_eval(chosen, options, settings, quiet=quiet)
    _print_summary(run.out_dir, run.new, len(run.results))


def _print_summary(out_dir: Path, new: int, total: int) -> None:
    from ponder.core.viewlinks import run_url, view_command
    from ponder.envs.report import HARNESS_LABEL, load_run, summary_rows

    data = load_run(out_dir)
    width = max(len(k) for k, _ in summary_rows(data.summary))
    if data.harness:
        print(f"*** {HARNESS_LABEL} ***")
    if data.manifest.get("strategy"):
        print(terminal_safe(f"{'strategy':<{width}}  {data.manifest['strategy']}"))
    for key, value in summary_rows(data.summary):
        print(terminal_safe(f"{key:<{width}}  {value}"))
    if data.summary.failures:
        print(f"{'failures':<{width}}  " + ", ".join(f"{k} {v}" for k, v in data.summary.failures.items()))
    print(terminal_safe(f"{new} episodes played now, {total} in the run; results {out_dir / 'results.jsonl'}; "
                        f"report {out_dir / 'report.html'}; view: {view_command(out_dir)} → {run_url(out_dir)}"))


def report_command(
    runs: Annotated[list[Path], typer.Argument(help="One run directory (rewrites its report) or several "
                                                    "(side-by-side comparison).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Where the comparison goes (default: "
                                                                 "the first run's parent / comparison).")] = None,
) -> None:
    """Write report.md and report.html for a run, or compare several runs side by side."""
    from ponder.envs.report import write_comparison, write_report

    for path in runs:
        if not (path / "results.jsonl").is_file():
            raise ConfigError(f"{path} is not an evaluation run (no results.jsonl)")
    if len(runs) == 1:
        md, page = write_report(runs[0])
        print(terminal_safe(md.read_text(encoding="utf-8").split("## Episodes")[0].rstrip()))
        print(f"\nwrote {md} and {page}")
        return
    md, page, text = write_comparison(list(runs), out or runs[0].resolve().parent / "comparison")
    print(terminal_safe(text.rstrip()))
    print(f"\nwrote {md} and {page}")
