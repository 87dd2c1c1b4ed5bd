"""Per-step framework overhead: ponder's ReAct graph vs LangGraph's prebuilt ``create_react_agent``.

Both agents are driven by scripted models with identical scripts (``--steps`` tool calls to the same
trivial ``add(a, b)`` tool, then a final answer), so the measured time is framework overhead: graph
execution, state handling, prompt/message plumbing, reply parsing, tool dispatch and validation.

Configurations (measured in one process, interleaved with a rotating order to cancel drift, after warm-up):

* ``ponder_graph`` -- ``build_react_graph()`` (compiled once per process);
  ``graph.invoke(initial_state(...), context=make_context(...))`` per run.
* ``langgraph_prebuilt`` -- ``create_react_agent(model, [add_tool], prompt=...)`` compiled once;
  ``agent.invoke({"messages": [...]})`` per run.
* ``ponder_run_agent`` -- ``run_agent(..., write=False)`` end to end (the run's context, the driver and the
  trajectory record on every call; the graph is the compiled-once one).

Per-step overhead = median wall time per run / model calls per run. Output: one JSON line per
configuration and a summary line with ``ratio_graph`` (ponder_graph / langgraph_prebuilt) and
``ratio_run_agent`` (ponder_run_agent / langgraph_prebuilt); ``goal_met`` when both are <= ``GOAL`` (0.3).

Usage::

    python benchmarks/step_overhead.py [--runs 200] [--steps 5] [--warmup 20]
    python benchmarks/step_overhead.py --profile            # cProfile top-20 of ponder's graph path (stderr)
    python benchmarks/step_overhead.py --profile langgraph_prebuilt
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import platform
import pstats
import statistics
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool as lc_tool
from pydantic import PrivateAttr

import ponder
from ponder.agents.react import build_react_graph, system_prompt
from ponder.agents.runner import initial_state, make_context, run_agent
from ponder.core.settings import load_settings
from ponder.models.scripted import ScriptedModel

GOAL = 0.3
TASK = "What is 1 + 2?"


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


add_tool = lc_tool(add)

# ---------------------------------------------------------------------------------------------
# Scripts: K tool calls then a final answer, for both sides.
# ---------------------------------------------------------------------------------------------


def ponder_script(steps: int) -> list[str]:
    """ReAct text replies: ``steps`` actions then ``Final Answer: 3``."""
    action = 'Thought: I should add the numbers.\nAction: add\nAction Input: {"a": 1, "b": 2}'
    return [action] * steps + ["Thought: I now know the final answer\nFinal Answer: 3"]


def langgraph_script(steps: int) -> list[AIMessage]:
    """AIMessages with ``tool_calls``: ``steps`` calls to ``add`` then a plain answer ``3``."""
    calls = [
        AIMessage(content="", tool_calls=[{"name": "add", "args": {"a": 1, "b": 2}, "id": f"call_{i}"}])
        for i in range(steps)
    ]
    return [*calls, AIMessage(content="3")]


class ScriptedChatModel(BaseChatModel):
    """A langchain-core chat model replaying a list of AIMessages (``reset()`` rewinds it)."""

    script: list[AIMessage]
    _next: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return "scripted-benchmark"

    def reset(self) -> None:
        self._next = 0

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedChatModel:  # type: ignore[override]
        return self

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        message = self.script[self._next]
        self._next += 1
        return ChatResult(generations=[ChatGeneration(message=message)])


# ---------------------------------------------------------------------------------------------
# Configurations. Only run() is inside the timer.
# ---------------------------------------------------------------------------------------------


class Bench:
    """One configuration: ``prepare()`` (untimed), ``run()`` (timed), ``check(result)`` (untimed)."""

    name: str
    steps: int

    def prepare(self) -> None:
        """Reset per-run state outside the timer."""

    def run(self) -> Any:
        raise NotImplementedError

    def check(self, result: Any) -> None:
        """Assert the run did what the script says."""


class PonderGraph(Bench):
    name = "ponder_graph"

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.script = ponder_script(steps)
        self.settings = load_settings(max_steps=steps + 2)
        self.context = make_context(self.settings, ScriptedModel(self.script), tools=[add])
        self.graph = build_react_graph()
        self.config = {"recursion_limit": 3 * self.settings.max_steps + 10}

    def prepare(self) -> None:
        # A fresh context per run (as run_agent makes one): ScriptedModel consumes its list and records calls.
        self.context = make_context(self.settings, ScriptedModel(self.script), tools=[add])

    def run(self) -> Any:
        return self.graph.invoke(initial_state("react", TASK), self.config, context=self.context)

    def check(self, result: Any) -> None:
        assert result["status"] == "solved" and result["final_answer"] == "3", result
        assert len(result["steps"]) == self.steps + 1, len(result["steps"])
        assert all(s.observation == "3" for s in result["steps"][:-1]), result["steps"]


class PonderRunAgent(Bench):
    name = "ponder_run_agent"

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.script = ponder_script(steps)
        self.settings = load_settings(max_steps=steps + 2)
        self.model = ScriptedModel(self.script)

    def prepare(self) -> None:
        self.model = ScriptedModel(self.script)

    def run(self) -> Any:
        return run_agent(TASK, agent="react", settings=self.settings, model=self.model, tools=[add],
                         write=False)

    def check(self, result: Any) -> None:
        assert result.status == "solved" and result.final_answer == "3", result
        usage = result.usage
        assert usage.model_calls == self.steps + 1 and usage.tool_calls == self.steps, usage


class LangGraphPrebuilt(Bench):
    name = "langgraph_prebuilt"

    def __init__(self, steps: int, prompt: str) -> None:
        from langgraph.prebuilt import create_react_agent

        self.steps = steps
        self.model = ScriptedChatModel(script=langgraph_script(steps))
        with warnings.catch_warnings():
            # create_react_agent is deprecated in favour of langchain.agents.create_agent (not installed).
            warnings.filterwarnings("ignore", message=".*create_react_agent.*")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            self.agent = create_react_agent(self.model, [add_tool], prompt=prompt)
        self.config = {"recursion_limit": 3 * (steps + 2) + 10}

    def prepare(self) -> None:
        self.model.reset()

    def run(self) -> Any:
        return self.agent.invoke({"messages": [HumanMessage(content=f"Question: {TASK}")]}, self.config)

    def check(self, result: Any) -> None:
        msgs = result["messages"]
        # human + steps * (ai tool call + tool message) + final ai
        assert len(msgs) == 2 * self.steps + 2, len(msgs)
        assert msgs[-1].content == "3", msgs[-1]
        assert all(m.content == "3" for m in msgs if m.type == "tool"), msgs


# ---------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------


def timed(bench: Bench) -> int:
    bench.prepare()
    t0 = time.perf_counter_ns()
    result = bench.run()
    elapsed = time.perf_counter_ns() - t0
    bench.check(result)
    return elapsed


def measure(benches: list[Bench], runs: int, warmup: int) -> dict[str, list[int]]:
    """Interleaved: each repetition runs every bench once, rotating the order to cancel position effects."""
    for _ in range(warmup):
        for b in benches:
            timed(b)
    gc.collect()
    times: dict[str, list[int]] = {b.name: [] for b in benches}
    n = len(benches)
    for rep in range(runs):
        k = rep % n
        for b in benches[k:] + benches[:k]:
            times[b.name].append(timed(b))
    return times


def summarize(name: str, ns: list[int], model_calls: int, tool_calls: int) -> dict[str, Any]:
    us = sorted(t / 1000 for t in ns)
    med = statistics.median(us)
    q = statistics.quantiles(us, n=10) if len(us) >= 10 else [us[0]] * 9
    return {
        "config": name,
        "runs": len(us),
        "tool_calls_per_run": tool_calls,
        "model_calls_per_run": model_calls,
        "median_us_per_run": round(med, 1),
        "p10_us_per_run": round(q[0], 1),
        "p90_us_per_run": round(q[-1], 1),
        "min_us_per_run": round(us[0], 1),
        "per_step_us": round(med / model_calls, 1),
    }


def profile(bench: Bench, runs: int, top: int = 20) -> None:
    for _ in range(10):
        timed(bench)
    prof = cProfile.Profile()
    for _ in range(runs):
        bench.prepare()
        prof.enable()
        result = bench.run()
        prof.disable()
        bench.check(result)
    stats = pstats.Stats(prof, stream=sys.stderr)
    # Where the (self) time goes, by package, and ponder's own functions by cumulative time.
    root = str(Path(ponder.__file__).resolve().parent) + "/"
    by_pkg: dict[str, float] = {}
    own: list[tuple[float, float, int, str]] = []
    total = 0.0
    for (file, line, func), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        total += tottime
        if "site-packages/" in file:
            pkg = file.split("site-packages/", 1)[1].split("/", 1)[0]
        elif file.startswith(root + "benchmarks/"):
            pkg = "benchmarks (scripted models, harness)"
        elif file.startswith(root) and "/.venv/" not in file:
            pkg = "ponder"
            own.append((cumtime, tottime, ncalls, f"{file[len(root):]}:{line}({func})"))
        else:
            pkg = "stdlib/builtins"
        by_pkg[pkg] = by_pkg.get(pkg, 0.0) + tottime
    per_step = 1e6 / (runs * (bench.steps + 1))
    print("\n=== self time by package (us per model call, profiled) ===", file=sys.stderr)
    for pkg, t in sorted(by_pkg.items(), key=lambda kv: -kv[1]):
        print(f"{pkg:40s} {t * per_step:9.1f} us  {100 * t / total:5.1f}%", file=sys.stderr)
    print(f"\n=== ponder functions, top {top} by cumulative (us per model call) ===", file=sys.stderr)
    for cum, tt, n, where in sorted(own, reverse=True)[:top]:
        print(f"cum {cum * per_step:8.1f}  self {tt * per_step:7.1f}  calls {n:6d}  {where}", file=sys.stderr)
    stats.strip_dirs()
    for key in ("tottime", "cumulative"):
        print(f"\n=== cProfile {bench.name}: {runs} runs, top {top} by {key} ===", file=sys.stderr)
        stats.sort_stats(key).print_stats(top)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("langgraph", "langgraph-prebuilt", "langchain-core", "pydantic"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "?"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=200, help="timed runs per configuration")
    ap.add_argument("--steps", type=int, default=5, help="tool calls per run before the final answer")
    ap.add_argument("--warmup", type=int, default=20, help="untimed runs per configuration first")
    ap.add_argument("--no-run-agent", action="store_true", help="skip the run_agent end-to-end configuration")
    ap.add_argument("--profile", nargs="?", const="ponder_graph", default=None,
                    choices=["ponder_graph", "ponder_run_agent", "langgraph_prebuilt"],
                    help="print a cProfile top-20 of one configuration to stderr and exit")
    args = ap.parse_args(argv)
    if args.steps < 0 or args.steps + 2 > 200 or args.runs < 1:
        ap.error("--steps must be in [0, 198] and --runs >= 1")

    pg = PonderGraph(args.steps)
    lg = LangGraphPrebuilt(args.steps, prompt=system_prompt(pg.context.tools))
    benches: list[Bench] = [pg, lg]
    if not args.no_run_agent:
        benches.append(PonderRunAgent(args.steps))

    if args.profile:
        by_name = {b.name: b for b in benches}
        profile(by_name.get(args.profile) or PonderRunAgent(args.steps), args.runs)
        return 0

    model_calls, tool_calls = args.steps + 1, args.steps
    times = measure(benches, args.runs, args.warmup)
    rows = {b.name: summarize(b.name, times[b.name], model_calls, tool_calls) for b in benches}
    for row in rows.values():
        print(json.dumps(row))
    base = rows["langgraph_prebuilt"]["median_us_per_run"]
    ratio = rows["ponder_graph"]["median_us_per_run"] / base
    # Paired ratio: per repetition, the runs were adjacent in time, so this is robust to drift.
    pairs = zip(times["ponder_graph"], times["langgraph_prebuilt"], strict=True)
    paired = statistics.median(p / q for p, q in pairs)
    summary: dict[str, Any] = {
        "summary": True,
        "steps": args.steps,
        "runs": args.runs,
        "ratio_graph": round(ratio, 3),
        "ratio_graph_paired_median": round(paired, 3),
        "per_step_us": {name: row["per_step_us"] for name, row in rows.items()},
        "goal": GOAL,
        "goal_met": ratio <= GOAL,
        "versions": versions(),
    }
    if "ponder_run_agent" in rows:
        ratio_run = rows["ponder_run_agent"]["median_us_per_run"] / base
        summary["ratio_run_agent"] = round(ratio_run, 3)
        summary["goal_met"] = ratio <= GOAL and ratio_run <= GOAL
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
