"""``ponder run QUESTION``: one agent run, trials with memory, a self-consistency vote, a search, or composed.

The strategy options (agent, samples, vote, trials, memory, ...) are generated from
:class:`~ponder.graphs.strategies.spec.RunSpec` (:mod:`ponder.cli.spec_options`); the rest are settings.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ponder.cli.ecosystem_options import (
    McpOpt,
    OutputSchemaOpt,
    ToolCallingOpt,
    TraceOpt,
    ecosystem_overrides,
)
from ponder.cli.output import ChosenOutput, load_schema, print_output
from ponder.cli.spec_options import spec_options
from ponder.core.textsafe import setup_logging
from ponder.core.types import ConstrainMode, SandboxKind

if TYPE_CHECKING:
    from rich.console import Console

    from ponder.agents.structured import OutputSchema
    from ponder.core.console import StepPrinter
    from ponder.core.records import Trajectory
    from ponder.core.settings import Settings
    from ponder.graphs.strategies.spec import RunSpec
    from ponder.models.base import ModelBackend

ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Model spec, e.g. embedded, "
                                                                   "openai:<model>@<url>, scripted:<file>.")]
#: ``--constrained`` (run, eval, chat): the ``constrained_steps`` setting.
ConstrainedOpt = Annotated[ConstrainMode | None, typer.Option(
    "--constrained", help="Grammar-constrained agent steps: auto (when the backend supports grammars), on, off.")]


@spec_options(short={"agent": "-a"})
def run(
    question: Annotated[str, typer.Argument(help="The question or task.")],
    model: ModelOpt = None,
    max_steps: Annotated[int | None, typer.Option(help="Max model calls for this run.")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature (0 = greedy).")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Max new tokens per model call.")] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed.")] = None,
    device: Annotated[str | None, typer.Option(help="Torch device for local models (cpu, cuda).")] = None,
    tools: Annotated[str | None, typer.Option(help="Comma-separated ReAct tools: calculator, python, search, "
                                                   "lookup, retrieve; none: only the --mcp servers' tools.")] = None,
    sandbox: Annotated[SandboxKind | None, typer.Option(help="Where code runs: local or e2b.")] = None,
    constrained: ConstrainedOpt = None,
    mcp: McpOpt = None,
    tool_calling: ToolCallingOpt = None,
    output_schema: OutputSchemaOpt = None,
    trace: TraceOpt = None,
    namespace: Annotated[str | None, typer.Option(help="Memory namespace (default: settings).")] = None,
    label: Annotated[str | None, typer.Option(help="The gold answer: a wrong answer then counts as a failure.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Directory for trajectories.jsonl.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the steps.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show backend and timing details.")] = False,
    **spec_values: Any,
) -> None:
    """Answer QUESTION with an agent and print its steps and final answer."""
    from ponder.core.console import console, err_console
    from ponder.core.settings import load_settings
    from ponder.core.tracing import configure_tracing
    from ponder.graphs.strategies.spec import parse_spec

    spec = parse_spec(spec_values)
    setup_logging(logging.INFO if verbose else logging.WARNING)
    settings = load_settings(agent=spec.agent, model=model, max_steps=max_steps, temperature=temperature,
                             max_tokens=max_tokens, seed=seed, device=device, out_dir=out, sandbox=sandbox,
                             memory=spec.memory, memory_namespace=namespace, tools=tool_list(tools),
                             constrained_steps=constrained,
                             **ecosystem_overrides(mcp=mcp, tool_calling=tool_calling, trace=trace,
                                                   output_schema=output_schema))
    configure_tracing(settings)
    status_console = err_console if as_json else console
    schema = load_schema(settings.output_schema)  # before the model loads: a bad file fails fast
    backend = load_backend(settings, status_console, verbose)
    output = None
    if schema is not None and spec.strategy_name != "single":  # a vote or search: only the chosen answer
        output = ChosenOutput(question, schema, settings, backend)
        settings = settings.model_copy(update={"output_schema": None})
    if spec.strategy_name == "sc":
        _run_voted(question, spec, settings, backend, status_console, as_json=as_json, label=label, verbose=verbose,
                   output=output)
        return
    if spec.strategy_name != "single":
        from ponder.cli.composed import run_composed

        run_composed(question, spec, settings, backend, status_console, as_json=as_json, label=label, output=output)
        return
    printer = None if as_json else _printer(verbose)
    runs = _run_attempts(question, spec, settings, backend, printer, label, schema)
    if as_json:
        print(json.dumps(run_result(runs, label=label, memory=settings.memory != "none", trials=spec.trials)))
        return
    if printer is not None and spec.trials == 1 and settings.memory == "none":  # trials print their own
        printer.final(runs[-1])
    if schema is not None:
        print_output(runs[-1].output, runs[-1].metadata.get("output"), console)


def tool_list(tools: str | None) -> list[str] | None:
    """The ``--tools a,b`` option as a list (``None`` when not given; ``none``: no built-in tools, e.g. only MCP's)."""
    if tools is not None and tools.strip().lower() == "none":
        return []
    return [t.strip() for t in tools.split(",") if t.strip()] if tools else None


def load_backend(settings: Settings, out: Console, verbose: bool) -> ModelBackend:
    """Load the settings' model behind a spinner (with ``verbose``, say which backend and how it loaded)."""
    from ponder.models.llamacpp_formats import describe_format
    from ponder.models.spec import load_model

    with out.status(f"Loading model {settings.model} ..."):
        backend = load_model(settings.model, settings)
    if verbose:
        out.print(f"[dim]model {backend.spec} via {backend.backend_name} {dict(backend.load_info)}[/]")
        if fmt := describe_format(backend.load_info):
            out.print(f"[dim]format: {fmt}[/]")
    return backend


def _printer(verbose: bool) -> StepPrinter:
    from ponder.core.console import StepPrinter, console

    return StepPrinter(console, verbose=verbose)


def _run_voted(question: str, spec: RunSpec, settings: Settings, backend: ModelBackend, out: Console, *,
               as_json: bool, label: str | None, verbose: bool, output: ChosenOutput | None = None) -> None:
    """Self-consistency: ``spec.samples`` trajectories and a vote; with trials or memory, the composed strategy."""
    from ponder.cli.composed import run_composed
    from ponder.cli.sc import run_samples
    from ponder.graphs.self_consistency.graph import SCConfig

    if spec.trials > 1 or settings.memory != "none":
        run_composed(question, spec, settings, backend, out, as_json=as_json, label=label, output=output)
        return
    run_samples(question, settings=settings, backend=backend, config=SCConfig.from_spec(spec), console=out,
                as_json=as_json, label=label, verbose=verbose, output=output)


def _run_attempts(question: str, spec: RunSpec, settings: Settings, backend: ModelBackend,
                  printer: StepPrinter | None, label: str | None,
                  schema: OutputSchema | None = None) -> list[Trajectory]:
    """One run, or up to ``spec.trials`` trials with memory (each trial's verdict printed as it ends)."""
    from ponder.agents.runner import run_agent
    from ponder.core.console import console, safe
    from ponder.graphs.strategies.trials import run_trials, succeeded

    on_step = printer.step if printer else None
    if settings.memory == "none" and spec.trials == 1:
        return [run_agent(question, agent=settings.agent, settings=settings, model=backend, on_step=on_step,
                          output_schema=schema)]

    def on_trial(n: int, done: Trajectory) -> None:
        if printer is None:
            return
        printer.final(done)
        if label is not None:
            console.print("correct" if succeeded(done, label) else f"[red]wrong[/] (label {safe(label)})")
        if n < spec.trials and not succeeded(done, label):
            console.rule(f"trial {n + 1}")

    return run_trials(question, trials=spec.trials, memory=settings.memory, label=label, settings=settings,
                      model=backend, agent=settings.agent, on_step=on_step, on_trial=on_trial, learn=spec.learn)


def run_result(runs: list[Trajectory], *, label: str | None, memory: bool, trials: int) -> dict[str, Any]:
    """The ``--json`` object of a run: the last trajectory, and with ``trials`` above 1 every trial."""
    from ponder.core.answers import is_correct

    traj = runs[-1]
    result: dict[str, Any] = {
        "id": traj.id, "answer": traj.final_answer, "status": traj.status, "steps": len(traj.steps),
        "usage": traj.usage.model_dump(), "trajectory_path": traj.metadata.get("trajectory_path"),
        "agent": traj.agent, "model": traj.model, "backend": traj.backend, "error": traj.error,
    }
    if label is not None:
        result["correct"] = is_correct(traj.final_answer, label)
    if "output" in traj.metadata:  # with an output schema: the object (None when not valid) and its check
        result["output"] = traj.output
        result["output_check"] = traj.metadata["output"]
    if traj.metadata.get("tool_protocol"):  # ReAct: native function calling or the text protocol
        result["tool_protocol"] = traj.metadata["tool_protocol"]
    if traj.metadata.get("trace_id"):
        result["trace_id"] = traj.metadata["trace_id"]
    if memory:
        result["memory"] = traj.metadata.get("memory")
    if traj.metadata.get("insights"):
        result["insights"] = traj.metadata["insights"]
    if trials > 1:
        result["trials"] = [{"trial": n, "id": t.id, "answer": t.final_answer, "status": t.status,
                             "steps": len(t.steps), "memory": t.metadata.get("memory"),
                             **({"correct": is_correct(t.final_answer, label)} if label is not None else {})}
                            for n, t in enumerate(runs, 1)]
    return result
