"""Graphs served over HTTP by ``langgraph dev`` (``langgraph.json`` at the repository root).

Each entry is a graph factory: called by the server for each request, it assembles the run's context from
:func:`~ponder.core.settings.load_settings` (so ``PONDER_MODEL``, ``ponder.toml`` etc. choose the model, tools and
sandbox) and closes that run's tools and sandbox session afterwards. The served graphs take
``{"task": "..."}`` and return ``task``, ``final_answer``, ``status`` and ``steps``:

    START → prepare (the agent's initial state) → react | pal (the agent graph as a subgraph) → END

The agent graph is the one compiled once per process; the ``react`` / ``pal`` node runs it as a subgraph with
the request's context (LangGraph's runtime context), so its nodes (``recall``, one ``step`` per model call with
its tool call or program, ``remember``) stream as the subgraph's.

The self-consistency graph is served through the ``self_consistency`` factory below, the tree searches (LATS or
beam search with a verifier) through ``search``.

The factories return async context managers whose set-up and clean-up run in a worker thread: the server
enters a factory's context on its event loop, where ``langgraph dev`` rejects blocking calls
(``BlockingError``), and building a graph loads the model (imports, file reads, llama.cpp's thread
sampling), reads settings and opens tools. The graphs' nodes are synchronous, so LangGraph runs them in
its executor, off the loop, too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypedDict

from langgraph.graph import END, START, StateGraph

from ponder.core.records import Step
from ponder.core.settings import Settings, load_settings
from ponder.core.types import Status
from ponder.tools.executor import ExecResult

if TYPE_CHECKING:
    from ponder.agents.context import AgentContext


class ServedInput(TypedDict):
    """What a client sends."""

    task: str


class ServedOutput(TypedDict, total=False):
    """What a client gets back."""

    task: str
    final_answer: str | None
    status: Status | None
    steps: list[Step]


class ServedState(TypedDict, total=False):
    """The served graph's state: the task, the agent's input state, then what the agent run returned."""

    task: str
    agent_input: dict[str, Any]
    final_answer: str | None
    status: Status | None
    steps: list[Step]


class LazyExecutor:
    """A PAL executor that opens its sandbox session at the first program (schema reads open none)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._session: Any = None

    def run(self, code: str) -> ExecResult:
        """Run ``code`` in the session, opening it first when needed."""
        if self._session is None:
            from ponder.tools.sandbox import open_sandbox

            self._session = open_sandbox(self.settings)
        return self._session.run(code)  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the session if one was opened."""
        if self._session is not None:
            self._session.close()
            self._session = None


def wrap_agent_graph(agent: str, context: AgentContext) -> Any:
    """The served form of an agent graph: input ``{"task"}``, the compiled agent graph run with ``context``."""
    from ponder.agents.driver import recursion_limit
    from ponder.agents.runner import agent_graph, initial_state
    compiled = agent_graph(agent)
    config = {"recursion_limit": recursion_limit(context.limits.max_steps)}

    def prepare(state: ServedState) -> dict[str, Any]:
        return {"agent_input": initial_state(agent, state["task"])}

    def run(state: ServedState) -> dict[str, Any]:
        final = compiled.invoke(state["agent_input"], config, context=context)
        return {key: final.get(key) for key in ("final_answer", "status", "steps")}

    graph = StateGraph(ServedState, input_schema=ServedInput, output_schema=ServedOutput)
    graph.add_node("prepare", prepare)
    graph.add_node(agent, run)
    graph.add_edge(START, "prepare")
    graph.add_edge("prepare", agent)
    graph.add_edge(agent, END)
    return graph.compile(name=agent)


@asynccontextmanager
async def _off_the_loop(build: Callable[[], tuple[Any, Callable[[], None]]]) -> AsyncIterator[Any]:
    """Enter a served graph: ``build()`` (returning the graph and its clean-up) and the clean-up run in a thread."""
    graph, close = await asyncio.to_thread(build)
    try:
        yield graph
    finally:
        await asyncio.to_thread(close)


def _build_agent(agent: str) -> tuple[Any, Callable[[], None]]:
    """The served agent graph from the current settings, and the function that closes its tools and sandbox."""
    from ponder.agents.runner import make_context
    from ponder.models.spec import load_model
    from ponder.tools.registry import close_tools

    settings = load_settings()
    model = load_model(settings.model, settings)
    executor = LazyExecutor(settings) if agent == "pal" else None
    context = make_context(settings, model, executor=executor, agent=agent)

    def close() -> None:
        try:
            close_tools(list(context.tools.tools.values()))
        finally:
            if executor is not None:
                executor.close()

    try:
        return wrap_agent_graph(agent, context), close
    except BaseException:
        close()
        raise


def react(config: Any) -> Any:
    """Graph factory of the ReAct agent (``langgraph.json``: ``react``)."""
    return _off_the_loop(lambda: _build_agent("react"))


def pal(config: Any) -> Any:
    """Graph factory of the PAL agent (``langgraph.json``: ``pal``)."""
    return _off_the_loop(lambda: _build_agent("pal"))


class SCInput(TypedDict, total=False):
    """What a client sends to ``self_consistency``.

    ``task``; optionally ``samples`` (default 5) and the samples' ``temperature`` (default: the settings' when
    above 0, else 0.7).
    """

    task: str
    samples: int
    temperature: float


class SCOutput(TypedDict, total=False):
    """The vote: answer, agreement, the vote table, samples run and the record id."""

    task: str
    final_answer: str | None
    agreement: float
    votes: list[dict[str, Any]]
    samples_run: int
    record_id: str


#: Samples per served self-consistency run when the client does not say.
SC_DEFAULT_SAMPLES = 5


def self_consistency(config: Any) -> Any:
    """Graph factory of self-consistency over the configured agent (``langgraph.json``: ``self_consistency``).

    One node runs :func:`~ponder.graphs.self_consistency.run_self_consistency` (the voting graph itself,
    with its fan-out) in a context of its own, so the samples' inner graphs are not checkpointed by the
    server; the result is the vote. The model is loaded when the context is entered (in a thread), so
    the node finds it in the per-process cache.
    """
    return _off_the_loop(_build_self_consistency)


def _build_self_consistency() -> tuple[Any, Callable[[], None]]:
    import contextvars

    from ponder.graphs.self_consistency import SCConfig, run_self_consistency
    from ponder.models.spec import load_model

    settings = load_settings()
    model = load_model(settings.model, settings)

    def vote(state: SCInput) -> dict[str, Any]:
        sc = SCConfig(samples=int(state.get("samples") or SC_DEFAULT_SAMPLES), temperature=state.get("temperature"))
        result = contextvars.Context().run(run_self_consistency, state["task"], config=sc, settings=settings,
                                           model=model)
        return {"final_answer": result.final_answer, "agreement": result.agreement, "samples_run": result.samples_run,
                "votes": [v.model_dump(mode="json") for v in result.votes], "record_id": result.id}

    graph = StateGraph(SCOutput, input_schema=SCInput, output_schema=SCOutput)
    graph.add_node("vote", vote)
    graph.add_edge(START, "vote")
    graph.add_edge("vote", END)
    return graph.compile(name="self_consistency"), lambda: None


class SearchInput(TypedDict, total=False):
    """What a client sends to ``search``: ``task``; optionally any of the search's run-spec options.

    ``strategy`` (``lats`` or ``beam``; default: the graph config's ``configurable.strategy``, else ``lats``),
    ``verifier`` (e.g. ``"self,env"``), ``budget`` (``"20000t"``), ``beam_width``, ``expansions``, ``exploration``,
    ``iterations``, ``accept``, ``prm``; unset ones come from ``configurable`` too, else the spec's defaults.
    """

    task: str
    strategy: str
    verifier: str
    budget: str
    beam_width: int
    expansions: int
    exploration: float
    iterations: int
    accept: float
    prm: str


class SearchOutput(TypedDict, total=False):
    """The search's answer, its verifier score, what it spent and its tree (id, size, chosen path, stop reason)."""

    task: str
    strategy: str
    final_answer: str | None
    status: Status | None
    score: float | None
    usage: dict[str, Any]
    search_tree: dict[str, Any] | None


#: The searches ``search`` serves, and the run-spec options a request may set.
SEARCHES = ("lats", "beam")
SEARCH_OPTIONS = tuple(k for k in SearchInput.__annotations__ if k != "task")


def search(config: Any) -> Any:
    """Graph factory of a tree search over the configured agent (``langgraph.json``: ``search``).

    LATS or beam search (``strategy`` in the input or the config's ``configurable``) with its verifier; one node
    runs the strategy (:func:`~ponder.graphs.strategies.build.build_strategy`, with its own fan-out) in a context
    of its own, like ``self_consistency``. The tree is appended to ``<out_dir>/search.jsonl``.
    """
    configurable = dict((config or {}).get("configurable") or {})
    return _off_the_loop(lambda: _build_search({k: configurable[k] for k in SEARCH_OPTIONS if k in configurable}))


def search_spec(defaults: dict[str, Any], request: dict[str, Any]) -> Any:
    """The run spec of one ``search`` request: its options over the config's over ``strategy="lats"``.

    Raises:
        ConfigError: for a strategy other than ``lats``/``beam`` or a bad option (one line, naming it).
    """
    from ponder.core.errors import ConfigError
    from ponder.graphs.strategies.spec import parse_spec

    given = {"strategy": "lats", **defaults, **{k: request[k] for k in SEARCH_OPTIONS if request.get(k) is not None}}
    if given["strategy"] not in SEARCHES:
        raise ConfigError(f"search serves --strategy {' or '.join(SEARCHES)} (got {given['strategy']!r})")
    return parse_spec(given)


def _build_search(defaults: dict[str, Any]) -> tuple[Any, Callable[[], None]]:
    import contextvars

    from ponder.graphs.strategies.base import StrategyContext
    from ponder.graphs.strategies.build import build_strategy
    from ponder.models.spec import load_model

    settings = load_settings()
    model = load_model(settings.model, settings)
    search_spec(defaults, {})  # a bad configurable fails when the graph is built

    def run(state: SearchInput) -> dict[str, Any]:
        spec = search_spec(defaults, dict(state))
        ctx = StrategyContext(settings=settings, model=model, agent=spec.agent or settings.agent)
        outcome = contextvars.Context().run(build_strategy(spec, memory="none").run, state["task"], ctx)
        return search_output(spec.strategy_name, outcome)

    graph = StateGraph(SearchOutput, input_schema=SearchInput, output_schema=SearchOutput)
    graph.add_node("search", run)
    graph.add_edge(START, "search")
    graph.add_edge("search", END)
    return graph.compile(name="search"), lambda: None


def search_output(strategy: str, outcome: Any) -> dict[str, Any]:
    """The served output of a search's :class:`~ponder.graphs.strategies.base.Outcome`."""
    from ponder.graphs.search.tree import SearchTree

    score = next((c.score for c in outcome.candidates if c.answer == outcome.answer),
                 outcome.candidates[0].score if outcome.candidates else None)
    tree = next((r for r in outcome.records if isinstance(r, SearchTree)), None)
    shown = None if tree is None else {"id": tree.id, "nodes": len(tree.nodes), "chosen": tree.chosen,
                                       "stop_reason": tree.stop_reason}
    return {"strategy": strategy, "final_answer": outcome.answer, "status": outcome.status, "score": score,
            "usage": outcome.usage.model_dump(), "search_tree": shown}
