"""The ``ponder`` command line: ``run`` (``--samples``: cli_sc.py), ``graph``, ``sandbox`` and ``memory``.

``chat`` (chat/cli.py) and ``eval``/``report`` (cli_eval.py) are registered from their own modules.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from ponder.core.errors import BadLinesError, PonderError
from ponder.core.textsafe import setup_logging, terminal_safe

app = typer.Typer(
    name="ponder",
    help="Agents that think before they answer: ReAct and PAL on a local or served model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

AgentOpt = Annotated[str | None, typer.Option("--agent", "-a", help="react or pal (default: settings).")]
ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Model spec, e.g. embedded, "
                                                                   "openai:<model>@<url>, scripted:<file>.")]


@app.command()
def run(
    question: Annotated[str, typer.Argument(help="The question or task.")],
    agent: AgentOpt = None,
    model: ModelOpt = None,
    max_steps: Annotated[int | None, typer.Option(help="Max model calls for this run.")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature (0 = greedy).")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Max new tokens per model call.")] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed.")] = None,
    device: Annotated[str | None, typer.Option(help="Torch device for local models (cpu, cuda).")] = None,
    tools: Annotated[str | None, typer.Option(help="Comma-separated ReAct tools: calculator, python, search, "
                                                   "lookup, retrieve.")] = None,
    sandbox: Annotated[str | None, typer.Option(help="Where code runs: local or e2b.")] = None,
    memory: Annotated[str | None, typer.Option(help="Memory: none (clean baseline), reflexion, expel or both "
                                                    "(default: settings).")] = None,
    namespace: Annotated[str | None, typer.Option(help="Memory namespace (default: settings).")] = None,
    trials: Annotated[int, typer.Option(min=1, help="Run up to K trials, stopping at the first success.")] = 1,
    label: Annotated[str | None, typer.Option(help="The gold answer: a wrong answer then counts as a failure.")] = None,
    samples: Annotated[int, typer.Option(help="Self-consistency: run N independent trajectories and vote.")] = 1,
    vote: Annotated[str, typer.Option(help="How samples are aggregated: majority, weighted or judge.")] = "majority",
    early_stop: Annotated[bool, typer.Option(help="Stop sampling once the vote is settled (see --stop-rule).")] = False,
    stop_rule: Annotated[str, typer.Option(help="certain (never changes the answer), beta or esc.")] = "certain",
    budget: Annotated[str | None, typer.Option(help="Cap: tokens ('4000t') or samples ('6s').")] = None,
    wave: Annotated[int | None, typer.Option(help="Samples per wave (default: all; half with --early-stop).")] = None,
    answer_kind: Annotated[str, typer.Option(help="Vote normalizer: auto, number, text, choice or code.")] = "auto",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Directory for trajectories.jsonl.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the steps.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show backend and timing details.")] = False,
) -> None:
    """Answer QUESTION with an agent and print its steps and final answer."""
    from ponder.agents.runner import AGENTS, run_agent
    from ponder.core.console import StepPrinter, console, err_console, safe
    from ponder.core.errors import ConfigError
    from ponder.core.settings import load_settings
    from ponder.models.spec import load_model

    if agent is not None and agent not in AGENTS:
        raise ConfigError(f"--agent must be one of: {', '.join(AGENTS)} (got {agent!r})")
    _setup_logging(verbose)
    settings = load_settings(agent=agent, model=model, max_steps=max_steps, temperature=temperature,
                             max_tokens=max_tokens, seed=seed, device=device, out_dir=out, sandbox=sandbox,
                             memory=memory, memory_namespace=namespace,
                             tools=[t.strip() for t in tools.split(",") if t.strip()] if tools else None)
    status_console = err_console if as_json else console
    with status_console.status(f"Loading model {settings.model} ..."):
        backend = load_model(settings.model, settings)
    if verbose:
        info = getattr(backend, "load_info", {})
        status_console.print(f"[dim]model {backend.spec} via {getattr(backend, 'backend_name', '?')} {info}[/]")
    if samples > 1 or budget is not None or early_stop:
        from ponder.cli.sc import run_samples, sc_config

        config = sc_config(samples, vote, early_stop, stop_rule, budget, wave, answer_kind)
        if trials > 1 or settings.memory != "none":
            raise ConfigError("--samples cannot be combined with --trials or --memory yet; "
                              "use the Python API (run_self_consistency(memory=...)) for memory with samples")
        run_samples(question, settings=settings, backend=backend, config=config, console=status_console,
                    as_json=as_json, label=label, verbose=verbose)
        return
    printer = None if as_json else StepPrinter(console, verbose=verbose)
    on_step = printer.step if printer else None
    if settings.memory == "none" and trials == 1:
        runs = [run_agent(question, agent=settings.agent, settings=settings, model=backend, on_step=on_step)]
    else:
        from ponder.core.records import Trajectory
        from ponder.graphs.strategies.trials import run_trials, succeeded

        def on_trial(n: int, done: Trajectory) -> None:
            if printer is None:
                return
            printer.final(done)
            if label is not None:
                console.print("correct" if succeeded(done, label) else f"[red]wrong[/] (label {safe(label)})")
            if n < trials and not succeeded(done, label):
                console.rule(f"trial {n + 1}")

        runs = run_trials(question, trials=trials, memory=settings.memory, label=label, settings=settings,
                          model=backend, agent=settings.agent, on_step=on_step, on_trial=on_trial)
        printer = None
    traj = runs[-1]
    if as_json:
        from ponder.core.answers import is_correct

        result = {
            "id": traj.id, "answer": traj.final_answer, "status": traj.status, "steps": len(traj.steps),
            "usage": traj.usage.model_dump(), "trajectory_path": traj.metadata.get("trajectory_path"),
            "agent": traj.agent, "model": traj.model, "backend": traj.backend, "error": traj.error,
        }
        if label is not None:
            result["correct"] = is_correct(traj.final_answer, label)
        if settings.memory != "none":
            result["memory"] = traj.metadata.get("memory")
        if traj.metadata.get("insights"):
            result["insights"] = traj.metadata["insights"]
        if trials > 1:
            result["trials"] = [{"trial": n, "id": t.id, "answer": t.final_answer, "status": t.status,
                                 "steps": len(t.steps), "memory": t.metadata.get("memory"),
                                 **({"correct": is_correct(t.final_answer, label)} if label is not None else {})}
                                for n, t in enumerate(runs, 1)]
        print(json.dumps(result))
    elif printer is not None:
        printer.final(traj)


@app.command()
def graph(
    agent: Annotated[str, typer.Argument(help="react, pal or self_consistency")] = "react",
) -> None:
    """Print the Mermaid diagram of an agent graph."""
    from ponder.agents.runner import AGENTS
    from ponder.cli.diagram import mermaid
    from ponder.core.errors import ConfigError

    if agent not in (*AGENTS, "self_consistency"):
        raise ConfigError(f"unknown graph {agent!r}; choose one of: {', '.join(AGENTS)}, self_consistency")
    print(mermaid(agent), end="")


from ponder.cli.chat import chat_command  # noqa: E402  (light: the chat's heavy imports are inside the command)

app.command("chat")(chat_command)


sandbox_app = typer.Typer(help="Run code in the sandbox by hand (the same one PAL and the python tool use).",
                          no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")


@sandbox_app.command("exec")
def sandbox_exec(
    code: Annotated[str, typer.Argument(help="Python code to run; '-' reads it from standard input.")],
    sandbox: Annotated[str | None, typer.Option(help="local or e2b (default: settings).")] = None,
    timeout: Annotated[float | None, typer.Option(help="Wall-clock seconds.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full result as JSON.")] = False,
) -> None:
    """Run CODE in a fresh sandbox session and show what happened (exit 1 when the code failed)."""
    from ponder.core.console import console, print_exec_result
    from ponder.core.settings import load_settings
    from ponder.tools.sandbox import open_sandbox

    source = sys.stdin.read() if code == "-" else code
    settings = load_settings(sandbox=sandbox, exec_timeout=timeout)
    session = open_sandbox(settings)
    try:
        result = session.run(source)
    finally:
        session.close()
    if as_json:
        print(json.dumps(result.model_dump(mode="json")))  # ASCII: C1 controls become \u escapes too
    else:
        print_exec_result(console, result, getattr(session, "isolation_in_use", settings.sandbox))
    if not result.ok:
        raise typer.Exit(1)


memory_app = typer.Typer(help="Inspect and manage the memory store (Chroma at memory_path or memory_url).",
                         no_args_is_help=True)
app.add_typer(memory_app, name="memory")

MemKindOpt = Annotated[str | None, typer.Option("--kind", help="reflection, insight or experience (default: all).")]
MemNsOpt = Annotated[str | None, typer.Option("--namespace", "-n", help="Only this namespace (default: all).")]
MemJsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
SkipBadOpt = Annotated[bool, typer.Option("--skip-bad-lines", help="Import the good lines of a file with unreadable "
                                          "ones (each is reported); by default such a file imports nothing.")]


def _memory_store(kind: str | None = None):  # the return type (ChromaMemoryStore) is imported lazily
    """Open the configured memory store (a ``ChromaMemoryStore``) after checking ``--kind``."""
    from ponder.core.errors import ConfigError
    from ponder.core.settings import load_settings
    from ponder.memory.store import KINDS, open_store

    if kind is not None and kind not in KINDS:
        raise ConfigError(f"--kind must be one of: {', '.join(KINDS)} (got {kind!r})")
    return open_store(load_settings())


def _memory_table(records: list, similarities: list[float] | None = None) -> None:
    """One row per memory: its id (whole, to copy) above its text, then kind, namespace and use."""
    from rich.table import Table
    from rich.text import Text

    from ponder.core.console import console, safe

    table = Table(show_lines=True)
    table.add_column("id / text", overflow="fold", min_width=32, ratio=1)
    for column in ("kind", "namespace", *(["similarity"] if similarities else []), "score", "uses"):
        table.add_column(column, overflow="fold")
    for n, r in enumerate(records):
        text = r.text if len(r.text) <= 300 else r.text[:300] + " …"
        cell = Text.assemble((terminal_safe(r.id), "bold"), "\n", terminal_safe(text))
        sim = [f"{similarities[n]:.3f}"] if similarities else []
        table.add_row(cell, safe(r.kind), safe(r.namespace), *sim, f"{r.score:g}", str(r.use_count))
    console.print(table)
    if not records:
        console.print("no memories")


@memory_app.command("list")
def memory_list(kind: MemKindOpt = None, namespace: MemNsOpt = None,
                limit: Annotated[int, typer.Option(help="Most records shown.")] = 20,
                as_json: MemJsonOpt = False) -> None:
    """List memories, newest first."""
    records = _memory_store(kind).list(kind, namespace=namespace, limit=limit)  # type: ignore[arg-type]
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in records]))
    else:
        _memory_table(records)


@memory_app.command("search")
def memory_search(query: Annotated[str, typer.Argument(help="Text to match.")], kind: MemKindOpt = None,
                  namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="Namespace searched "
                                                                "(default: the memory_namespace setting).")] = None,
                  limit: Annotated[int, typer.Option(help="Most hits shown.")] = 5,
                  as_json: MemJsonOpt = False) -> None:
    """Show the memories most similar to QUERY (does not count as a use of them)."""
    from ponder.memory.store import KINDS

    store = _memory_store(kind)
    hits = [h for k in ([kind] if kind else KINDS)
            for h in store.search(k, query, limit, namespace=namespace, mark_used=False)]  # type: ignore[arg-type]
    hits = sorted(hits, key=lambda h: -h.similarity)[:limit]
    if as_json:
        print(json.dumps([h.model_dump(mode="json") for h in hits]))
    else:
        _memory_table([h.record for h in hits], [h.similarity for h in hits])


@memory_app.command("show")
def memory_show(record_id: Annotated[str, typer.Argument(metavar="ID", help="The memory's id.")],
                as_json: MemJsonOpt = False) -> None:
    """Show one memory with all its fields."""
    from ponder.core.console import console, safe
    from ponder.core.errors import DataError

    record = _memory_store().get(record_id)
    if record is None:
        raise DataError(f"no memory with id {record_id!r}")
    if as_json:
        print(json.dumps(record.model_dump(mode="json")))
        return
    for key, value in record.model_dump(mode="json").items():
        shown = json.dumps(value) if isinstance(value, dict) else str(value)
        console.print(f"[bold]{key}[/]: {safe(shown)}")


@memory_app.command("delete")
def memory_delete(record_id: Annotated[str, typer.Argument(metavar="ID", help="The memory's id.")]) -> None:
    """Delete one memory."""
    from ponder.core.errors import DataError

    if not _memory_store().delete(record_id):
        raise DataError(f"no memory with id {record_id!r}")
    print(f"deleted {record_id}")


@memory_app.command("clear")
def memory_clear(namespace: MemNsOpt = None,
                 yes: Annotated[bool, typer.Option("--yes", help="Really delete (required).")] = False) -> None:
    """Delete every memory (in --namespace when given); needs --yes."""
    from ponder.core.errors import ConfigError

    where = f"namespace {namespace!r}" if namespace else "every namespace"
    if not yes:
        raise ConfigError(f"refusing to clear the memories of {where} without --yes")
    print(f"deleted {_memory_store().clear(namespace)} memories from {where}")


@memory_app.command("stats")
def memory_stats(as_json: MemJsonOpt = False) -> None:
    """Counts per kind and namespace, where the store lives and its limits."""
    from rich.table import Table

    from ponder.core.console import console, safe

    stats = _memory_store().stats()
    if as_json:
        print(json.dumps(stats))
        return
    console.print(f"store     {stats['backend']} at {stats['location']}\nschema    v{stats['schema_version']}\n"
                  f"embedder  {stats['embedder']}\ncapacity  {stats['capacity']} per kind and namespace",
                  markup=False, soft_wrap=True)
    table = Table("kind", "namespace", "records")
    for kind, per_ns in stats["counts"].items():
        for ns, count in per_ns.items() or [("-", 0)]:
            table.add_row(kind, safe(ns), str(count))
    console.print(table)
    console.print(f"total {stats['total']}")


@memory_app.command("export")
def memory_export(file: Annotated[Path, typer.Argument(help="JSONL file to write (replaced).")]) -> None:
    """Write every memory to FILE as JSONL (ids, timestamps, scores kept)."""
    print(f"exported {_memory_store().export(file)} memories to {file}")


@memory_app.command("import")
def memory_import(file: Annotated[Path, typer.Argument(help="JSONL file written by 'ponder memory export'.")],
                  as_json: MemJsonOpt = False,
                  skip_bad_lines: SkipBadOpt = False) -> None:
    """Read memories from FILE (same ids replace; bad lines, empty, oversized and near-duplicates are reported)."""
    results = _memory_store().import_(file, skip_bad_lines=skip_bad_lines)
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in results]))
        return
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
        if r.status == "skipped":
            print(terminal_safe(f"skipped {r.reason}"), file=sys.stderr)
        elif r.status in ("rejected", "duplicate"):
            print(terminal_safe(f"{r.status} {r.id}: {r.reason}"), file=sys.stderr)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing"
    print(f"imported from {file}: {summary}")


from ponder.cli.eval import eval_command, report_command  # noqa: E402 - light: heavy imports are inside

app.command("eval")(eval_command)
app.command("report")(report_command)


@app.command()
def version() -> None:
    """Print ponder's version."""
    from ponder import __version__

    print(__version__)


def _setup_logging(verbose: bool) -> None:
    setup_logging(logging.INFO if verbose else logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ponder`` console script: usage errors and typed errors become one line."""
    from typer._click import exceptions as click_exc  # typer vendors click

    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="ponder", standalone_mode=False)
    except click_exc.NoArgsIsHelpError as exc:  # bare `ponder`
        print(exc.ctx.get_help() if exc.ctx else "", file=sys.stderr)
        return 2
    except click_exc.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx and exc.ctx.parent else ""
        print(terminal_safe(f"ponder: error: {exc.format_message()}{hint}"), file=sys.stderr)
        return 2
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        print("ponder: aborted", file=sys.stderr)
        return 130
    except BadLinesError as exc:  # every bad line of a user's file (file:line: reason), then the one error line
        print(*map(terminal_safe, [*exc.details(), f"ponder: error: {exc.summary}"]), sep="\n", file=sys.stderr)
        return exc.exit_code
    except PonderError as exc:
        print(terminal_safe(f"ponder: error: {exc}"), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ponder: interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
