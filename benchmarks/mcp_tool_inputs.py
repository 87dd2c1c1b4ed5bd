"""Typed tool inputs on a local model: MCP tool calls whose Action Input the ReAct grammar holds to the schema.

A tool with several arguments (here the reference MCP "everything" server's ``get-sum``, ``{"a": number, "b":
number}``) takes a JSON object. Served models get the schema through native tool calling; a local model on the text
protocol only had the argument names and, with grammar-constrained steps, any one-line ``{...}``. Now the grammar
holds the input to the tool's JSON Schema (:func:`ponder.agents.grammar.react_grammar_for`). This benchmark runs the
same addition tasks on the embedded model with the tool as the agent's only tool, three ways, side by side:

* ``free``: unconstrained steps (``constrained_steps=off``);
* ``json``: the grammar as before this change (any one-line JSON object; the typed rules are switched off);
* ``typed``: the grammar with the schema's rules (the default).

One JSON line per mode: tool calls, calls the server accepted (its reply starts "The sum"), tasks answered with the
right sum, each with a Wilson 95 % interval. Needs the server installed by ``make mcp-servers``.

    .venv/bin/python benchmarks/mcp_tool_inputs.py --tasks 30
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import ponder.agents.grammar as grammar
from ponder.agents.runner import run_agent
from ponder.core.settings import load_settings
from ponder.envs.metrics import wilson_interval
from ponder.models.spec import load_model
from ponder.tools.mcp import close_mcp, mcp_tools

SERVER = Path(__file__).resolve().parent.parent / ".mcp-servers/node_modules/@modelcontextprotocol/server-everything"
MODES = ("free", "json", "typed")


def tasks(n: int, seed: int) -> list[tuple[float, float]]:
    """``n`` addition tasks: integer pairs, and every third a pair of decimals."""
    rng = random.Random(seed)
    return [(round(rng.uniform(0, 50), 1), round(rng.uniform(0, 50), 1)) if i % 3 == 2
            else (rng.randint(0, 999), rng.randint(0, 999)) for i in range(n)]


def run_mode(mode: str, pairs: list[tuple[float, float]], max_steps: int) -> dict[str, object]:
    """Run every task in ``mode``; the counts and intervals as one JSON-able row."""
    settings = load_settings(
        mcp={"servers": {"ev": {"command": "node", "args": [str(SERVER / "dist/index.js"), "stdio"],
                                "tools": ["get-sum"]}}},
        mcp_servers=["ev"], max_steps=max_steps, max_tokens=96, constrained_steps="off" if mode == "free" else "on")
    typed_rules = grammar.typed_input_rules
    if mode == "json":
        grammar.typed_input_rules = lambda index, schema_json: None  # the grammar before typed inputs
    model = load_model(settings.model, settings)
    calls = accepted = right = 0
    start = time.perf_counter()
    try:
        for a, b in pairs:
            traj = run_agent(f"What is the sum of {a} and {b}? Use the get-sum tool.", settings=settings, model=model,
                             tools=mcp_tools(settings), write=False)
            actions = [s for s in traj.steps if s.kind == "action"]
            calls += len(actions)
            accepted += sum(1 for s in actions if (s.observation or "").startswith("The sum"))
            expected = f"{a + b:g}"
            right += traj.final_answer is not None and expected in traj.final_answer.replace(",", "")
    finally:
        grammar.typed_input_rules = typed_rules
    return {"bench": "mcp_tool_inputs", "mode": mode, "model": model.spec, "tasks": len(pairs),
            "tool_calls": calls, "accepted_calls": accepted, "accepted_rate": round(accepted / max(calls, 1), 3),
            "accepted_ci95": [round(x, 3) for x in wilson_interval(accepted, calls)],
            "correct": right, "correct_rate": round(right / len(pairs), 3),
            "correct_ci95": [round(x, 3) for x in wilson_interval(right, len(pairs))],
            "seconds": round(time.perf_counter() - start, 1)}


def main(argv: list[str] | None = None) -> int:
    """Print one JSON line per mode."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args(argv)
    if not (SERVER / "dist/index.js").is_file():
        print(f"the MCP 'everything' server is not installed at {SERVER}: run `make mcp-servers`", file=sys.stderr)
        return 2
    pairs = tasks(args.tasks, args.seed)
    try:
        for mode in args.modes.split(","):
            print(json.dumps(run_mode(mode, pairs, args.max_steps)), flush=True)
    finally:
        close_mcp()
    return 0


if __name__ == "__main__":
    sys.exit(main())
